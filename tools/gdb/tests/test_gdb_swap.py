"""swap-slots and fault-why's eviction verdicts (lab 7) on a booted reference kernel with a swap
disk, on both ISAs.

One boot runs `swapfork 16 0xff00 before` under a cap of 32 user frames: it evicts its 16 pages
(one slot each), then forks, so that each slot is named by the parent's swap entry and the
child's (count 2). GDB stops at the child's first system call (nothing of it touched yet).
swap-slots --all is checked against what GDB and QEMU read themselves: each holder's leaf entry
read by QEMU (`monitor xp` at the address pt-walk names) and decoded here with the bits the
handout draws, each count read through GDB's typed access to the slot map, the slots in use
counted in GDB's own read of the whole map. Then the slot map and the frame table are changed
behind the kernel's back, each change undone after: a held slot marked free, a free slot marked
held, a mapped frame's reverse map emptied; swap-slots flags each, and fault-why names each in
its verdict. At the child's first swap-in, fault-why calls the fault a swap-in of the slot
swap-slots gave for that page; that slot marked free then, the swap-in panics dropping its hold,
and fault-why's verdict is the panic, the swap state's free slot above it.
"""
import json
import re

import pytest

import gdbrig
from pagoda_pt import contract as C
from gdbrig import Machine, run_steps

HEX = r"0x[0-9a-f]+"
PAGES = 16
SWAP_BYTES = 16 << 20
QEMUS = {"x86_64": gdbrig.QEMU, "aarch64": gdbrig.QEMU_AARCH64}
ARCHES = [pytest.param(a, marks=pytest.mark.skipif(bool(gdbrig.missing_tools(q)), reason=gdbrig.missing_tools(q)))
          for a, q in QEMUS.items()]
pytestmark = pytest.mark.timeout(300)
ROW = re.compile(r"^\s+(\d+)\s+(\d+)  (.*)$", re.M)
HOLDER = re.compile(r"proc (\d+) \(swapfork\) at (%s)" % HEX)
SLOTS = "((unsigned short*)pagoda_swap_state.slots)"
CHILD_SYSCALL = f"break {C.DISPATCHER} if {C.CURRENT_PROCESS.expr}()->pid == 2"


def decode(arch, raw):
    """The slot a swap entry names, by the handout's drawing (labs/07-swap/README.md), or None."""
    if raw & 1:
        return None
    if arch == "x86_64":      # bit 10 SWAP, bit 9 HELD clear, the slot inverted in bits 51:12
        return (~raw >> 12) & ((1 << 40) - 1) if raw & 1 << 10 and not raw & 1 << 9 else None
    return (raw >> 12) & ((1 << 43) - 1) if raw & 1 << 56 and not raw & 1 << 55 else None


# Inside GDB: every holder swap-slots lists, its leaf entry read by QEMU at the address pt-walk
# names; each slot's count through GDB's typed access; the slot map read whole by GDB.
WITNESS = r'''
import re, json
text = gdb.execute("swap-slots --all", to_string=True)
rows = []
for m in re.finditer(r"^\s+(\d+)\s+(\d+)  (.*)$", text, re.M):
    slot = int(m.group(1))
    count = int(gdb.parse_and_eval("%s[%d]" % ("SLOTS", slot)))
    holders = []
    for pid, va in re.findall(r"proc (\d+) \(swapfork\) at (0x[0-9a-f]+)", m.group(3)):
        walk = gdb.execute("pt-walk %s --root %s" % (va, pid), to_string=True)
        at = re.findall(r"@ (0x[0-9a-f]+) = ", walk)[-1]
        raw = gdb.execute("monitor xp /1gx %s" % at, to_string=True).split(":")[1].split()[0]
        holders.append((int(pid), int(va, 16), int(raw, 16)))
    rows.append((slot, count, holders))
n = int(gdb.parse_and_eval("pagoda_swap_state.slot_count"))
data = bytes(gdb.selected_inferior().read_memory(int(gdb.parse_and_eval("pagoda_swap_state.slots")), 2 * n))
in_use = sum(1 for i in range(n) if data[2 * i] or data[2 * i + 1])
result = json.dumps(dict(rows=rows, in_use=in_use, slots=n))
'''.replace("SLOTS", SLOTS)

# Inside GDB: the frame an argument of the step maps (the parent's argument page), every record
# of it in the reverse map's pool made free (its space zeroed; the old values kept for UNDO_FRAME).
FORGET_FRAME = r'''
import re, struct
walk = gdb.execute("pt-walk %#x --root 1" % PAGE, to_string=True)
frame = int(re.search(r"-> PA (0x[0-9a-f]+)", walk).group(1), 16) & ~0xfff
first = int(gdb.parse_and_eval("pagoda_swap_state.first_frame"))
pool = int(gdb.parse_and_eval("pagoda_swap_state.nodes"))
count, size = (int(gdb.parse_and_eval("pagoda_swap_state." + f)) for f in ("node_count", "node_size"))
space_at, frame_at = (int(gdb.parse_and_eval("(unsigned long)&pagoda_fact_rmap_node_" + f)) for f in ("space", "frame"))
data = bytes(gdb.selected_inferior().read_memory(pool, count * size))
saved = []
for i in range(count):
    space = struct.unpack_from("<Q", data, i * size + space_at)[0]
    if space and struct.unpack_from("<I", data, i * size + frame_at)[0] == frame // 4096 - first:
        saved.append(("unsigned long", pool + i * size + space_at, space))
for _, at, _ in saved:
    gdb.execute("set var *(unsigned long*)%#x = 0" % at)
gdb.set_convenience_variable("undo", " ".join("%s:%#x:%d" % (t.replace(" ", "_"), at, v) for t, at, v in saved))
result = hex(frame)
'''
UNDO_FRAME = r'''
for item in str(gdb.convenience_variable("undo")).strip('"').split():
    t, at, v = item.split(":")
    gdb.execute("set var *(%s*)%s = %s" % (t.replace("_", " "), at, v))
result = "undone"
'''


@pytest.fixture(scope="module", params=ARCHES)
def swapped(request):
    arch = request.param
    kernel = gdbrig.build_kernel(arch)
    page = gdbrig.argument_page(kernel)
    steps = [("brk", "cmd", CHILD_SYSCALL), ("go", "cmd", "continue"), ("del", "cmd", "delete"),
             ("slots", "cmd", "swap-slots --all"), ("short", "cmd", "swap-slots"), ("witness", "python", WITNESS),
             ("why", "cmd", "fault-why"),
             # A held slot marked free.
             ("first", "eval", "%s[0]" % SLOTS), ("free", "cmd", "set var %s[0] = 0" % SLOTS),
             ("slots_free", "cmd", "swap-slots"), ("why_free", "cmd", "fault-why"),
             ("unfree", "cmd", "set var %s[0] = {first}" % SLOTS),
             # A free slot marked held: the last one of the disk.
             ("last", "eval", "pagoda_swap_state.slot_count - 1"), ("leak", "cmd", "set var %s[{last}] = 1" % SLOTS),
             ("slots_leak", "cmd", "swap-slots"), ("why_leak", "cmd", "fault-why"),
             ("unleak", "cmd", "set var %s[{last}] = 0" % SLOTS),
             # A mapped frame the frame table forgets.
             ("forget", "python", FORGET_FRAME.replace("PAGE", str(page))),
             ("slots_forgot", "cmd", "swap-slots"), ("why_forgot", "cmd", "fault-why"), ("undo", "python", UNDO_FRAME),
             ("again", "cmd", "swap-slots"),
             # The child's first swap-in.
             ("brk_in", "cmd", f"break {C.SWAP_IN}"), ("go_in", "cmd", "continue"),
             ("why_in", "cmd", "fault-why"),
             # Its slot marked free under it: the swap-in's drop() of its hold panics.
             ("unheld", "cmd", "set var %s[0] = 0" % SLOTS), ("del_in", "cmd", "delete"),
             ("brk_panic", "cmd", f"break {C.PANIC_END}"),
             ("go_panic", "cmd", "continue"), ("why_panic", "cmd", "fault-why")]
    with Machine(kernel, cmdline=f"run=swapfork:{PAGES}:0xff00:before userframes=32", arch=arch,
                 swap=SWAP_BYTES) as machine:
        results = run_steps(kernel, machine.socket, [("log", "cmd", f"set pagoda-serial-log {machine.serial}")] + steps,
                            attach="--no-entry")
    for name, step in results.items():
        assert not step.error, (name, step.error)
    return arch, results


def rows(text):
    return {int(m[1]): (int(m[2]), m[3]) for m in ROW.finditer(text)}


def verdict(text):
    return [line for line in text.splitlines() if line.startswith("verdict: ")][-1]


def test_swap_slots_lists_each_slot_with_its_holders(swapped):
    arch, results = swapped
    text = results["slots"].output
    listed = rows(text)
    shared = {s: HOLDER.findall(h) for s, (count, h) in listed.items() if count == 2}
    assert len(shared) >= PAGES, text
    for slot, holders in shared.items():         # one page of the parent and the child, each
        assert sorted(p for p, _ in holders) == ["1", "2"] and holders[0][1] == holders[1][1], (slot, text)
    assert "<--" not in text and "no problems" in text, text
    witness = json.loads(results["witness"].output)
    assert {r[0] for r in witness["rows"]} == set(listed), (witness, text)
    for slot, count, holders in witness["rows"]:
        assert count == listed[slot][0], (slot, count, text)          # GDB's read of the slot map
        for pid, va, raw in holders:                                  # QEMU's read of the entry
            assert decode(arch, raw) == slot, (slot, pid, hex(va), hex(raw))
        assert len(holders) + listed[slot][1].count("backing of frame") == count, (slot, text)
    assert re.search(r"%d slots \(\d+ KiB of disk\), %d in use" % (witness["slots"], witness["in_use"]), text), \
        (witness["in_use"], text)
    assert witness["in_use"] == len(listed)
    short = results["short"].output
    assert len(rows(short)) == min(64, len(listed)), short
    assert "verdict: nothing is wrong" in results["why"].output, results["why"].output


def test_a_held_slot_the_map_calls_free_is_flagged_and_named(swapped):
    _, results = swapped
    assert results["first"].value == 2
    text = results["slots_free"].output
    count, holders = rows(text)[0]
    assert count == 0 and "<-- FREE in the slot map, yet named" in holders, text
    assert re.search(r"^problem: slot 0 is free in the slot map, yet the swap entry of proc [12] \(swapfork\) at %s "
                     r"names it: a slot freed while a root still names it" % HEX, text, re.M), text
    assert verdict(results["why_free"].output).startswith("verdict: slot 0 is free in the slot map, yet the swap entry of proc"), \
        results["why_free"].output


def test_a_slot_no_one_holds_is_flagged_and_named(swapped):
    _, results = swapped
    last = results["last"].value
    text = results["slots_leak"].output
    assert rows(text)[last] == (1, "-  <-- NO HOLDER: no entry names it, no frame keeps it"), text
    assert "problem: 1 slot held more times than its holders account for (first: slot %d" % last in text, text
    assert verdict(results["why_leak"].output).startswith("verdict: 1 slot held more times than its holders"), \
        results["why_leak"].output


def test_a_mapped_frame_the_frame_table_forgot_is_named(swapped):
    _, results = swapped
    frame = results["forget"].output
    line = r"proc 1 \(swapfork\) at %s maps frame %s, which the frame table calls not resident" % (HEX, frame)
    assert re.search("^problem: " + line, results["slots_forgot"].output, re.M), results["slots_forgot"].output
    assert re.match("verdict: " + line, verdict(results["why_forgot"].output)), results["why_forgot"].output
    assert "no problems" in results["again"].output, results["again"].output    # every change undone


def test_fault_why_calls_the_fault_a_swap_in_of_its_slot(swapped):
    _, results = swapped
    line = verdict(results["why_in"].output)
    m = re.search(r": a swap-in: (%s) lies in the VMA .* its page is swapped out to slot (\d+) \(held 2 times\)" % HEX,
                  line)
    assert m, line
    slot, address = int(m.group(2)), int(m.group(1), 16)
    holders = HOLDER.findall(rows(results["slots"].output)[slot][1])
    assert ("2", hex(address & ~0xfff)) in holders, (line, holders)


def test_a_panic_in_a_swap_in_is_the_verdict_with_the_swap_state_above_it(swapped):
    _, results = swapped
    lines = results["why_panic"].output.splitlines()
    assert lines[-1].startswith("verdict: the kernel panicked: SwapSlots::drop: slot 0 is free already"), lines
    assert any(line.startswith("the fault itself: process 'swapfork' (pid 2") for line in lines), lines
    assert "the swap state at the panic (read inside the swapper: its records may be mid-change): slot 0 is free in " \
           "the slot map, yet the swap entry of proc 1 (swapfork) at 0x" in results["why_panic"].output, lines


@pytest.mark.parametrize("arch", ARCHES)
def test_at_a_swap_hook_s_entry_fault_why_gives_swap_slots_first_problem(arch):
    """Stopped by `break pagoda::vm::forget_user_pages` (a process's exit), nothing of the hook has
    run: the swap state is a stop's like any, and fault-why's verdict is swap-slots' first problem
    (docs/debugging.md), here slot 0, held, marked free behind the kernel's back. (Before, the hook
    counted as the swapper's own code, its records mid-change: "nothing is wrong that I can see".)
    Again at the last teardown, the parent's, which the kernel's own stack reaps: its base
    (pagoda::vm's run_kernel) is no swap code (before, it made every reap "inside the swapper"),
    here with the disk's last slot marked held by no one."""
    kernel = gdbrig.build_kernel(arch)
    steps = [("brk", "cmd", f"break {C.FORGET_USER_PAGES}"), ("go", "cmd", "continue"),
             ("del", "cmd", "delete"), ("first", "eval", "%s[0]" % SLOTS), ("free", "cmd", "set var %s[0] = 0" % SLOTS),
             ("slots", "cmd", "swap-slots"), ("why", "cmd", "fault-why"),
             ("unfree", "cmd", "set var %s[0] = {first}" % SLOTS),
             ("brk_reap", "cmd", f"break {C.DESTROY_PROCESS} if p.pid == 1"), ("go_reap", "cmd", "continue"),
             ("brk_forget", "cmd", f"break {C.FORGET_USER_PAGES}"), ("go_forget", "cmd", "continue"),
             ("last", "eval", "pagoda_swap_state.slot_count - 1"), ("leak", "cmd", "set var %s[{last}] = 1" % SLOTS),
             ("slots_reap", "cmd", "swap-slots"), ("why_reap", "cmd", "fault-why")]
    with Machine(kernel, cmdline=f"run=swapfork:{PAGES}:0xff00:before userframes=32", arch=arch,
                 swap=SWAP_BYTES) as machine:
        results = run_steps(kernel, machine.socket, steps, attach="--no-entry")
    for name, step in results.items():
        assert not step.error, (name, step.error)
    assert results["first"].value >= 1, "slot 0 is not held at the first exit"
    first = re.search(r"^problem: (.*slot 0\b.*)$", results["slots"].output, re.M)
    assert first, results["slots"].output
    assert verdict(results["why"].output) == "verdict: " + first.group(1), results["why"].output
    first = re.search(r"^problem: (.*)$", results["slots_reap"].output, re.M)
    assert first and "slot %d" % results["last"].value in first.group(1), results["slots_reap"].output
    assert verdict(results["why_reap"].output) == "verdict: " + first.group(1), results["why_reap"].output
