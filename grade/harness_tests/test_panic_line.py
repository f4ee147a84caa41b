"""The grader names a kernel panic that ended a boot: harness.panic_line() finds the kernel's
"PANIC: " line (the message only, cut when very long) and nothing else."""
from pagoda_grade.harness import PANIC_LINE_MAX, panic_line


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
