"""Bug classes the outside set of slips (issue 26, `./pagoda labs mutants --slips DIR`) found
unnamed: a process that runs in a root other than its own, an entry frame whose user stack
pointer is off the user stack, and an eager loader that leaves a segment page out. Each check
is a pure function of what the grader read (processes.py), tried here on synthetic readings."""
from types import SimpleNamespace

from pagoda_core import faultlog
from pagoda_core.symbolize import Symbolizer
from pagoda_grade.harness import Run
from pagoda_grade.causes import wrong_root_kill
from pagoda_grade.processes import Started, entry_sp_problem, segment_gap_problem
from pagoda_pt.model import Perms

KERNEL_CR3 = 0x245000
HELLO_ROOT = 0x350000
KILL = ("proc 1 (hello): killed: page fault: #PF page fault (vector 14) at RIP 0x400000, address 0x400000: "
        "PML4 entry 0 not present; no VMA")


def user_pf(rip, cr2, error, cr3):
    return (f"     0: v=0e e={error:04x} i=0 cpl=3 IP=0023:{rip:016x} pc={rip:016x} SP=001b:00007ffffffff000 "
            f"CR2={cr2:016x}\nRAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000\n"
            f"CR0=80010011 CR2={cr2:016x} CR3={cr3:016x} CR4=00300020\n")


def run_of(kernel, log_text, lines, tmp_path):
    return Run(token="00", cmdline="", memory="128M", lines=list(lines), exit_code=35, elapsed=1.0,
               directory=str(tmp_path), log=faultlog.parse(log_text, "x86_64"), symbolizer=Symbolizer(kernel),
               arch="x86_64")


def perms(rwx):
    return Perms(read=rwx[0] == "r", write=rwx[1] == "w", execute=rwx[2] == "x", user=True,
                 priv_execute=rwx[2] == "x")


def inspector(rwx, start=0x400000, end=0x401000):
    return SimpleNamespace(dumps={HELLO_ROOT: [SimpleNamespace(va_start=start, va_end=end, perms=perms(rwx))]},
                           half={})


STARTED = {1: Started(1, "hello", HELLO_ROOT, (0xFFFFFF0000004000, 0xFFFFFF0000008000))}
ROOTS = {KERNEL_CR3: "the kernel root", HELLO_ROOT: "root 0x350000 of hello (pid 1)"}


def test_a_kill_at_a_page_the_process_s_own_root_maps_names_the_wrong_root(reference_kernel, tmp_path):
    """switch_to activating the kernel's space: the fetch at the entry faults though hello's
    root maps it r-x; CR3 (QEMU's log) was the kernel root."""
    run = run_of(reference_kernel, user_pf(0x400000, 0x400000, 0x14, KERNEL_CR3), ["run: start", KILL], tmp_path)
    why = wrong_root_kill(run, inspector("r-x"), ROOTS, STARTED)
    assert why is not None and why.startswith("pid 1 (hello) ran in the wrong root"), why
    assert "maps r-x" in why and "the root the CPU held then was the kernel root" in why, why


def test_a_demand_or_copy_on_write_fault_is_not_a_wrong_root(reference_kernel, tmp_path):
    kill = KILL.replace("0x400000, address 0x400000", "0x400000, address 0x402000")
    # a write to a page mapped read-only (copy-on-write, mprotect): the root does not allow it
    run = run_of(reference_kernel, user_pf(0x400000, 0x402000, 0x7, HELLO_ROOT), ["run: start", kill], tmp_path)
    assert wrong_root_kill(run, inspector("r--", 0x402000, 0x403000), ROOTS, STARTED) is None
    # a page the root does not map (a demand fault; a loader that left it out)
    run = run_of(reference_kernel, user_pf(0x400000, 0x400000, 0x14, HELLO_ROOT), ["run: start", KILL], tmp_path)
    assert wrong_root_kill(run, inspector("r-x", 0x500000, 0x501000), ROOTS, STARTED) is None
    # nothing started (the kernel printed no 'started' line): no root to compare with
    assert wrong_root_kill(run, inspector("r-x"), ROOTS, {}) is None


def test_an_entry_frame_stack_pointer_off_the_user_stack_is_named():
    top, floor = 0x7FFF_FFFF_F000, 0x7FFF_FFEF_F000
    what = "pid 1 (hello)'s first frame"
    assert entry_sp_problem(what, 0x400000, top - 0x40, floor, top) is None
    assert entry_sp_problem(what, 0x400000, top, floor, top) is None
    zero = entry_sp_problem(what, 0x400000, 0, floor, top)
    assert "user stack pointer 0x0, which is not on its user stack" in zero and "never set" in zero, zero
    assert "another value" in entry_sp_problem(what, 0x400000, floor, floor, top)


def test_an_eager_loader_that_leaves_a_segment_page_out_is_named_and_a_lazy_one_is_not():
    text = SimpleNamespace(vaddr=0x400000, memsz=0xECA)
    data = SimpleNamespace(vaddr=0x401000, memsz=0x1010)
    who = "root 0x350000 of hello (pid 1): hello"
    one_page = segment_gap_problem(who, [(text, 0x400000)], 0, True)
    assert "segment [0x400000, 0x400eca) is not mapped at 0x400000 (its only page" in one_page, one_page
    last = segment_gap_problem(who, [(data, 0x402000)], 2, False)
    assert "not mapped at 0x402000 (its last page" in last, last
    # lazy (lab 5): no segment page and only the stack's top page mapped
    assert segment_gap_problem(who, [(text, 0x400000), (data, 0x401000), (data, 0x402000)], 0, False) is None
    assert segment_gap_problem(who, [], 3, True) is None


def test_a_window_pointer_made_without_the_window_s_physical_base_is_named(reference_kernel, aarch64_kernel):
    """AArch64's RAM (and window) starts at physical 0x40000000: window_base + pa is past the
    window, in the hole above it; the headline says what the address should have been."""
    from pagoda_grade.causes import window_arithmetic
    from pagoda_grade.symbols import fact
    base, phys = fact(aarch64_kernel, "window_base"), fact(aarch64_kernel, "window_phys_base")
    assert phys != 0
    why = window_arithmetic(aarch64_kernel, base + phys + 0x100000)
    assert why is not None and f"physical {phys + 0x100000:#x} is at {base + 0x100000:#x}" in why, why
    assert "without taking away the window's physical base" in why, why
    assert window_arithmetic(aarch64_kernel, base + 0x100000) is None          # a right window address
    assert window_arithmetic(reference_kernel, fact(reference_kernel, "window_base") + 0x100000) is None  # x86: base 0


def test_an_illegal_instruction_inside_the_program_s_own_code_names_a_page_filled_wrong(reference_kernel):
    """populate() forgetting the file offset, a fork copy that copies nothing: the process runs
    bytes that are not its program's and dies of an illegal instruction where its ELF has code."""
    from pagoda_grade.processes import Killed, foreign_code_kill, user_elf
    from pagoda_grade.symbols import segments
    text = next(s for s in segments(user_elf(reference_kernel, "x86_64", "vmas")) if s.flags & 1)
    kill = Killed(1, "vmas", "illegal instruction", "#UD", 6, text.vaddr + 0x10, None, "")
    why = foreign_code_kill(reference_kernel, "x86_64", {1: kill})
    assert why is not None and why.startswith("proc 1 (vmas) was killed for an illegal instruction"), why
    assert "does not hold the program's bytes" in why and "file offset" in why, why
    outside = Killed(1, "vmas", "illegal instruction", "#UD", 6, text.vaddr + text.filesz + 0x1000, None, "")
    assert foreign_code_kill(reference_kernel, "x86_64", {1: outside}) is None        # not its code: a wild jump
    fault = Killed(1, "vmas", "page fault", "#PF", 14, text.vaddr + 0x10, 0, "")
    assert foreign_code_kill(reference_kernel, "x86_64", {1: fault}) is None          # not an illegal instruction
