"""The grader names a kernel panic that ended a boot: outcomes.panic_line() finds the kernel's
"PANIC: " line (the message only, cut when very long) and nothing else; outcomes.kill_lines()
finds the lines of processes the kernel killed, which a failure quotes when the boot ended
before the grader's stop."""
from pagoda_grade.outcomes import PANIC_LINE_MAX, kill_lines, panic_line


def test_the_first_panic_line_is_named():
    data = (b"run: 1 programs\nproc 1 (x): started\n"
            b"PANIC: AddressSpace::create_user: the new root 0x2de000 does not share the kernel half\n"
            b"backtrace:\nPANIC: panic while panicking\n")
    assert panic_line(data) == "AddressSpace::create_user: the new root 0x2de000 does not share the kernel half"


def test_no_panic_no_name():
    assert panic_line(b"hello\nthe word panic alone is not a panic line\n") == ""
    assert panic_line("") == ""


def test_a_long_panic_is_cut():
    line = panic_line("PANIC: " + "x" * (PANIC_LINE_MAX + 50))
    assert line == "x" * PANIC_LINE_MAX + "..."


def test_kill_lines_are_named_in_order_and_at_most_two():
    data = (b"proc 1 (forktree): started\n"
            b"proc 2 (forktree): killed: page fault: #PF page fault (vector 14) at RIP 0x401000, address 0x0: no VMA\n"
            b"proc 1 (forktree): reaped: killed (page fault)\n"
            b"  proc 3 (x y): killed: stack limit: ...\n"
            b"proc 4 (z): killed: other\n")
    assert kill_lines(data) == [
        "proc 2 (forktree): killed: page fault: #PF page fault (vector 14) at RIP 0x401000, address 0x0: no VMA",
        "proc 3 (x y): killed: stack limit: ..."]
    assert kill_lines(data, at_most=1) == kill_lines(data)[:1]


def test_a_reap_or_a_program_saying_killed_is_not_a_kill_line():
    assert kill_lines(b"proc 1 (a): reaped: killed (page fault)\nhello: killed: not by the kernel\n") == []
    assert kill_lines("") == []


def test_findings_are_kills_and_kernel_reports_in_the_order_printed():
    from pagoda_grade.outcomes import findings
    data = (b"proc 1 (hello): started; root 0x1000, kernel stack [0x1, 0x2)\n"
            b"run: cannot start spin: out of memory; 3 frames leaked\n"
            b"proc 2 (vmas): killed: page fault: #PF ... no VMA\n"
            b"proc 3 (vmas): VMA coverage broken: page 0x400000 mapped r-x to 0x7000: no VMA covers it\n")
    assert findings(data) == ["run: cannot start spin: out of memory; 3 frames leaked",
                              "proc 2 (vmas): killed: page fault: #PF ... no VMA"]
    assert findings(data, at_most=3)[2].startswith("proc 3 (vmas): VMA coverage broken")
    assert findings(b"proc 1 (a): reaped: killed (page fault)\nrun: all processes ended\n") == []


def test_a_stop_never_reached_comes_after_what_the_kernel_said():
    """The cause before the symptom: the kill line heads the reason, the stop the grader never
    reached follows it; with nothing said, the stop alone."""
    from pagoda_grade.outcomes import NEVER_REACHED, is_never_reached, never_reached_reason
    killed = "proc 1 (vmas): killed: page fault: #PF page fault (vector 14) at RIP 0x404e25, address 0x2000021000"
    reason = never_reached_reason("0x401000", "the kernel exited first (QEMU reported that the guest exited)", [killed])
    assert reason.splitlines() == [killed, f"{NEVER_REACHED}0x401000: the kernel exited first (QEMU reported that the "
                                           "guest exited) (after the kernel's line above)"]
    assert never_reached_reason("x", "the kernel exited first", []) == f"{NEVER_REACHED}x: the kernel exited first"
    assert is_never_reached(reason) and is_never_reached(f"{NEVER_REACHED}x: y")
    assert not is_never_reached(f"a check failed\nits detail\n{NEVER_REACHED}x: y")


# ---- the skeleton a kernel reached: the first line of every failure it causes ----------------

SKELETON_LINES = [
    "LAB TODO: lab 4: write TempMapArea::init(), push() and pop() in kernel/mm/tempmap/temp_map.cpp "
    "(labs/04-temp-mappings/README.md)",
    "run: cannot start hello: not implemented yet (a lab skeleton): lab 3: share the kernel half in "
    "X86AddressSpace::create_user() in arch/x86_64/address_space.cpp (labs/03-process-roots/README.md) "
    "(made at arch/x86_64/address_space.cpp:33); 0 frames leaked",
    "PANIC: lab 2: write the small-object path of heap::free() in kernel/mm/heap.cpp (labs/02-higher-half/README.md)",
]


def test_the_first_skeleton_of_the_lab_or_earlier_is_named():
    from pagoda_grade.outcomes import skeleton_reached
    assert skeleton_reached(SKELETON_LINES, 3) == (
        3, "share the kernel half in X86AddressSpace::create_user() in arch/x86_64/address_space.cpp "
           "(labs/03-process-roots/README.md)")
    assert skeleton_reached(SKELETON_LINES, 2)[0] == 2       # lab 3 and 4 come later there
    assert skeleton_reached(SKELETON_LINES, 4)[0] == 4       # the first one said
    assert skeleton_reached(SKELETON_LINES, 1) is None
    assert skeleton_reached(["lab 3: a program's own line without a handout"], 6) is None


def test_the_skeleton_comes_before_the_symptom():
    from pagoda_grade.outcomes import skeleton_headline
    reason = "the guest never reached x86_syscall_entry: the kernel exited first\nboot token 00"
    text = skeleton_headline(reason, SKELETON_LINES, 3)
    assert text.splitlines()[0] == ('lab 3 is not written yet: the kernel reached the skeleton that says "share the '
                                    'kernel half in X86AddressSpace::create_user() in arch/x86_64/address_space.cpp '
                                    '(labs/03-process-roots/README.md)"')
    assert text.splitlines()[1:] == reason.splitlines()
    assert skeleton_headline(reason, SKELETON_LINES, 1) == reason


def test_a_skeleton_with_a_stand_in_never_takes_line_1():
    """share_pages() before copy-on-write: the kernel says it ran the eager copy instead
    (kernel/core/lab.cpp), so a fork bug the test found stays line 1; the skeleton is line 2. A
    skeleton that blocked (no stand-in) still heads the failure."""
    from pagoda_grade.outcomes import skeleton_headline, skeleton_reached
    stand_in = ("LAB TODO: lab 6: write share_pages() in kernel/proc/process.cpp (labs/06-fork/README.md) "
                "(meanwhile: the eager copy stands in for copy-on-write)")
    reason = "wait returned 3 but its child pid 3 exited with code 7, not 5\nboot token 00"
    assert skeleton_reached([stand_in], 6) is None
    text = skeleton_headline(reason, ["forktree: start", stand_in], 6).splitlines()
    assert text[0] == reason.splitlines()[0]
    assert "share_pages()" in text[1] and "the eager copy stands in for copy-on-write" in text[1]
    assert text[2:] == reason.splitlines()[1:]
    assert skeleton_headline("one line", [stand_in], 6).splitlines()[0] == "one line"
    blocked = skeleton_headline(reason, [stand_in] + SKELETON_LINES, 6).splitlines()
    assert blocked[0].startswith("lab 4 is not written yet") and blocked[1:] == reason.splitlines()
    assert skeleton_headline(reason, [stand_in], 5) == reason     # lab 6 comes later there
