"""The headline of a failure (grade/pagoda_grade/causes.py, Run.fail): the cause first, the symptom
after. Each case is a synthetic QEMU log against the reference kernel ELF (its layout facts and
symbols), as the grader reads a real one."""
import pytest

from pagoda_core import faultlog, kernelinfo
from pagoda_core.symbolize import Symbolizer
from pagoda_grade import causes
from pagoda_grade.harness import GradeFailure, Run
from pagoda_grade.symbols import address_of, fact
from pagoda_pt.isa import isa
from pagoda_pt.kernelnames import KernelNames

KERNEL_CR3 = 0x245000


def pf(index, rip, cr2, error, cpl=0, rsp=0xFFFF_FFFF_8022_3F00, cr3=KERNEL_CR3):
    cs = 0x08 if cpl == 0 else 0x23
    return (f"     {index}: v=0e e={error:04x} i=0 cpl={cpl} IP={cs:04x}:{rip:016x} pc={rip:016x} "
            f"SP=0010:{rsp:016x} CR2={cr2:016x}\n"
            f"RAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000\n"
            f"CR0=80010011 CR2={cr2:016x} CR3={cr3:016x} CR4=00300020\n")


def run_of(kernel, log_text, lines=("PANIC: something",), exit_code=35, tmp_path=None, **more):
    return Run(token="00", cmdline="", memory="128M", lines=list(lines), exit_code=exit_code, elapsed=1.0,
               directory=str(tmp_path), symbolizer=Symbolizer(kernel),
               log=faultlog.parse(log_text, "x86_64", KernelNames.read(isa("x86_64"), kernelinfo.elf(kernel).names)),
               arch="x86_64", **more)


@pytest.fixture(scope="module")
def layout(reference_kernel):
    k = reference_kernel
    return dict(kernel=k, memset=address_of(k, "memset"), stack_base=fact(k, "stack_base"),
                stride=fact(k, "kernel_stack_stride"), guard=fact(k, "kernel_stack_guard"),
                size=fact(k, "kernel_stack_size"))


def test_an_unmapped_top_page_of_a_kernel_stack_is_named(layout, tmp_path):
    top_page = layout["stack_base"] + layout["guard"] + layout["size"] - 0xb0
    run = run_of(layout["kernel"], pf(0, layout["memset"], top_page, 0x2), tmp_path=tmp_path)
    cause = causes.first_fault_cause(run)
    assert cause.startswith("the kernel (memset"), cause
    assert "the kernel stack of slot 0" in cause and "its top page" in cause and "not mapped" in cause, cause


def test_a_guard_page_hit_is_an_overflow(layout, tmp_path):
    guard = layout["stack_base"] + layout["stride"] + 0x10
    cause = causes.first_fault_cause(run_of(layout["kernel"], pf(0, layout["memset"], guard, 0x2), tmp_path=tmp_path))
    assert cause.startswith("kernel stack overflow:") and "guard page below the kernel stack of slot 1" in cause


def test_a_low_address_with_the_kernel_root_live_is_a_physical_address_used_as_a_pointer(layout, tmp_path):
    cause = causes.first_fault_cause(run_of(layout["kernel"], pf(0, layout["memset"], 0x7FE_3000, 0x2), tmp_path=tmp_path))
    assert "in the lower half" in cause and "physical" in cause, cause


def test_a_fetch_from_a_present_no_execute_page_is_not_called_unmapped(layout, tmp_path):
    va = fact(layout["kernel"], "window_base") + 0x1000
    cause = causes.first_fault_cause(run_of(layout["kernel"], pf(0, va, va, 0x11), tmp_path=tmp_path))
    assert "mapped without execute permission" in cause and "not mapped" not in cause, cause


def test_resolved_user_faults_are_no_first_fault(layout, tmp_path):
    """A program's demand faults at its entry came first in the summary; the kernel's own fault
    is what killed the machine."""
    text = pf(0, 0x400000, 0x400000, 0x14, cpl=3, rsp=0x7FFF_FFFF_F000) + \
        pf(1, 0x400010, 0x401000, 0x6, cpl=3, rsp=0x7FFF_FFFF_F000) + pf(2, layout["memset"], 0x7FE_3000, 0x2)
    run = run_of(layout["kernel"], text, tmp_path=tmp_path)
    assert causes.first_kernel_fault(run).index == 2
    assert causes.fault_summary(run).startswith("first kernel fault: #PF page fault (vector 14) at RIP %#x" % layout["memset"])
    assert "after 2 fault(s) in user mode" in causes.fault_summary(run)


def test_the_cause_heads_the_failure_and_the_symptom_follows(layout, tmp_path):
    run = run_of(layout["kernel"], "", lines=("selftest x: start", "PANIC: the kernel stack for traps from user "
                                             "mode is wrong: TSS.RSP0 is 0"), tmp_path=tmp_path)
    with pytest.raises(GradeFailure) as e:
        run.expect(r"^never$", "the line the test wanted")
    first, second = str(e.value).splitlines()[:2]
    assert first == "the kernel panicked: the kernel stack for traps from user mode is wrong: TSS.RSP0 is 0"
    assert second.startswith("missing: the line the test wanted")


def test_a_cause_the_test_knows_wins(layout, tmp_path):
    run = run_of(layout["kernel"], pf(0, layout["memset"], 0x7FE_3000, 0x2), tmp_path=tmp_path)
    with pytest.raises(GradeFailure) as e:
        run.fail("the symptom", cause="the cause the test found by walking the roots")
    assert str(e.value).splitlines()[:2] == ["the cause the test found by walking the roots", "the symptom"]


def test_a_clean_success_gets_no_headline(layout, tmp_path):
    run = run_of(layout["kernel"], "", lines=("all good",), exit_code=33, tmp_path=tmp_path)
    assert run.outcome() == "success"
    assert causes.headline(run, "a value was wrong") is None


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_an_overflow_of_the_boot_stack_is_named(arch, reference_kernel, aarch64_kernel, tmp_path):
    """boot_stack had no guard page: its overflow wrote over .bss silently."""
    from pagoda_grade.harness import Booter
    kernel = reference_kernel if arch == "x86_64" else aarch64_kernel
    run = Booter(kernel, arch, str(tmp_path), timeout=120)(test="boot_stack_overflow")
    assert run.outcome() == "failure", run.lines[-10:]
    assert run.search(r"^KERNEL STACK OVERFLOW: the kernel's own stack \(boot_stack \[0x[0-9a-f]+, 0x[0-9a-f]+\)\) ran "
                      r"into its guard page at 0x[0-9a-f]+"), run.lines[-10:]
    assert run.search(r"^PANIC: kernel stack overflow")


def test_a_fault_in_the_boot_stacks_guard_is_a_boot_stack_overflow(layout, tmp_path):
    """The kernel's own stack (boot_stack, in the image's .bss) has its guard below it: a fault
    there is an overflow (or a stack pointer set to the bottom), not a fault in .bss."""
    k = layout["kernel"]
    guard = address_of(k, "boot_stack_guard")
    cause = causes.first_fault_cause(run_of(k, pf(0, layout["memset"], guard + 0xff8, 0x2), tmp_path=tmp_path))
    assert cause.startswith("kernel stack overflow:") and "boot_stack" in cause and "boot stack overflow" in cause, cause
    inside = causes.first_fault_cause(run_of(k, pf(0, layout["memset"], address_of(k, "boot_stack_bottom") + 0x10, 0x2),
                                             tmp_path=tmp_path))
    assert "overflow" not in inside, inside


class _NoWalks:
    """A RootInspector that walked nothing (the dumps and kernel-half findings of no root)."""
    dumps = {}
    half = {}


def death(layout, tmp_path, address):
    from pagoda_grade.causes import explain_death
    from pagoda_grade.processes import Layout
    run = run_of(layout["kernel"], pf(0, layout["memset"], address, 0x2), tmp_path=tmp_path)
    return explain_death(run, _NoWalks(), Layout.of(layout["kernel"]), {KERNEL_CR3: "the kernel root"})


def test_a_kernel_fault_on_page_0_is_a_null_pointer(layout, tmp_path):
    cause = death(layout, tmp_path, 0x10)
    assert "in page 0" in cause and "null pointer" in cause and "physical address" not in cause, cause


def test_a_kernel_fault_on_a_user_stack_address_names_a_user_address_not_kernel_memory(layout, tmp_path):
    """A process's arguments written through their user address while another root is live
    (seed 003's mistake): not 'kernel memory reached through a low address'."""
    cause = death(layout, tmp_path, fact(layout["kernel"], "user_stack_top") - 0x17)
    assert "a user-stack address, and the kernel root does not map it" in cause, cause
    assert "where that process is not loaded" in cause and "physical address" not in cause, cause


def test_a_cause_that_is_also_the_reason_is_said_once(layout, tmp_path):
    run = run_of(layout["kernel"], "", tmp_path=tmp_path)
    with pytest.raises(GradeFailure) as e:
        run.fail("the lab's own evidence", cause="the lab's own evidence")
    assert str(e.value).splitlines()[:2] == ["the lab's own evidence", "the kernel panicked: something"]


def test_no_trailing_guess_about_an_address_line_1_already_named(layout, tmp_path):
    """Line 1 says what the faulting address was (a user address written while another root was
    live): the grader's own guess from where it lies is not added after it, where it could only
    contradict it ("a physical address used as a pointer?")."""
    user = fact(layout["kernel"], "user_stack_top") - 0x17
    run = run_of(layout["kernel"], pf(0, layout["memset"], user, 0x2), tmp_path=tmp_path)
    with pytest.raises(GradeFailure) as e:
        run.fail("the symptom", cause=f"the kernel wrote the arguments through their user address {user:#x}")
    assert "the first fault's cause" not in str(e.value) and "physical address" not in str(e.value), str(e.value)
    other = run_of(layout["kernel"], pf(0, layout["memset"], 0x7FE_3000, 0x2), tmp_path=tmp_path)
    with pytest.raises(GradeFailure) as e:     # (a line 1 that does not name it: the grader's reading follows)
        other.fail("the symptom", cause=f"a cause about {0x7FE_30:#x}, another address")
    assert "the first fault's cause: the kernel (memset" in str(e.value)


def test_a_user_address_far_above_ram_is_no_physical_address(layout, tmp_path):
    user = fact(layout["kernel"], "user_stack_top") - 0x17
    cause = causes.first_fault_cause(run_of(layout["kernel"], pf(0, layout["memset"], user, 0x2), tmp_path=tmp_path))
    assert "a user address far above any RAM" in cause and "physical" not in cause, cause
