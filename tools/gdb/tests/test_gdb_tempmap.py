"""tmpmap and fault-why on lab 4's temporary mappings, against the reference kernel.

One boot per ISA runs `tmstress`; GDB stops in pagoda_temp_stress_round, where two TempMap guards are
live (the round's outer and inner frames), and lists the slots. Then it clears the inner slot's
entry behind the kernel's back (a slot whose entry is not in the table the CPU walks, as when a
slot is written into a table that is not the live one) and lets the kernel run into it: the
kernel faults on the slot, and fault-why must name the slot, say that it is live and that the
active root does not map it. Nothing is taken from what the kernel printed: the frames are
compared with the kernel's own stress state and with the walk of `monitor gva2gpa`.
"""
import re

import pytest

import gdbrig
from gdbrig import Machine, run_steps
from pagoda_pt import contract as C

pytestmark = [pytest.mark.timeout(180)]

HEX = r"0x[0-9a-f]+"
ROW = re.compile(r"^\s+(\d+)\s+(%s)\s+(live  frame (%s)|free)\s+(.*?)\s+entry @PA (%s)$" % (HEX, HEX, HEX))


@pytest.fixture(scope="module", params=["x86_64", "aarch64"])
def stopped(request):
    arch = request.param
    missing = gdbrig.missing_tools(gdbrig.QEMU if arch == "x86_64" else gdbrig.QEMU_AARCH64)
    if missing:
        pytest.skip(missing)
    kernel = gdbrig.build_kernel(arch)
    steps = [("brk", "cmd", f"break {C.TEMP_STRESS_ROUND}"), ("go", "cmd", "continue"),
             ("list", "cmd", "tmpmap"),
             ("f0", "eval", f"{C.TEMP_STRESS}.frames[0]"), ("f1", "eval", f"{C.TEMP_STRESS}.frames[1]"),
             ("f2", "eval", f"{C.TEMP_STRESS}.frames[2]"), ("f3", "eval", f"{C.TEMP_STRESS}.frames[3]"),
             ("slot1", "eval", f"(unsigned long)&{C.fact_symbol('temp_map_base')} + 4096 * (8 * {C.TEMP_AREA}->cpu_ + 1)"),
             ("gva", "cmd", "monitor gva2gpa {slot1:#x}"),
             ("zap", "cmd", f"set var *{C.TEMP_AREA}->entries_[1] = 0"),
             ("after", "cmd", "tmpmap"),
             ("del", "cmd", f"clear {C.TEMP_STRESS_ROUND}"), ("go2", "cmd", "continue"),
             ("why", "cmd", "fault-why")]
    with Machine(kernel, cmdline="run=tmstress:20000:10000 token=gdb", arch=arch) as machine:
        results = run_steps(kernel, machine.socket, steps, attach="--no-entry")
    for name in ("list", "gva", "zap", "after", "why"):
        assert not results[name].error, (name, results[name].error)
    return results


def rows(text):
    return {int(m.group(1)): m for m in map(ROW.match, text.splitlines()) if m}


def test_tmpmap_lists_the_live_slots_with_their_frames_and_owners(stopped):
    text = stopped["list"].output
    assert re.search(r"^temp-map slots of CPU 0: 2 live of 8; \d+ maps since boot$", text, re.M), text
    table = rows(text)
    assert sorted(table) == list(range(8)), text
    frames = {stopped[f"f{k}"].value for k in range(4)}
    live = [int(table[s].group(4), 16) for s in (0, 1)]
    assert set(live) <= frames and live[0] != live[1], (text, frames)
    assert all(table[s].group(3) == "free" for s in range(2, 8)), text
    # QEMU's own walk of slot 1 agrees with the frame tmpmap names
    assert gdbrig.monitor_gva2gpa(stopped["gva"].output) == live[1], stopped["gva"].output
    # the owners: the guards of sys_temp_stress's round (when the compiler kept them)
    owners = [table[s].group(5) for s in (0, 1)]
    assert all(o == "?" or "sys_temp_stress" in o for o in owners), owners
    assert "problem:" not in text, text


def test_tmpmap_names_a_live_slot_the_active_root_does_not_map(stopped):
    text = stopped["after"].output
    assert re.search(r"^problem: slot 1: live, yet not mapped in the active root \(.*\)$", text, re.M), text
    assert not re.search(r"^problem: slot 0", text, re.M), text


def test_fault_why_names_the_slot_and_that_it_is_live(stopped):
    lines = stopped["why"].output.strip().splitlines()
    slot1 = stopped["slot1"].value
    assert any(re.match(r"^\s+temp-map\s+1\s+%#018x\s+live  frame" % slot1, line) for line in lines), lines
    verdicts = [m for m in (re.match(r"^verdict: (%s) is temp-map slot 1 of CPU 0, live \(frame %s\): live, yet not "
                                     r"mapped in the active root" % (HEX, HEX), line) for line in lines) if m]
    assert verdicts and slot1 <= int(verdicts[0].group(1), 16) < slot1 + 4096, lines
    assert lines[-1].startswith("verdict: "), lines
