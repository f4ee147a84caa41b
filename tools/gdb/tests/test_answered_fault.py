"""fault-why at a kill the record itself calls right (lab 5): the slip is in which fault the kernel
answered. A fault the VMAs refuse that QEMU's log shows answered first (the same instruction on
the same page, in the same state, again) is the decision's bug, not the program's; a fault at
the stack pointer in a process none of whose VMAs grows down is the loader's (it did not record
the stack). Pure rules: pagoda_pt.diagnose.answered_before and user_fault_decision."""
from pagoda_pt.procs import KIND_ANONYMOUS, KIND_IMAGE, KIND_STACK, Vma
from dataclasses import dataclass, field
from typing import Optional

from pagoda_pt.diagnose import answered_before, user_fault_decision

RO = Vma(start=0x10_0000_0000, end=0x10_0000_1000, read=True, write=False, execute=False,
          kind=KIND_ANONYMOUS, flags=0)
TEXT = Vma(start=0x40_0000, end=0x40_2000, read=True, write=False, execute=True, kind=KIND_IMAGE, flags=0)
DATA = Vma(start=0x40_2000, end=0x40_4000, read=True, write=True, execute=False, kind=KIND_IMAGE, flags=0)
STACK = Vma(start=0x7FFF_FFFF_0000, end=0x8000_0000_0000, read=True, write=True, execute=False,
             kind=KIND_STACK, flags=1)


@dataclass
class Ev:
    """Stands in for tools/pagoda_core/faultlog.Event (the fields the rule reads)."""
    kind: str
    pc: int
    address: Optional[int] = None
    root: Optional[int] = None
    registers: dict = field(default_factory=dict)


def fault(pc, address, root=None, **regs):
    return Ev("exception", pc, address, root, dict(regs))


TICK = Ev("interrupt", 0x40_2DEA)
SYSCALL = Ev("software", 0x40_1000)   # AArch64's SVC (x86's SYSCALL is not logged)


# ---- answered_before: QEMU's log ----------------------------------------------------------------

def test_the_same_write_answered_then_taken_again_counts():
    """Not present (answered by mapping the page read-only), then a protection fault: one answer."""
    events = [fault(0x40_0000, 0x40_0000), fault(0x40_2DEA, 0x10_0000_0000, 0x353000, RAX=0x31, RSP=0x7FF0),
              TICK, fault(0x40_2DEA, 0x10_0000_0000, 0x353000, RAX=0x31, RSP=0x7FF0)]
    assert answered_before(events, 0x40_2DEA, 0x10_0000_0000) == 1


def test_a_first_fault_was_never_answered():
    events = [fault(0x40_0000, 0x40_0000), fault(0x40_2DEA, 0x10_0000_0000)]
    assert answered_before(events, 0x40_2DEA, 0x10_0000_0000) == 0
    assert answered_before(events, 0x40_9999, 0x10_0000_0000) == 0     # not in the log at all


def test_the_program_going_on_between_breaks_the_chain():
    """A system call between (AArch64's SVC), another exception, other registers (x86: a system
    call changed RAX/RCX/R11), or another root (a forked child at the same instruction): not a
    retry of the same fault."""
    pc, va = 0x40_2DEA, 0x10_0000_0000
    assert answered_before([fault(pc, va), SYSCALL, fault(pc, va)], pc, va) == 0
    assert answered_before([fault(pc, va), fault(0x40_1000, 0x40_3000), fault(pc, va)], pc, va) == 0
    assert answered_before([fault(pc, va, RAX=1, RCX=2), fault(pc, va, RAX=0, RCX=2)], pc, va) == 0
    assert answered_before([fault(pc, va, 0x353000), fault(pc, va, 0x35D000)], pc, va) == 0
    # Same page, another offset: still the same instruction's page.
    assert answered_before([fault(pc, va + 8), fault(pc, va + 8), fault(pc, va)], pc, va) == 2


# ---- user_fault_decision with the log's count and the stack pointer ---------------------------

def test_a_refused_write_answered_first_blames_the_decision():
    kind, sentence = user_fault_decision([TEXT, DATA, RO, STACK], 0x10_0000_0000, True, False, True, "r--",
                                         1 << 20, killing=True, who="proc 1 (vmas)", answered=1, pc=0x40_2DEA)
    assert kind == "wrong"
    assert sentence.startswith("the kernel's fault decision allowed a write to the read-only VMA "
                               "[0x1000000000, 0x1000001000) r-- anonymous: QEMU's log shows this same fault "
                               "(the instruction at 0x402dea, page 0x1000000000, the same state) answered once")
    # The program's own refused write (the log shows no earlier answer) stays the program's.
    assert user_fault_decision([TEXT, DATA, RO, STACK], 0x10_0000_0000, True, False, True, "r--", 1 << 20,
                               killing=True, answered=0)[0] == "deny"
    # Not in the kill path (a breakpoint at the fault): no verdict about a kill yet.
    assert user_fault_decision([TEXT, DATA, RO, STACK], 0x10_0000_0000, True, False, True, "r--", 1 << 20,
                               answered=1)[0] == "deny"


def test_each_refusal_is_named_by_what_the_record_refuses():
    vmas = [TEXT, DATA, STACK]
    fetch = user_fault_decision(vmas, 0x40_2010, False, True, True, "rw-", 1 << 20, killing=True, answered=2)[1]
    assert "allowed an instruction fetch from the non-executable VMA [0x402000, 0x404000)" in fetch
    assert "answered 2 times" in fetch
    nowhere = user_fault_decision(vmas, 0x60_0000, False, False, True, "rw-", 1 << 20, killing=True, answered=1)[1]
    assert "allowed a read at 0x600000, which no VMA covers" in nowhere


def test_a_stack_fault_with_no_stack_vma_is_the_loader_s():
    sp = 0x7FFF_FFFF_D970
    kind, sentence = user_fault_decision([TEXT, DATA], sp, True, False, False, None, 1 << 20,
                                         who="proc 1 (vmas)", sp=sp)
    assert kind == "deny" and sentence.startswith("the loader did not record the stack: no VMA covers 0x7fffffffd970, "
                                                  "at the stack pointer 0x7fffffffd970, and none of the 2 VMAs of "
                                                  "proc 1 (vmas) grows down")
    # A frame being pushed a few pages below the stack pointer is the stack's too.
    assert "did not record the stack" in user_fault_decision([TEXT, DATA], sp - 0x3000, True, False, False, None,
                                                             1 << 20, sp=sp)[1]
    # Far from the stack pointer, or with a stack VMA recorded: no VMA covers the address, as before.
    assert user_fault_decision([TEXT, DATA], 0x60_0000, True, False, False, None, 1 << 20,
                               sp=sp)[1].startswith("no VMA covers 0x600000")
    past = user_fault_decision([TEXT, DATA, STACK], 0x7FFF_0000_0000, True, False, False, None, 1 << 20,
                               sp=0x7FFF_0000_0010)[1]
    assert "did not record the stack" not in past and "past its limit" in past


# ---- refused_what_record_allows: the kernel's own decision, asked at the kill --------------------

def test_the_kernel_s_own_refusal_of_a_covered_address_is_quoted():
    from pagoda_pt.diagnose import refused_what_record_allows
    sentence = refused_what_record_allows("proc 1 (vmas)", 0x40_0000, "no VMA", TEXT, False)
    assert sentence.startswith("proc 1 (vmas) was killed at 0x400000 with 'no VMA', yet the record of proc 1 (vmas) "
                               "(read from guest RAM now; the kernel's own decide_fault, asked now, refuses it) covers "
                               "that address with [0x400000, 0x402000) r-x image, which allows the access"), sentence
    assert "VmaSet::find) returns no region for 0x400000" in sentence
    # The lookup finds the region: the decision's own check is what refused.
    found = refused_what_record_allows("proc 1 (vmas)", 0x40_2000, "write to read-only VMA", DATA, True)
    assert "with 'write to read-only VMA'" in found and "VmaSet::find" not in found
    assert "the decision's own check refused an access the region allows" in found


def test_the_kernel_s_own_decision_allowing_a_refused_write_is_the_cause():
    from pagoda_pt.diagnose import allowed_what_record_refuses
    refusal = user_fault_decision([TEXT, DATA, RO], 0x10_0000_0000, True, False, True, "r--", 1 << 20)[1]
    sentence = allowed_what_record_refuses([TEXT, DATA, RO], 0x10_0000_0000, True, False, "Populate", refusal)
    assert sentence.startswith("the kernel's fault decision allowed a write to the read-only VMA [0x1000000000, "
                               "0x1000001000) r-- anonymous (decide_fault, asked now, answers Populate instead of "
                               "refusing)")
    assert sentence.endswith("the record says: " + refusal)
    fetch = allowed_what_record_refuses([TEXT, DATA], 0x40_2010, False, True, "Populate", "")
    assert "allowed an instruction fetch from the non-executable VMA [0x402000, 0x404000)" in fetch
