"""fault-why quotes the kernel's own words (issue 26: the kernel's report and fault-why agree), on
synthetic facts:

  at a stop with nothing wrong, the kernel's last failure line (pagoda_last_failure) when it
  refused to make a process                                              kernel_failure_verdict
  otherwise, what was checked: the process table and the failure lines   what_was_checked
  at a kill, what the kill line says of the same fault (pagoda_record_words)  with_kernel_words

The lines are the kernel's (kernel/proc/run.cpp launch() and user_fault(), kernel/proc/syscalls.cpp
report_call_failure()); the cause regexes are the slips' (labs/05-vmas/mutants/loader-no-stack-limit.toml,
labs/06-fork/mutants/exec-loads-into-old-space.toml) and set 2's stack-maps-top-page-too.
"""
import re

from pagoda_pt.diagnose import NOTHING_WRONG, kernel_failure_verdict, what_was_checked, with_kernel_words
from pagoda_pt.procs import Proc

CANNOT_START = ("run: cannot start hello: mapping the user stack's top page (the arguments' page) 0x7fffffffe000: "
                "already exists: the page is already mapped; no load segment covers it: the stack's own pages were "
                "mapped up to and including the top page (an eager stack mapping must stop below it: the top page "
                "holds the arguments) (made at kernel/mm/pt/cursor.hpp:426); 0 frames leaked")
EXEC_FAILED = ("proc 2 (forktree): exec failed: mapping the user stack's top page (the arguments' page) 0x7fffffffe000: "
               "already exists: the page is already mapped; the space already mapped user pages before loading began: "
               "the program is being loaded into a space that is not new (made at kernel/mm/pt/cursor.hpp:426)")
SLOT = ("proc: kernel stack slot 1 was given back, yet its page 0xffffff000000c000 is still mapped to frame 0x35f000, "
        "which the allocator holds free: the stack's frames were freed (or its slot given back) while its pages stayed "
        "mapped")
SLOT_CAUSE = r"(kernel stack|stack slot).{0,100}(still mapped|not unmapped|already mapped|freed while)"
KILLED = ("proc 3 (vmas): killed: page fault: #PF page fault (vector 14) at RIP 0x4071fb, address 0x7fffffff6ac0: "
          "PT entry 502 not present; no VMA")
TOP_PAGE_CAUSE = r"(stack|top page|argument).{0,80}(already mapped|mapped twice|twice|exists)"
NOT_NEW_CAUSE = r"space that is not new|not (a )?fresh space"
LIMIT_CAUSE = r"stack limit is 0x0 bytes|stack_limit was never set"


def test_a_refusal_to_start_is_the_verdict_in_the_kernels_words():
    said = kernel_failure_verdict(CANNOT_START, 1)
    assert said is not None and re.search(TOP_PAGE_CAUSE, said, re.IGNORECASE)
    assert said.endswith(CANNOT_START)
    said = kernel_failure_verdict(EXEC_FAILED, 3)
    assert said is not None and re.search(NOT_NEW_CAUSE, said)
    said = kernel_failure_verdict(SLOT, 1)
    assert said is not None and re.search(SLOT_CAUSE, said)


def test_no_line_and_kill_lines_are_not_verdicts():
    """A kill is judged where it happens (the grader's programs fault on purpose); no line, no verdict;
    a refusal the kernel was asked for is none either."""
    assert kernel_failure_verdict(KILLED, 2) is None
    assert kernel_failure_verdict("", 0) is None
    assert kernel_failure_verdict(None, 0) is None
    assert kernel_failure_verdict(CANNOT_START, 0) is None   # a count of 0: the text is not this boot's
    # a refusal of an image damaged on purpose (lab 3's exit test asks for those), as the grader's headline
    assert kernel_failure_verdict("run: cannot start hello!machine: invalid argument: built for another machine", 1) is None


def test_nothing_wrong_says_what_was_checked():
    rows = [Proc(pid=1, name="hello", state_word="zombie"), Proc(pid=2, name="spin", state_word="ready")]
    line = what_was_checked(rows, KILLED, 2)
    assert line.startswith("checked: the process table holds 2 processes (1 hello zombie, 2 spin ready)")
    assert "2 failure lines since boot, the last: " + KILLED in line
    assert not line.startswith("verdict: ") and NOTHING_WRONG not in line
    line = what_was_checked([], None, 0)
    assert "holds no process" in line and "no failure line since boot" in line and "memory call" not in line
    line = what_was_checked([], None, 0, "proc 3 (vmas): mprotect(0x2000016000, 0x3000, 0x3) = -ENOMEM")
    assert line.endswith("; the last memory call it refused: proc 3 (vmas): mprotect(0x2000016000, 0x3000, 0x3) = -ENOMEM")


def test_a_kill_verdict_quotes_the_kill_lines_words():
    words = ("stack limit: below the lowest stack address 0x7ffffffff000, stack [0x7fffffff7000, 0x7ffffffff000) rw- "
             "user stack grows-down; the record's stack limit is 0x0 bytes, less than the stack region's own 0x8000: "
             "the stack can never grow (the record's stack_limit was never set, or lost)")
    said = with_kernel_words("proc 2 (vmas) in ring 3: the stack ran out", words)
    assert said.startswith("proc 2 (vmas) in ring 3: the stack ran out; the kernel's kill line says: stack limit")
    assert re.search(LIMIT_CAUSE, said)
    assert with_kernel_words("the sentence", "") == "the sentence"
    assert with_kernel_words("the sentence", None) == "the sentence"
