"""The kernel's refusal to make a process, when no test asked for it, is the grader's best cause
(causes.kernel_refusal): a "run: cannot start NAME" of a program not damaged on purpose, and a
fork, spawn or exec that failed for another reason than running out of something. A refusal of a
damaged image (NAME!DAMAGE: lab 3's exit test asks for those) and a kill line are not."""
from types import SimpleNamespace

from pagoda_grade.causes import kernel_refusal
from pagoda_grade.outcomes import PANIC_LINE_MAX

START = ("run: cannot start hello: mapping the user stack's top page (the arguments' page) 0x7fffffffe000: already "
         "exists: the page is already mapped (made at kernel/mm/pt/cursor.hpp:426); 0 frames leaked")
FORK = ("proc 1 (forktree): fork failed: copying the parent's pages into the child's root, at page 0x409000: invalid argument: "
        "the child already maps a page fork copies (made at kernel/mm/space/fork_copy.hpp:153)")
DAMAGED = ("run: cannot start hello!machine: invalid argument: built for another machine (made at "
           "kernel/proc/loader.cpp:127); 0 frames leaked")
SLOT = ("proc: kernel stack slot 1 was given back, yet its page 0xffffff000000c000 is still mapped to frame 0x35f000: "
        "the stack's frames were freed (or its slot given back) while its pages stayed mapped")
KILLED = "proc 2 (vmas): killed: page fault: #PF page fault (vector 14) at RIP 0x401000, address 0x0: no VMA"


def run_of(*lines):
    return SimpleNamespace(lines=["Pagoda 0.1 (x86_64) booted", *lines, "run: all processes ended"])


def test_a_refusal_to_start_or_fork_is_the_cause():
    assert kernel_refusal(run_of("hello: hi", START)) == START
    assert kernel_refusal(run_of(KILLED, FORK)) == FORK
    assert kernel_refusal(run_of(FORK, START)) == FORK   # the first one
    assert kernel_refusal(run_of("proc 1 (hello): reaped: exited with code 0", SLOT)) == SLOT


def test_asked_for_refusals_and_kills_are_not():
    assert kernel_refusal(run_of(DAMAGED)) is None
    assert kernel_refusal(run_of(KILLED)) is None
    assert kernel_refusal(run_of("proc 1 (forktree): fork: made pid 2")) is None
    assert kernel_refusal(run_of(DAMAGED, START)) == START


def test_a_long_refusal_is_cut_like_a_panic_line():
    long = START.replace("(made at", "x" * PANIC_LINE_MAX + " (made at")
    said = kernel_refusal(run_of(long))
    assert said.endswith("...") and len(said) == PANIC_LINE_MAX + 3
