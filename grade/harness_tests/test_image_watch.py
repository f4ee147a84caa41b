"""programs.ImageWatch over fake guests: what it records when a process's read-only page does not
hold the grader's program, how it tells a kernel bug from a program that is not the grader's, and
that a test which otherwise passes still fails with what it recorded (Booter.watch_problems,
grade/conftest.py's pytest_pyfunc_call), while a failing test keeps its own reason first.

The programs are tiny ELF files written here (PAGODA_GRADE_USER_DIR names them), so no build is
needed."""
import struct
from types import SimpleNamespace

import pytest

from pagoda_grade import programs

PAGE = programs.PAGE
TEXT = 0x400000
ROOT, OTHER_ROOT = 0x1000000, 0x2000000


def elf(text, vaddr=TEXT):
    """A little-endian ELF64 with one read-execute PT_LOAD of @p text at @p vaddr."""
    ehdr = bytearray(64)
    ehdr[:7] = b"\x7fELF\x02\x01\x01"
    struct.pack_into("<HHIQQQIHHHHHH", ehdr, 16, 2, 62, 1, vaddr, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 120, vaddr, vaddr, len(text), len(text), PAGE)
    return bytes(ehdr) + phdr + text


def text_of(tag):
    return bytes((tag + i * 7) & 0xFF for i in range(PAGE))


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    for name, tag in (("spin", 1), ("echo", 2)):
        (tmp_path / f"{name}.elf").write_bytes(elf(text_of(tag)))
    monkeypatch.setenv(programs.USER_DIR_ENV, str(tmp_path))
    programs._file_image.cache_clear()
    yield tmp_path
    programs._file_image.cache_clear()


class FakeSnap:
    """A stop in process root @p root whose page TEXT maps frame @p frame; @p ram holds frames."""

    def __init__(self, ram, root, frame):
        self.ram, self.lower_root, self.frame = ram, root, frame

    def walk(self, va, root):
        perms = SimpleNamespace(write=False)
        return SimpleNamespace(mapped=va == TEXT, perms=perms, pa=self.frame)

    def read_phys(self, pa, size):
        base = pa & ~(PAGE - 1)
        return self.ram[base][pa - base:pa - base + size]


def watch(names, problems):
    return programs.ImageWatch("x86_64", lambda snap: names, {0x5000}, problems)


def test_the_grader_s_program_records_nothing(user_dir):
    problems = []
    w = watch({ROOT: "spin"}, problems)
    w(FakeSnap({0x7000: text_of(1)}, ROOT, 0x7000))
    assert problems == []


def test_bytes_of_no_program_are_recorded_not_raised(user_dir):
    problems = []
    w = watch({ROOT: "spin"}, problems)
    forged = bytearray(text_of(1))
    forged[0x10] ^= 0xFF
    snap = FakeSnap({0x7000: bytes(forged)}, ROOT, 0x7000)
    w(snap)   # (no AssertionError: the test's own checks speak first)
    w(snap)   # the same root, page and frame: recorded once
    assert len(problems) == 1
    assert "the process spin" in problems[0] and "it does not run the grader's program" in problems[0]
    assert f"at {TEXT + 0x10:#x}" in problems[0]


def test_another_program_s_bytes_are_named(user_dir):
    """spin's root maps echo's text (exec kept the old program, or the kernel loaded another)."""
    problems = []
    watch({ROOT: "spin"}, problems)(FakeSnap({0x7000: text_of(2)}, ROOT, 0x7000))
    assert len(problems) == 1
    assert "holds echo's page 0x400000 instead" in problems[0], problems[0]
    assert "does not run the grader's program spin" in problems[0]


def test_a_frame_that_changed_after_it_was_seen_loaded_is_a_kernel_bug(user_dir):
    """The frame held spin's text at an earlier stop (the parent's), then another root that maps
    it shows other bytes: it was freed while still mapped and reused, not a forged program."""
    problems = []
    ram = {0x7000: text_of(1)}
    w = watch({ROOT: "spin", OTHER_ROOT: "spin"}, problems)
    w(FakeSnap(ram, ROOT, 0x7000))
    assert problems == []
    ram[0x7000] = bytes(PAGE)   # reused: a page table, zeroed
    w(FakeSnap(ram, OTHER_ROOT, 0x7000))
    assert len(problems) == 1
    assert "a frame freed while it is still mapped" in problems[0], problems[0]
    assert "does not run the grader's program" not in problems[0]


def _booter(problems):
    from pagoda_grade.harness import Booter
    booter = object.__new__(Booter)
    booter.watch_problems, booter.image_problems = list(problems), []
    booter.audit_findings, booter.kept_ram, booter.last_boot = [], [], None   # (no audit finding, no RAM kept)
    booter.drain_findings = []   # (no drain found a leak)
    booter.serial_lines, booter.replays = [], []
    return booter


SEEN = "the process spin (root 0x1000) maps its read-only page 0x400000 to frame 0x7000: it does not run the grader's program"


def test_a_test_that_otherwise_passes_fails_with_what_the_watch_saw():
    """harness.decide, where a test is decided: a booting test whose own checks passed fails with
    the watch's first problem; a test that fails on its own keeps its own reason, the watch's after."""
    from pagoda_grade.harness import decide
    assert decide(None, _booter([]), 3, 3) == (True, "")
    assert decide(None, None, 3, 3) == (True, "")   # a test that does not boot
    passed, reason = decide(None, _booter([SEEN]), 3, 3)
    assert not passed and reason.splitlines()[0] == SEEN
    failed = SimpleNamespace(value=AssertionError("record 0x9000 is still init's, the program before exec"),
                             typename="AssertionError")
    passed, reason = decide(failed, _booter([SEEN]), 3, 3)
    assert not passed and reason.splitlines() == ["record 0x9000 is still init's, the program before exec",
                                                  "the grader also saw, at its stops: " + SEEN]
    passed, reason = decide(SimpleNamespace(value=ValueError("x"), typename="ValueError"), None, None, 6)
    assert not passed and reason == "ValueError: x"


def test_the_watch_heads_a_failure_only_when_no_check_of_the_test_named_anything():
    """causes.headline: when the guest ended before the grader's next stop (the reason is only
    that), what the watch saw comes first; a reason from the test's own checks keeps its place."""
    from pagoda_grade import causes
    from pagoda_grade.outcomes import NEVER_REACHED
    run = SimpleNamespace(watch_problems=[SEEN], outcome=lambda: "success", search=lambda pattern: None)
    assert causes.headline(run, f"{NEVER_REACHED}pagoda_grader_checkpoint: the kernel exited first") == SEEN
    assert causes.headline(run, "after exec, pid 2 (echo)'s record is still forktree's, the program before exec") \
        is None
    # the kernel's kill line first, the stop never reached after it: the watch still heads both
    killed = "proc 1 (spin): killed: page fault: #PF page fault (vector 14) at RIP 0x400047, address 0x0: no VMA"
    assert causes.headline(run, f"{killed}\n{NEVER_REACHED}pagoda_grader_checkpoint: the kernel exited first") == SEEN
    run.watch_problems = []
    assert causes.headline(run, f"{NEVER_REACHED}pagoda_grader_checkpoint: the kernel exited first") is None
