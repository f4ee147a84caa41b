"""The GDB commands against a real kernel in QEMU, checked against QEMU's own view
(`monitor gva2gpa`, `monitor info mem`, `monitor info registers`)."""
import os
import re
import subprocess

import pytest

import gdbrig
from gdbrig import Machine, monitor_gva2gpa, run_steps
from pagoda_core.speed import scaled  # noqa: E402  (limits for this machine: speed.py)
from pagoda_pt import contract as C

pytestmark = [pytest.mark.skipif(bool(gdbrig.missing_tools()), reason=gdbrig.missing_tools()),
              pytest.mark.timeout(120)]

UNMAPPED = 0x0000500000000000          # the pf self-test's window: never mapped at kmain
OUTSIDE_RAM = 0x200000000              # a "root table" no 128 MiB machine has (8 GiB)
DATA_SYMBOLS = ("&__data_start", "&__bss_start")

_PA = re.compile(r"-> PA (0x[0-9a-f]+) \((.*)\)")
_RUN = re.compile(r"^(0x[0-9a-f]{16})-(0x[0-9a-f]{16}) +\S+ \S+ -> (0x[0-9a-f]{16})  "
                  r"([r-][w-][x-]) ([uk])", re.M)
_INFO_MEM = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ([0-9a-f]+) ([u-])r([w-])$", re.M)


@pytest.fixture(scope="module")
def kernel():
    return gdbrig.build_kernel()


@pytest.fixture(scope="module")
def at_kmain(kernel):
    """One session stopped at pagoda::kmain (paging on, the kernel's tables built)."""
    steps = [("brk", "cmd", f"break {C.KMAIN}"), ("go", "cmd", "continue"),
             ("kmain", "eval", f"&{C.KMAIN}"),
             ("walk_text", "cmd", f"pt-walk &{C.KMAIN}"),
             ("qemu_text", "cmd", "monitor gva2gpa {kmain:#x}")]
    for i, symbol in enumerate(DATA_SYMBOLS):
        steps += [(f"data{i}", "eval", symbol), (f"walk_data{i}", "cmd", f"pt-walk {symbol}"),
                  (f"qemu_data{i}", "cmd", f"monitor gva2gpa {{data{i}:#x}}")]
    steps += [
        ("walk_unmapped", "cmd", f"pt-walk {UNMAPPED:#x}"),
        ("qemu_unmapped", "cmd", f"monitor gva2gpa {UNMAPPED:#x}"),
        ("walk_rip", "cmd", "pt-walk $rip"),
        ("rip", "eval", "$rip"),
        ("walk_expr", "cmd", "pt-walk $rip + 0x1000"),
        ("dump", "cmd", "pt-dump"),
        ("dump_user", "cmd", "pt-dump --user"),
        ("dump_kernel", "cmd", "pt-dump --kernel"),
        ("info_mem", "cmd", "monitor info mem"),
        ("regs", "cmd", "pt-regs"),
        ("cr3", "eval", "$cr3"),
        ("monitor_regs", "cmd", "monitor info registers"),
        ("diff_same", "cmd", "pt-diff $cr3 $cr3"),
        ("diff_empty", "cmd", f"pt-diff $cr3 {OUTSIDE_RAM:#x}"),
        ("mode_before", "cmd", "maintenance packet qqemu.PhyMemMode"),
        ("bogus_root", "cmd", f"pt-walk 0x1000 --root {OUTSIDE_RAM:#x}"),
        ("mode_after_bogus", "cmd", "maintenance packet qqemu.PhyMemMode"),
        ("raise_inside", "python",
         "from pagoda_gdb import target\n"
         "try:\n"
         "    with target.physical_memory() as read_phys:\n"
         "        read_phys(0x1000, 8)\n"
         "        raise RuntimeError('boom')\n"
         "except RuntimeError:\n"
         "    pass\n"
         "result = target.phys_mode()"),
        ("mode_after_raise", "cmd", "maintenance packet qqemu.PhyMemMode"),
        ("virtual_read_after", "eval", f"*(unsigned char *)&{C.KMAIN}"),
        ("capped", "python",
         "import pagoda_gdb.paging as paging\n"
         "lines = []\n"
         "saved, paging.out = paging.out, lines.append\n"
         "try:\n"
         "    paging.print_problems(['entry %d is bad' % i for i in range(32000)], 'problem: ')\n"
         "finally:\n"
         "    paging.out = saved\n"
         "result = '\\n'.join(lines)"),
        ("why", "cmd", "fault-why"),
        ("top", "cmd", "pt-top"),
        ("qom_bits", "cmd", "monitor qom-get /machine/unattached/device[0] phys-bits"),
        ("boot_root", "eval", "(unsigned long)&boot_pml4"),
        ("walk_boot_root", "cmd", f"pt-walk &{C.KMAIN} --root &boot_pml4"),
        ("kva_root", "cmd", 'pt-walk 0x1000 --root "0xffff800000000000 + {cr3:#x}"'),
        ("kva_diff", "cmd", "pt-diff $cr3 0xffffffff80100000"),
        ("data_root", "cmd", f'pt-dump --root "(long)&{C.KMAIN} - 0xffffffff80000000"'),
    ]
    with Machine(kernel) as machine:
        results = run_steps(kernel, machine.socket, steps)
    assert not results["go"].error, results["go"].error
    return results


def walk_pa(output):
    m = _PA.search(output)
    assert m, output
    return int(m.group(1), 16)


def test_walk_of_kernel_text_matches_qemu(at_kmain):
    r = at_kmain
    assert not r["walk_text"].error, r["walk_text"].error
    qemu_pa = monitor_gva2gpa(r["qemu_text"].output)
    assert qemu_pa is not None
    assert walk_pa(r["walk_text"].output) == qemu_pa
    text = r["walk_text"].output
    assert "VA 0x%016x" % r["kmain"].value in text
    assert "kmain" in text                       # the symbol line
    assert re.search(r"-> PA .*\(4 KiB page|2 MiB page|1 GiB page", text)
    assert re.search(r"PML4 \[\s*\d+\] @ 0x", text)
    # Kernel text: readable, executable, not writable, not user (a 2 MiB boot map is RWX).
    perms = _PA.search(text).group(2)
    assert "X" in perms.split(", ")[1] and "U" not in perms.split(", ")[1]


@pytest.mark.parametrize("index", range(len(DATA_SYMBOLS)))
def test_walk_of_kernel_data_matches_qemu(at_kmain, index):
    r = at_kmain
    walk, qemu = r[f"walk_data{index}"], r[f"qemu_data{index}"]
    assert not walk.error, walk.error
    assert walk_pa(walk.output) == monitor_gva2gpa(qemu.output)
    assert "W" in _PA.search(walk.output).group(2).split(", ")[1]


def test_walk_of_an_unmapped_address_says_where_it_stops(at_kmain):
    r = at_kmain
    assert monitor_gva2gpa(r["qemu_unmapped"].output) is None
    text = r["walk_unmapped"].output
    assert "-> PA" not in text
    m = re.search(r"stopped: (PML4|PDPT|PD|PT) entry (\d+) not present", text)
    assert m, text
    index = {"PML4": 39, "PDPT": 30, "PD": 21, "PT": 12}[m.group(1)]
    assert int(m.group(2)) == UNMAPPED >> index & 511
    # The stopping level is the last one printed.
    assert text.strip().split("\n")[-2].lstrip().startswith(m.group(1))


def test_walk_takes_gdb_expressions(at_kmain):
    r = at_kmain
    assert "VA 0x%016x" % r["rip"].value in r["walk_rip"].output
    assert "VA 0x%016x" % (r["rip"].value + 0x1000) in r["walk_expr"].output


def merge_by_access(ranges):
    """[(start, end, user, write)] with neighbours of equal access merged (what info mem
    shows: it ignores physical addresses, execute permission and caching)."""
    merged = []
    for start, end, user, write in ranges:
        if merged and merged[-1][1] == start and merged[-1][2:] == (user, write):
            merged[-1] = (merged[-1][0], end, user, write)
        else:
            merged.append((start, end, user, write))
    return merged


def dump_ranges(text):
    """[(start, exclusive end, user, write)]: pt-dump prints the last byte of each run."""
    return [(int(a, 16), int(b, 16) + 1, u == "u", rwx[1] == "w")
            for a, b, _pa, rwx, u in _RUN.findall(text)]


def info_mem_end(start, end):
    """QEMU prints the end of a range that reaches the top of the address space as
    0001000000000000 (2^48, the wrapped sign extension); the real end is 2^64."""
    return 1 << 64 if end <= start else end


def test_dump_matches_qemu_info_mem(at_kmain):
    r = at_kmain
    ours = dump_ranges(r["dump"].output)
    assert ours, r["dump"].output
    qemu = [(int(a, 16), info_mem_end(int(a, 16), int(b, 16)), u == "u", w == "w")
            for a, b, _size, u, w in _INFO_MEM.findall(r["info_mem"].output.replace("\r", ""))]
    assert qemu, r["info_mem"].output
    assert merge_by_access(ours) == merge_by_access(qemu)
    runs = re.search(r"(\d+) runs?, (.*) mapped", r["dump"].output)
    assert runs and int(runs.group(1)) == len(ours)


def test_dump_user_and_kernel_split_the_runs(at_kmain):
    r = at_kmain
    for name in ("dump", "dump_user", "dump_kernel"):
        assert not r[name].error and "mapped" in r[name].output, (name, r[name])
    everything = dump_ranges(r["dump"].output)
    user, kernel_only = dump_ranges(r["dump_user"].output), dump_ranges(r["dump_kernel"].output)
    assert all(u for _, _, u, _ in user) and not any(u for _, _, u, _ in kernel_only)
    assert sorted(user + kernel_only) == everything


def test_regs_agree_with_qemu(at_kmain):
    r = at_kmain
    text = r["regs"].output
    assert re.search(r"^CR0 .* PG", text, re.M) and "paging: 4-level" in text
    assert "CR3   0x%016x" % r["cr3"].value in text
    monitor = r["monitor_regs"].output
    for table in ("GDT", "IDT"):
        base, limit = re.search(table + r"=\s+([0-9a-f]+) ([0-9a-f]+)", monitor).groups()
        assert "%-5s base 0x%016x limit %#x" % (table, int(base, 16), int(limit, 16)) in text
    selector, base = re.search(r"TR =([0-9a-f]{4}) ([0-9a-f]+)", monitor).groups()
    assert "TR    selector %#x base 0x%016x" % (int(selector, 16), int(base, 16)) in text
    efer = int(re.search(r"EFER=([0-9a-f]+)", monitor).group(1), 16)
    assert "EFER  0x%016x" % efer in text and "LMA" in text


def test_diff(at_kmain):
    r = at_kmain
    assert r["diff_same"].output.strip().endswith("no differences")
    # A root that is not RAM is refused, not compared as an empty tree.
    assert r["diff_empty"].error == ("pt-diff: ROOT_B %#x: cannot read a table at %#x: %#x is "
                                     "not guest RAM" % (OUTSIDE_RAM, OUTSIDE_RAM, OUTSIDE_RAM))


def test_problem_lists_are_capped(at_kmain):
    lines = at_kmain["capped"].output.split("\n")
    assert lines[:2] == ["problem: entry 0 is bad", "problem: entry 1 is bad"]
    assert len(lines) == 21 and lines[-1] == "problem: ... and 31980 more (32000 in all)"


def test_nothing_wrong_at_kmain(at_kmain):
    r = at_kmain
    lines = r["why"].output.strip().split("\n")
    assert lines[0] == "no trap frame: x86_trap is not on the stack; looking at the CPU as it is"
    assert lines[-1].startswith("verdict: nothing is wrong that I can see: no exception is being "
                                "handled"), r["why"].output


def test_top_level_view_at_kmain(at_kmain):
    """Before vm::init the boot root is active and nothing is published to compare with: the
    view lists the present entries (the boot stub's 0, 256, 384 and 511: identity, window,
    device area, image) and says so."""
    text = at_kmain["top"].output
    assert text.startswith("PML4 table of root 0x")
    present = [int(i) for i in re.findall(r"^  \[(\d+)\] +present ->", text, re.M)]
    assert present == [0, 256, 384, 511], text
    assert "lower half: 1 of 256 present; kernel half: 3 of 256 present" in text
    assert "note: no kernel root to compare with" in text


def test_physical_width_is_the_cpus(at_kmain):
    """The width fault-why and the walks use is the CPU's (40 bits on QEMU's qemu64 model),
    not the architectural 52."""
    r = at_kmain
    bits = int(r["qom_bits"].output.strip())
    assert "physical address width: %d bits" % bits in r["regs"].output


def test_roots_must_be_physical(at_kmain):
    r = at_kmain
    assert not r["walk_boot_root"].error, r["walk_boot_root"].error
    assert "  root: 0x%016x" % r["boot_root"].value in r["walk_boot_root"].output
    assert r["kva_root"].error == (
        "pt-walk: root 0xffff800000000000 + %#x: %#x is a kernel virtual address, not a physical "
        "one; roots are physical addresses (the active root maps it to PA %#x: pass that)"
        % (r["cr3"].value, 0xffff800000000000 + r["cr3"].value, r["cr3"].value))
    assert r["kva_diff"].error.startswith("pt-diff: ROOT_B 0xffffffff80100000: "
                                          "0xffffffff80100000 is a kernel virtual address")
    # A page of kernel code is not a root table: refused, not dumped as garbage.
    assert re.match(r"pt-dump: root \(long\)&pagoda::kmain - 0xffffffff80000000: the page at "
                    r"0x[0-9a-f]+ "
                    r"does not look like a root table: \d+ of its \d+ present entries are "
                    r"malformed", r["data_root"].error), r["data_root"]


def test_physical_mode_is_restored_after_failures(at_kmain):
    r = at_kmain
    assert 'received: "0"' in r["mode_before"].output
    # A root outside RAM: the walk stops at the first read, and the mode is back to virtual.
    assert not r["bogus_root"].error, r["bogus_root"].error
    assert "not guest RAM" in r["bogus_root"].output
    assert 'received: "0"' in r["mode_after_bogus"].output
    # An exception inside the physical-memory block.
    assert not r["raise_inside"].error, r["raise_inside"].error
    assert r["raise_inside"].output == "0"
    assert 'received: "0"' in r["mode_after_raise"].output
    assert r["virtual_read_after"].error == ""


def test_every_command_has_help(kernel):
    """-h and --help print the command's help, like `help NAME`, for every command; nothing
    else runs (no connection is needed)."""
    argv = gdbrig.gdb_argv(kernel, "-ex", "python import pagoda_gdb.registry as r; "
                           "print('NAMES=' + ' '.join(n for n, _, _ in r.commands()))")
    names = re.search(r"NAMES=(.*)", subprocess.run(argv, capture_output=True, text=True,
                                                     timeout=scaled(60)).stdout).group(1).split()
    assert {"pt-walk", "pt-dump", "pt-diff", "pt-regs", "pt-top", "fault-why",
            "pagoda-attach", "pagoda-serial", "pagoda-help"} <= set(names)
    commands = [f"{name} {flag}" for name in names for flag in ("-h", "--help")] + \
        ["pt-walk $rsp -h"]
    argv = gdbrig.gdb_argv(kernel, *[a for cmd in commands for a in ("-ex", cmd)],
                           *[a for name in names for a in ("-ex", f"help {name}")])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=scaled(60))
    assert proc.stderr.strip() == "", proc.stderr
    for name in names:
        usage = re.escape("Usage: %s" % name)
        assert len(re.findall(r"^" + usage, proc.stdout, re.M)) == 3 + (name == "pt-walk"), name


def test_bad_arguments_are_one_line_usage_errors(kernel):
    commands = {
        "pt-walk": "pt-walk: missing argument (usage: pt-walk VA [--root PID|PA] [--cpu N])",
        "pt-walk 1 --frobnicate": "pt-walk: unknown option --frobnicate (usage: ",
        "pt-walk 1 --root": "pt-walk: --root needs a value (usage: ",
        "pt-walk &kmain": f'did you mean {C.KMAIN}?',
        f"pt-walk {C.KMAIN}(": "pt-walk: cannot evaluate VA",
        "pt-dump --user --kernel": "pt-dump: --user and --kernel exclude each other",
        "pt-dump extra": "pt-dump: too many arguments: extra",
        "pt-diff $cr3": "pt-diff: missing argument (usage: pt-diff ROOT_A ROOT_B)",
        "pt-regs now": "pt-regs: too many arguments",
        "fault-why x": "fault-why: too many arguments",
        "pt-walk 'unbalanced": "pt-walk: unbalanced quotes",
    }
    with Machine(kernel) as machine:
        argv = gdbrig.gdb_argv(kernel, "-ex", f"pagoda-attach {machine.socket} --no-entry",
                               *[a for cmd in commands for a in ("-ex", cmd)])
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=scaled(60))
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = proc.stderr.strip().split("\n")
    for cmd, expected in commands.items():
        name = cmd.split()[0]
        hits = [line for line in errors if line.startswith(name + ":") and expected in line]
        assert hits, f"{cmd!r}: no line with {expected!r} in:\n{proc.stderr}"


def test_not_connected_is_a_clear_message(kernel):
    commands = ["pt-walk 0x1000", "pt-dump", "pt-regs", "pt-diff 1 2", "fault-why"]
    argv = gdbrig.gdb_argv(kernel, *[a for cmd in commands for a in ("-ex", cmd)])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=scaled(60))
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.split("\n") if line]
    for cmd in commands:
        name = cmd.split()[0]
        assert f"{name}: not connected to QEMU: start a session with ./pagoda gdb" in \
            "\n".join(lines), proc.stderr


def test_paging_off_at_the_entry_point(kernel):
    with Machine(kernel) as machine:
        results = run_steps(kernel, machine.socket, [
            ("walk", "cmd", "pt-walk $pc"), ("dump", "cmd", "pt-dump"),
            ("regs", "cmd", "pt-regs")], attach="--no-panic-break")
    assert results["walk"].error.startswith("pt-walk: paging is off (CR0.PG=0)"), results["walk"]
    assert results["dump"].error.startswith("pt-dump: paging is off")
    assert "paging: disabled" in results["regs"].output


def test_attach_stops_at_the_elf_entry(kernel):
    with open(kernel, "rb") as f:
        header = f.read(32)
    entry = int.from_bytes(header[24:32], "little")
    with Machine(kernel) as machine:
        argv = gdbrig.gdb_argv(kernel, "-ex", f"pagoda-attach {machine.socket}",
                               "-ex", "python print('pc=%#x' % int(gdb.parse_and_eval('$pc')))",
                               "-ex", "info breakpoints")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=scaled(60))
    assert f"pc={entry:#x}" in proc.stdout, proc.stdout + proc.stderr
    assert "Stopped at the kernel's entry point %#x" % entry in proc.stdout
    assert re.search(r"breakpoint\s+keep\s+y\s+0x[0-9a-f]+ in pagoda::panic_end", proc.stdout)


def test_serial_output_is_shown_at_stops(kernel):
    with Machine(kernel, test="panic") as machine:
        argv = gdbrig.gdb_argv(kernel, "-ex", f"set pagoda-serial-log {machine.serial}",
                               "-ex", f"pagoda-attach {machine.socket} --no-entry",
                               "-ex", "continue", "-ex", "pagoda-serial",
                               "-ex", "pagoda-serial --all")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=scaled(60))
        serial = machine.serial_text()
    first = serial.split("\n")[0]
    assert "PANIC: self-test panic" in serial
    assert first and f"[serial] {first}" in proc.stdout, proc.stdout
    assert "[serial] PANIC: self-test panic" in proc.stdout
    assert "(no new serial output)" in proc.stdout
    assert proc.stdout.count(first) == 2   # at the stop, and again with --all


def test_autoload_script_needs_the_safe_path(kernel, tmp_path):
    from pagoda import gdb as gdbtool
    elf = tmp_path / "kernel.elf"
    elf.write_bytes(open(kernel, "rb").read())
    script = gdbtool.write_autoload(elf=str(elf))
    assert script == str(elf) + "-gdb.py"
    trusted = subprocess.run([gdbrig.GDB, "-batch", "-nx", "-iex",
                              f"add-auto-load-safe-path {tmp_path}", str(elf),
                              "-ex", "pagoda-help"], capture_output=True, text=True, timeout=scaled(60))
    assert "pt-walk VA [--root PID|PA]" in trusted.stdout, trusted.stdout + trusted.stderr
    assert "Traceback" not in trusted.stderr
    untrusted = subprocess.run([gdbrig.GDB, "-batch", "-nx", str(elf), "-ex", "pagoda-help"],
                               capture_output=True, text=True, timeout=scaled(60))
    assert "auto-loading has been declined" in untrusted.stderr
    assert 'Undefined command: "pagoda-help"' in untrusted.stderr
    assert os.path.exists(script)


def test_pretty_printers_show_only_what_is_live(kernel):
    """Result<T> shows `ok`/`ok: value`/`error: ...`, never its dead union member; addresses
    print as typed hexadecimal."""
    steps = [("brk", "cmd", f"break {C.VM_INIT}"), ("go", "cmd", "continue"),
             ("finish", "cmd", "finish"),
             ("returned", "cmd", "print $"),
             ("limit", "cmd", f"print {C.REACHABLE_LIMIT}()"),
             ("raw", "cmd", f"print/r {C.REACHABLE_LIMIT}()")]
    with Machine(kernel) as machine:
        r = run_steps(kernel, machine.socket, steps)
    assert re.search(r"^\$\d+ = ok$", r["returned"].output.strip()), r["returned"].output
    assert re.search(r"= PhysAddr 0x[0-9a-f]+$", r["limit"].output.strip()), r["limit"].output
    assert "value_" in r["raw"].output  # /r bypasses the printer
