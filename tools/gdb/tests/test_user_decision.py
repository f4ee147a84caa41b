"""fault-why's reading of a user page fault against the process's VMAs (pagoda_pt.diagnose.
user_fault_decision): the faults the kernel answers (a demand fault, a copy-on-write fault,
stack growth) were called "the kernel kills the process"."""
from pagoda_pt.procs import KIND_ANONYMOUS, KIND_HEAP, KIND_IMAGE, KIND_STACK, Vma
from pagoda_pt.diagnose import user_fault_decision

TEXT = Vma(start=0x40_0000, end=0x40_2000, read=True, write=False, execute=True, kind=KIND_IMAGE, flags=0)
DATA = Vma(start=0x40_2000, end=0x40_4000, read=True, write=True, execute=False, kind=KIND_IMAGE, flags=0)
NONE = Vma(start=0x50_0000, end=0x50_1000, read=False, write=False, execute=False, kind=KIND_ANONYMOUS, flags=0)
STACK = Vma(start=0x7FFF_FFFF_0000, end=0x8000_0000_0000, read=True, write=True, execute=False,
             kind=KIND_STACK, flags=1)
VMAS = [TEXT, DATA, NONE, STACK]


def decide(address, write=False, fetch=False, mapped=False, perms=None, limit=1 << 20):
    return user_fault_decision(VMAS, address, write, fetch, mapped, perms, limit)


def test_the_first_fetch_at_the_entry_is_a_demand_fault():
    kind, sentence = decide(0x40_0010, fetch=True)
    assert kind == "demand" and sentence.startswith("a demand fault: 0x400010 lies in the VMA [0x400000, 0x402000) r-x image")
    assert "not an error" in sentence


def test_a_write_to_a_read_only_page_of_a_writable_vma_is_copy_on_write():
    kind, sentence = decide(0x40_2008, write=True, mapped=True, perms="r--")
    assert kind == "cow" and sentence.startswith("a copy-on-write fault: 0x402008 is mapped r-- in the writable VMA")


def test_below_the_stack_within_its_limit_grows():
    assert decide(0x7FFF_FFFE_F000, write=True)[0] == "grow"


def test_below_the_stack_past_its_limit_is_denied():
    kind, sentence = decide(0x7FFF_0000_0000, write=True)
    assert kind == "deny" and "past its limit" in sentence


def test_a_write_to_text_is_denied_by_its_vma():
    kind, sentence = decide(0x40_0010, write=True, mapped=True, perms="r-x")
    assert kind == "deny" and "which does not allow a write" in sentence


def test_a_prot_none_region_allows_nothing():
    assert decide(0x50_0000)[0] == "deny"


def test_no_vma():
    kind, sentence = decide(0x1000)
    assert kind == "deny" and sentence.startswith("no VMA covers 0x1000")


def test_an_empty_record_is_named_whatever_the_address():
    """A process with no VMAs at all (the loader recorded none, or fork gave the child none):
    every fault is refused, and the cause is the empty record, not the address."""
    kind, sentence = user_fault_decision([], 0x40_0010, False, True, False, None, 1 << 20)
    assert kind == "deny" and sentence.startswith("the VMA list of the process is empty: the loader recorded no VMA")
    named = user_fault_decision([], 0x40_0010, False, True, False, None, 1 << 20, who="proc 3 (hello)")[1]
    assert named.startswith("the VMA list of proc 3 (hello) is empty: the loader recorded no VMA")
    assert "the child's record is empty" in sentence


def test_a_kill_on_a_fault_the_record_allows_blames_the_kernel_s_decision():
    """Stopped in the kernel's kill path on a fault the VMAs answer (a demand fault here): the
    decision or the lookup is wrong, not the program."""
    kind, sentence = user_fault_decision(VMAS, 0x40_0010, False, True, False, None, 1 << 20, killing=True)
    assert kind == "wrong" and sentence.startswith("the process was killed at 0x400010, yet the record of the process "
                                                   "(read from guest RAM now) covers that address with [0x400000, "
                                                   "0x402000) r-x image (a demand fault: 0x400010 lies in the VMA "
                                                   "[0x400000, 0x402000) r-x image"), sentence
    assert "not an error" not in sentence
    named = user_fault_decision(VMAS, 0x40_0010, False, True, False, None, 1 << 20, killing=True,
                                who="proc 2 (vmas)")[1]
    assert named.startswith("proc 2 (vmas) was killed at 0x400010, yet the record of proc 2 (vmas)")
    # A fault the record refuses is still the program's, killing or not.
    assert user_fault_decision(VMAS, 0x40_0010, True, False, True, "r-x", 1 << 20, killing=True)[0] == "deny"


def test_no_vma_below_the_break_is_brk_recording_the_heap_short():
    # The heap starts where DATA ends; the break is 0x10 bytes into its first page, which no VMA covers.
    heap = (0x40_4000, 0x40_4010)
    kind, sentence = user_fault_decision(VMAS, 0x40_4008, True, False, False, None, 1 << 20, heap=heap)
    assert kind == "wrong"
    assert "below its own break 0x404010" in sentence and "(the break rounded down to a page)" in sentence
    assert "round" in sentence and "0x405000" in sentence
    # At the break and past it, the address is no one's: the program's fault.
    assert user_fault_decision(VMAS, 0x40_4010, True, False, False, None, 1 << 20, heap=heap)[0] == "deny"
    # A heap region that reaches the rounded-up break covers it: answered, not this rule.
    grown = VMAS + [Vma(start=0x40_4000, end=0x40_5000, read=True, write=True, execute=False, kind=KIND_HEAP, flags=0)]
    assert user_fault_decision(grown, 0x40_4008, True, False, False, None, 1 << 20, heap=heap)[0] == "demand"
