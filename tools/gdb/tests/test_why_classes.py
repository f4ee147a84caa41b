"""fault-why's rules for slips that kill nothing where they are made (labs 3, 5, 6), on synthetic
facts: each must name its cause in the words the lab's slip file asks of the grader (its `cause`
regex, labs/NN-name/mutants/SLUG.toml), and say nothing on the reference's state.

  a user frame that keeps interrupts off (lab 3's entry-interrupts-off-*)     user_interrupts_masked
  a record in use that holds no VMA while pages are mapped (loader-eager-no-record)
                                                                             record_against_pages
  a record whose image VMAs are another program's after exec (exec-keeps-old-record)
                                                                             record_of_another_program
  a fault decision that grows a region that is no stack (grow-any-region)    grows_what_is_not_a_stack
  an image page filled past its file bytes (populate-whole-file-page)         bytes_past_file_size
  a user copy whose fix-up reports success (lab 4's fixup_returns_success_*)  fixup_reports_success
  a new program's arguments written through the live root (args_through_live_root)
                                                                             arguments_through_live_root
  a parent's frame still counting a child's share after the child exec'd (exec-keeps-old-pages)
                                                                             pagoda_pt.frames.exec_kept_story
  a merge rule that ignores permissions, asked through GDB (merge-ignores-permissions)
                                                                             merge_ignores_permissions
  frames a run leaves allocated, named by what they were (teardown-leaks-user-pages)
                                                                             frames_left_after_run
"""
from pagoda_pt.procs import KIND_ANONYMOUS, KIND_IMAGE, KIND_STACK, Proc, Vma
import re

from types import SimpleNamespace

from pagoda_pt.diagnose import (arguments_through_live_root, bytes_past_file_size, merge_ignores_permissions, fixup_reports_success, frames_left_after_run, grows_what_is_not_a_stack,
                                record_against_pages, record_of_another_program)
from pagoda_pt.verdicts import user_interrupts_masked
from pagoda_pt.frames import Census, ProcessMemory, exec_kept_story
from pagoda_pt.trees import UserPage
from pagoda_pt.isa import isa
from pagoda_pt import contract as C

PAGE = 0x1000
# The slips' cause regexes (labs/03-process-roots/mutants/entry-interrupts-off-*.toml, labs/05-vmas/
# mutants/loader-eager-no-record.toml and grow-any-region.toml, labs/06-fork/mutants/exec-keeps-old-record.toml).
IRQ_CAUSE = {"x86_64": r"IF is clear.*timer can never preempt", "aarch64": r"I bit is set.*timer can never preempt"}
EAGER_CAUSE = r"mapped .* eagerly and recorded no VMA"
EXEC_CAUSE = r"record .* is still .*'s, the program before exec"
GROW_CAUSE = r"not a grows-down stack: the fault decision grew it"
TAIL_CAUSE = r"bytes that follow|past the segment.s file (size|bytes)"
FIXUP_CAUSE = r"fix-up path must make the copy return"
TEARDOWN_CAUSE = r"teardown does not free .*user pages"
ARGS_CAUSE = r"through the live root"
EXEC_PAGES_CAUSE = r"exec did not free the old user half"
MERGE_CAUSE = r"merged .*permissions differ|permissions differ.* merged|different permissions"


def vma(start, end, write=False, execute=False, kind=KIND_ANONYMOUS, flags=0):
    return Vma(start=start, end=end, read=True, write=write, execute=execute, kind=kind, flags=flags,
                offset=0, file_size=0)


# ---- lab 3: the frame a process returns to user mode through --------------------------------------

def test_a_user_frame_with_interrupts_off_is_named_on_each_isa():
    """fill_entry_frame's flags without IF (x86_64: RFLAGS 0x2) or with SPSR.I (AArch64: 0x80)."""
    for arch, bad, good in (("x86_64", 0x2, 0x202), ("aarch64", 0x80, 0x0)):
        rule = isa(arch).user_irqs_masked
        assert rule(good) is None, arch
        said = user_interrupts_masked([("proc 1 (hello)", 0x7000, rule(good)), ("proc 2 (spin)", 0x9f58, rule(bad))])
        assert said is not None and re.search(IRQ_CAUSE[arch], said), (arch, said)
        assert said.startswith("proc 2 (spin)") and "0x9f58" in said


def test_flags_that_are_no_user_frame_say_nothing():
    """x86_64: a word without RFLAGS' always-one bit is no RFLAGS; AArch64: an SPSR that returns to
    EL1 is no user frame (its I bit is the kernel's business)."""
    assert isa("x86_64").user_irqs_masked(0x0) is None
    assert isa("aarch64").user_irqs_masked(0x85) is None
    assert user_interrupts_masked([("proc 1 (hello)", 0x7000, None)]) is None
    assert user_interrupts_masked([]) is None


# ---- lab 5: a loader that records nothing ----------------------------------------------------------

def pages(*vas):
    """Pages at @p vas: below 0x402000 the text (r-x), above it data (rw-)."""
    return [UserPage(va, 0x80_0000 + i * PAGE, va >= 0x402000, va < 0x402000, False) for i, va in enumerate(vas)]


def test_an_empty_record_in_use_with_pages_mapped_is_an_eager_loader():
    said = record_against_pages([], pages(0x400000, 0x401000, 0x7ffffffff000), "proc 1 (vmas)",
                                heap=(0x403000, 0x403000), limits=(0x403000, 8 << 20))
    assert said is not None and re.search(EAGER_CAUSE, said), said
    assert "proc 1 (vmas)" in said and "3 user pages" in said


def test_a_record_with_only_the_program_s_own_mappings_is_an_eager_loader_too():
    """vmas's lazy test maps 64 MiB itself: that VMA is the program's, none is the loader's."""
    mmap = vma(0x10_0000_0000, 0x10_0400_0000, write=True)
    said = record_against_pages([mmap], pages(0x400000, 0x402000, 0x10_0000_0000), "proc 1 (vmas)",
                                limits=(0x403000, 8 << 20))
    assert said is not None and re.search(EAGER_CAUSE, said), said
    assert "2 user pages" in said


def test_a_loader_that_recorded_and_mapped_nothing_but_the_arguments_is_not_eager():
    """loader-records-nothing: only the argument page is mapped before the first fetch dies."""
    assert record_against_pages([], pages(0x7ffffffff000), "proc 1 (vmas)", limits=(0x403000, 8 << 20)) is None


def test_an_empty_record_before_lab_5_is_the_lab_4_loader_by_design():
    """Lab 4's loader maps everything and leaves the record as it was made (no heap, no stack limit);
    a forked child whose record fork never copied has none either (another rule names that)."""
    assert record_against_pages([], pages(0x400000), "proc 1 (hello)", limits=(0, 0)) is None
    assert record_against_pages([], pages(0x400000), "proc 1 (hello)") is None
    assert record_against_pages([], [], "proc 1 (vmas)", limits=(0x403000, 8 << 20)) is None


# ---- lab 6: exec that keeps the old record ---------------------------------------------------------

def test_image_vmas_of_another_program_are_the_record_before_exec():
    said = record_of_another_program("proc 2 (echo)", "echo", [("[0x400000, 0x402000) r-x image", "forktree"),
                                                                 ("[0x402000, 0x403000) rw- image", "forktree")])
    assert said is not None and re.search(EXEC_CAUSE, said), said
    assert "forktree's" in said and "(and 1 more)" in said


def test_image_vmas_of_the_process_s_own_program_say_nothing():
    assert record_of_another_program("proc 2 (echo)", "echo", [("[0x400000, 0x402000) r-x image", "echo")]) is None
    assert record_of_another_program("proc 2 (echo)", "echo", [("[0x400000, 0x402000) r-x image", None)]) is None


# ---- lab 5: a fault decision that grows anything -------------------------------------------------

STACK = vma(0x7fff_fff0_0000, 0x8000_0000_0000, write=True, kind=KIND_STACK, flags=1)
TEXT = vma(0x400000, 0x402000, execute=True, kind=KIND_IMAGE)
HEAP_AFTER_HOLE = vma(0x10_0000_4000, 0x10_0000_8000, write=True)
HEAP_BEFORE_HOLE = vma(0x10_0000_0000, 0x10_0000_3000, write=True)


def reference_decide(vmas):
    """decide_fault's answer for a read: Populate inside a VMA, Grow just below a grows-down one,
    Deny otherwise."""
    def decide(va):
        if any(v.start <= va < v.end for v in vmas):
            return "Populate"
        above = sorted((v for v in vmas if v.start > va), key=lambda v: v.start)
        return "Grow" if above and above[0].flags & 1 else "Deny"
    return decide


def grow_anything(vmas):
    def decide(va):
        if any(v.start <= va < v.end for v in vmas):
            return "Populate"
        return "Grow" if any(v.start > va for v in vmas) else "Deny"
    return decide


def test_a_decision_that_grows_a_region_that_is_no_stack_is_named():
    vmas = [TEXT, HEAP_BEFORE_HOLE, HEAP_AFTER_HOLE, STACK]
    asked = []

    def decide(va):
        asked.append(va)
        return grow_anything(vmas)(va)
    said = grows_what_is_not_a_stack("proc 1 (vmas)", vmas, decide)
    assert said is not None and re.search(GROW_CAUSE, said), said
    assert asked[0] == TEXT.start - PAGE and "%#x" % (TEXT.start - PAGE) in said


def test_the_reference_decision_and_a_decision_not_asked_say_nothing():
    vmas = [TEXT, HEAP_BEFORE_HOLE, HEAP_AFTER_HOLE, STACK]
    asked = []

    def decide(va):
        asked.append(va)
        return reference_decide(vmas)(va)
    assert grows_what_is_not_a_stack("proc 1 (vmas)", vmas, decide) is None
    # Never below the stack (it may grow), never a page that another VMA covers.
    assert STACK.start - PAGE not in asked and asked == [TEXT.start - PAGE, HEAP_BEFORE_HOLE.start - PAGE,
                                                           HEAP_AFTER_HOLE.start - PAGE]
    assert grows_what_is_not_a_stack("proc 1 (vmas)", vmas, lambda va: None) is None
    assert grows_what_is_not_a_stack("proc 1 (vmas)", vmas, grow_anything(vmas), asks=0) is None


# ---- lab 5: populate's file bytes ------------------------------------------------------------------

FOLLOWING = bytes(range(1, 65))     # what the ELF file holds after the data segment's bytes


def test_a_page_tail_equal_to_the_file_s_next_bytes_was_filled_with_a_whole_file_page():
    said = bytes_past_file_size("proc 1 (vmas)", "[0x402000, 0x404000) rw- image", 0x403000, 0x403123, FOLLOWING,
                                FOLLOWING)
    assert said is not None and re.search(TAIL_CAUSE, said), said
    assert "0x403000" in said and "0x403123" in said


def test_a_tail_the_program_wrote_a_little_of_is_still_the_file_s():
    """vmas's bss test: the program's own variables at the bss's start, the file's bytes after them."""
    written = bytes([0xAA] * 8) + FOLLOWING[8:]
    said = bytes_past_file_size("p", "v", 0x403000, 0x403123, written, FOLLOWING)
    assert said is not None and re.search(TAIL_CAUSE, said) and "56 of the file's 64" in said, said


def test_a_zero_tail_or_one_the_program_wrote_says_nothing():
    assert bytes_past_file_size("p", "v", 0x403000, 0x403123, bytes(64), FOLLOWING) is None
    written = bytes([0xAA] * 32) + FOLLOWING[32:]
    assert bytes_past_file_size("p", "v", 0x403000, 0x403123, written, FOLLOWING) is None
    assert bytes_past_file_size("p", "v", 0x403000, 0x403123, FOLLOWING[:8], FOLLOWING[:8]) is None   # too few to tell
    assert bytes_past_file_size("p", "v", 0x403000, 0x403123, bytes(64), bytes(64)) is None   # the file's zeros
    assert bytes_past_file_size("p", "v", 0x403000, 0x403123, b"", FOLLOWING) is None


# ---- lab 4: the copy's fix-up ------------------------------------------------------------------------

def test_a_copy_that_says_all_copied_after_a_fault_is_named():
    said = fixup_reports_success(C.X86.USER_COPY, 8, 0x0, 0)
    assert said is not None and re.search(FIXUP_CAUSE, said), said


def test_a_copy_that_returns_the_bytes_left_says_nothing():
    assert fixup_reports_success("aarch64_user_copy", 8, 0x0, 8) is None
    assert fixup_reports_success("aarch64_user_copy", 8, 0x0, None) is None
    assert fixup_reports_success("aarch64_user_copy", 0, 0x0, 0) is None


# ---- labs 3, 6: what a run leaves allocated ----------------------------------------------------------

SEEN_USER = {0x354000: ("proc 1 (hello)", 0x400000), 0x355000: ("proc 1 (hello)", 0x401000)}
SEEN_TABLES = {0x350000: ("proc 1 (hello)",)}


def test_frames_left_that_were_user_pages_are_the_teardown_s():
    said = frames_left_after_run([0x354000, 0x355000, 0x360000], SEEN_USER, SEEN_TABLES)
    assert said is not None and re.search(TEARDOWN_CAUSE, said), said
    assert "3 frames" in said and "2 of them" in said and "proc 1 (hello) at 0x400000" in said


def test_frames_left_that_were_tables_or_never_seen_are_not_called_user_pages():
    tables = frames_left_after_run([0x350000], SEEN_USER, SEEN_TABLES)
    assert tables is not None and "page tables" in tables and not re.search(TEARDOWN_CAUSE, tables)
    unseen = frames_left_after_run([0x370000], SEEN_USER, SEEN_TABLES)
    assert unseen is not None and "leaks frames" in unseen and not re.search(TEARDOWN_CAUSE, unseen)
    assert frames_left_after_run([], SEEN_USER, SEEN_TABLES) is None


# ---- lab 4: a program being made, written through the live root ---------------------------------------

TOP = 0x8000_0000_0000
COPY_LOAD, COPY_RESUME = 0xffffffff8013806f, 0xffffffff80138075


X86 = isa("x86_64")
WRITE, READ = 0x2, 0x0   # x86_64 page-fault error codes: a write, a read, of a page not present


def event(pc, address, privilege=0, kind="exception", root=0x350000, error=WRITE):
    return SimpleNamespace(kind=kind, pc=pc, address=address, privilege=privilege, root=root, error=error)


def test_a_copy_that_faults_on_the_argument_page_wrote_through_the_live_root():
    events = [event(0xffffffff80100000, None, kind="interrupt"), event(COPY_LOAD, TOP - 0x17, root=0x245000)]
    said = arguments_through_live_root(events, {COPY_LOAD: COPY_RESUME}, X86, TOP)
    assert said is not None and re.search(ARGS_CAUSE, said), said
    assert "%#x" % (TOP - 0x17) in said and "root 0x245000" in said


def test_a_copy_fault_on_the_stack_once_a_process_ran_is_not_the_loader_s():
    """forktree's child: a system call's copy into its copy-on-write stack page faults, and the
    kernel resolves it (QEMU's log shows the fault all the same)."""
    events = [event(0x400000, 0x400000, privilege=3), event(COPY_LOAD, TOP - 0xd0)]
    assert arguments_through_live_root(events, {COPY_LOAD: COPY_RESUME}, X86, TOP) is None


def test_copies_that_fault_elsewhere_and_other_faults_there_say_nothing():
    """A bad pointer's copy (null, past the stack's top), a user fault on the page, a kernel fault
    outside the copies: none is a write of the arguments."""
    fixups = {COPY_LOAD: COPY_RESUME}
    assert arguments_through_live_root([event(COPY_LOAD, 0x0), event(COPY_LOAD, TOP)], fixups, X86, TOP) is None
    assert arguments_through_live_root([event(0x401000, TOP - 8, privilege=3)], fixups, X86, TOP) is None
    assert arguments_through_live_root([event(0xffffffff80100000, TOP - 8)], fixups, X86, TOP) is None
    assert arguments_through_live_root([event(COPY_LOAD, TOP - 8)], {}, X86, TOP) is None


def test_a_copy_that_reads_the_argument_page_is_a_system_call_s():
    """x86_64: a program's first write() leaves nothing in QEMU's log, so a copy_from_user() that
    faults on its stack buffer (SMAP left on) can be the log's first event: a read, not the
    loader's write of the arguments."""
    said = arguments_through_live_root([event(COPY_LOAD, TOP - 0x210, error=READ)], {COPY_LOAD: COPY_RESUME}, X86,
                                       TOP)
    assert said is None, said


# ---- lab 6: exec that keeps the old user half ------------------------------------------------------

def census_of(refs):
    """Frame 0x10 mapped by proc 1 (forktree) at 0x401000 with the reference count @p refs."""
    parent = ProcessMemory(1, "forktree", 0x353000, set(), [UserPage(0x401000, 0x10000, False, True)])
    counts = [1] * 64
    counts[0x10] = refs
    return Census("x86_64", 64, 0, ["kernel"] * 64, {}, counts, {0x10: [(parent, parent.pages[0])]}, [parent])


ROWS = [Proc(pid=1, name="forktree", parent=0), Proc(pid=2, name="echo", parent=1)]


def test_a_parent_s_frame_counting_a_child_that_exec_d_is_exec_s():
    said = exec_kept_story(census_of(2), ROWS)
    assert said is not None and re.search(EXEC_PAGES_CAUSE, said), said
    assert "proc 2" in said and "now runs echo" in said


def test_a_count_left_with_no_child_that_exec_d_is_not_exec_s():
    """Children still running their parent's program (a copy-on-write copy that kept its reference),
    or counts that match, are another rule's or nothing."""
    assert exec_kept_story(census_of(2), [Proc(pid=1, name="forktree", parent=0),
                                          Proc(pid=2, name="forktree", parent=1)]) is None
    assert exec_kept_story(census_of(1), ROWS) is None
    assert exec_kept_story(census_of(2), ROWS[:1]) is None


# ---- lab 5: the merge rule ---------------------------------------------------------------------------

def test_a_merge_of_neighbours_whose_permissions_differ_is_named():
    said = merge_ignores_permissions("proc 1 (vmas)", "[0x1000000000, 0x1000002000) r-- anonymous", True, True)
    assert said is not None and re.search(MERGE_CAUSE, said), said


def test_a_merge_that_refuses_them_or_merges_nothing_says_nothing():
    """The reference (alike merged, differing not); a skeleton that merges nothing; no answer."""
    assert merge_ignores_permissions("p", "v", True, False) is None
    assert merge_ignores_permissions("p", "v", False, True) is None
    assert merge_ignores_permissions("p", "v", None, None) is None


def test_the_copy_probe_finds_the_copy_s_first_memory_access_on_each_isa():
    """The fix-up probe is made only when that instruction has a fix-up entry (else the kernel
    would panic inside GDB's call): each ISA tells an access from GDB's disassembly."""
    x86, arm = isa("x86_64").touches_memory, isa("aarch64").touches_memory
    assert x86("rep movsb %ds:(%rsi),%es:(%rdi)") and x86("mov (%rsi),%al") and x86("movsb")
    assert not x86("mov %rdx,%rcx") and not x86("xor %eax,%eax") and not x86("ret")
    assert arm("ldrb\tw3, [x1], #1") and arm("strb\tw3, [x0, x4]")
    assert not arm("cbz\tx2, 0xffffffff80227068") and not arm("mov\tx0, x2")
