"""cpus and pt-walk --cpu N on two CPUs (lab 8's machine), on both ISAs.

The reference kernel boots with -smp 2 and `run=spin@1,spin`: the first spinner pinned on CPU 1,
the second on CPU 0, neither ever ending. GDB stops at a timer tick CPU 1 takes (a breakpoint
for its thread alone), so that CPU 1 is in the kernel on the pinned spinner's behalf. What cpus
says of each CPU is checked against what GDB reads itself with that CPU's thread selected (its
PC, its root register) and against the roots the kernel published for the two spinners (read by
GDB's typed access to the registry, not by the command's reader); pt-walk --cpu 1 of the pinned
spinner's counter walks through CPU 1's root and finds the frame pt-walk --root PID finds. The
thread GDB had selected is selected again after each command.
"""
import os
import re

import pytest
from elftools.elf.elffile import ELFFile

import gdbrig
from pagoda_pt import contract as C
from gdbrig import Machine, run_steps
from pagoda_core import paths

QEMUS = {"x86_64": gdbrig.QEMU, "aarch64": gdbrig.QEMU_AARCH64}
ARCHES = [pytest.param(a, marks=pytest.mark.skipif(bool(gdbrig.missing_tools(q)), reason=gdbrig.missing_tools(q)))
          for a, q in QEMUS.items()]
pytestmark = pytest.mark.timeout(300)
FOREVER = 1 << 62
ROOT_REGISTER = {"x86_64": "$cr3", "aarch64": "$TTBR0_EL1"}
ROOT_MASK = 0x0000_FFFF_FFFF_F000
PAN = {"aarch64": 1 << 22}          # PSTATE.PAN in the gdbstub's CPSR
LINE = re.compile(r"^([ *]) CPU (\d+)  (\S+)\s+(user|kernel)\s+pc (0x[0-9a-f]+).*?; \S+ (0x[0-9a-f]+)[^:]*: (.*)$", re.M)
# Each published process root as "pid root" lines, read with GDB's own types.
REGISTRY = """
table = gdb.parse_and_eval("%s")
rows = []
for i in range(int(table["capacity"])):
    e = table["slots"][i]
    if int(e["root"]) and int(e["kind"]) == 3:     # RootKind::Process
        rows.append("%%d %%d %%s" %% (int(e["id"]), int(e["root"]), e["name"].string()))
result = "\\n".join(rows)
""" % C.ROOT_REGISTRY

# Continues to CPU 1's ticks until the third in a row that comes while CPU 1 runs a process (not
# its idle loop), its root not the kernel's, and the pinned spinner's counter, read through CPU 1's
# own translation (QEMU's gdbstub reads with the selected vCPU's MMU; AArch64's PAN, which that read
# honours, lifted for it), has grown since the tick before: the spinner is counting, not still being
# loaded into a root whose lower half is empty.
# Judged by GDB's registers, QEMU's reads and the registry's slots, not by the command under test.
UNTIL_SPIN = """
root, running, last, pan = "%s", 0, None, %r
for look in range(300):
    gdb.execute("continue", to_string=True)
    live = int(gdb.parse_and_eval(root)) & %#x
    table = gdb.parse_and_eval("%s")
    mine = any(int(table["slots"][i]["root"]) == live and int(table["slots"][i]["kind"]) == 3
               for i in range(int(table["capacity"])))
    saved = int(gdb.parse_and_eval("$cpsr")) if pan else 0
    if saved & pan:
        gdb.execute("set $cpsr = %%#x" %% (saved & ~pan))
    try:
        now = int.from_bytes(bytes(gdb.selected_inferior().read_memory(%#x, 8)), "little")
    except gdb.MemoryError:
        now = None
    finally:
        if saved & pan:
            gdb.execute("set $cpsr = %%#x" %% saved)
    growing = mine and None not in (now, last) and now > last
    running = running + 1 if growing else 0
    last = now if mine else None
    if running == 3:
        break
else:
    raise gdb.GdbError("the pinned spinner did not count on CPU 1 in 300 of its ticks")
result = look
"""


@pytest.mark.parametrize("arch", ARCHES)
def test_cpus_names_each_cpu_its_mode_and_root(arch):
    kernel = gdbrig.build_kernel(arch)
    with open(os.path.join(paths.build_dir(arch), "user", arch, "spin.elf"), "rb") as f:
        count = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name("spin_count")[0]["st_value"]
    until = UNTIL_SPIN % (ROOT_REGISTER[arch], PAN.get(arch, 0), ROOT_MASK, C.ROOT_REGISTRY, count)
    steps = [("tick", "cmd", f"break {C.TIMER_TICK} thread 2"), ("go", "python", until), ("del", "cmd", "delete"),
             ("cpus", "cmd", "cpus"), ("after", "cmd", "thread"),
             ("pc1", "eval", "$pc"), ("root1", "eval", f"{ROOT_REGISTER[arch]} & {ROOT_MASK:#x}"),
             ("registry", "python", REGISTRY), ("to0", "cmd", "thread 1"),
             ("pc0", "eval", "$pc"), ("root0", "eval", f"{ROOT_REGISTER[arch]} & {ROOT_MASK:#x}"),
             ("cpus0", "cmd", "cpus"),
             ("walk1", "cmd", f"pt-walk {count:#x} --cpu 1"), ("still0", "eval", "$pc"),
             ("pinned", "cmd", f"pt-walk {count:#x} --root {{root1:#x}}"),
             ("nocpu", "cmd", f"pt-walk {count:#x} --cpu 7")]
    with Machine(kernel, cmdline=f"run=spin@1:{FOREVER:#x},spin:{FOREVER:#x}", arch=arch, cpus=2) as machine:
        results = run_steps(kernel, machine.socket, steps)
    for name in ("tick", "go", "cpus", "pc1", "root1", "pc0", "root0", "cpus0", "registry", "walk1", "pinned"):
        assert not results[name].error, (name, results[name].error)
    assert "Thread 1.2" in results["after"].output, results["after"].output    # cpus put CPU 1 back

    lines = {int(m[2]): m for m in LINE.finditer(results["cpus"].output)}
    assert sorted(lines) == [0, 1], results["cpus"].output
    assert lines[1][1] == "*" and lines[0][1] == " "
    assert lines[1][4] == "kernel", lines[1][0]          # in the timer tick on the spinner's behalf
    for cpu in (0, 1):
        assert int(lines[cpu][5], 16) == results[f"pc{cpu}"].value, (cpu, lines[cpu][0])
        assert int(lines[cpu][6], 16) == results[f"root{cpu}"].value, (cpu, lines[cpu][0])

    spins = sorted((int(pid), int(root)) for pid, root, name in
                   (row.split(" ", 2) for row in results["registry"].output.splitlines()) if name.startswith("spin"))
    assert spins, results["registry"].output
    pinned_pid, pinned_root = spins[0]          # (run= starts the pinned one first)
    assert int(lines[1][6], 16) == pinned_root & ROOT_MASK
    assert lines[1][7] == f"pid {pinned_pid} (spin)", lines[1][0]

    lines0 = {int(m[2]): m for m in LINE.finditer(results["cpus0"].output)}
    assert lines0[0][1] == "*" and lines0[1][1] == " ", results["cpus0"].output
    assert results["still0"].value == results["pc0"].value       # pt-walk --cpu 1 gave CPU 0 back

    walk = results["walk1"].output
    assert f"CPU 1's root: {pinned_root & ROOT_MASK:#018x}" in walk, walk
    pa = re.findall(r"PA (0x[0-9a-f]+)", walk)
    assert pa and pa == re.findall(r"PA (0x[0-9a-f]+)", results["pinned"].output), (walk, results["pinned"].output)
    assert "there is no CPU 7: the machine has 2" in results["nocpu"].error, results["nocpu"].error
