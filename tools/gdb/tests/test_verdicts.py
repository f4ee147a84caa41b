"""pagoda_pt.verdicts: the causes line 1 and fault-why word once, ranked, from what a source filled."""
import dataclasses

from pagoda_pt.verdicts import Evidence, Kill, StackSlots, explain, rule_named, stale_rmap_node

SLOTS = StackSlots(base=0x10_0000, stride=0x4000, guard=0x1000, size=0x3000, slots=4,
                   boot_guard=(0x20_0000, 0x20_1000, 0x20_5000))


def test_an_access_in_a_guard_page_is_a_kernel_stack_overflow():
    said = explain(Evidence(address=0x10_4ff8, access="wrote to", where="f()", stacks=SLOTS))
    assert said.startswith("kernel stack overflow: the kernel (f()) wrote to 0x104ff8, the guard page below "
                           "the kernel stack of slot 1 [0x105000, 0x108000): "), said
    assert "boot stack overflow" in explain(Evidence(address=0x20_0010, stacks=SLOTS))
    # On the stack itself, or with no layout: not an overflow.
    assert explain(Evidence(address=0x10_5000, stacks=SLOTS)) is None
    assert explain(Evidence(address=0x10_4ff8)) is None


def test_a_kill_the_record_covers_is_worded_once_with_what_each_side_knows():
    kill = Kill("proc 1 (vmas)", 0x40_0000, "no VMA", covering="[0x400000, 0x402000) r-x image",
                seen="read from guest RAM now", why="VmaSet::find returns nothing")
    assert explain(Evidence(kill=kill)) == (
        "proc 1 (vmas) was killed at 0x400000 with 'no VMA', yet the record of proc 1 (vmas) (read from guest RAM "
        "now) covers that address with [0x400000, 0x402000) r-x image: the kernel's own decision is wrong, not the "
        "program: VmaSet::find returns nothing")
    # A record that does not cover the address: the program's own kill, no cause of the kernel's.
    assert explain(Evidence(kill=Kill("proc 1 (vmas)", 0x40_0000, "no VMA"))) is None


def test_the_rules_are_ranked_and_each_sentence_names_its_rule():
    overflow = Evidence(address=0x10_4ff8, stacks=SLOTS, kill=Kill("p", 1, covering="v"), swap_problems=["s"])
    assert rule_named(explain(overflow)) == "kernel_stack_overflow"
    overflow.stacks = None
    assert rule_named(explain(overflow)) == "killed_though_recorded"
    overflow.kill = None
    assert explain(overflow) == "s" and rule_named("s") is None
    assert rule_named(stale_rmap_node(0x3000, "proc 2 (p) at 0x1000", "nothing")) == "stale_rmap_node"


def test_a_kernel_stack_page_the_root_lacks_says_where_else_it_is_mapped():
    e = Evidence(address=0x10_7ff0, access="wrote to", stacks=SLOTS, root="'proc 2' (0x5000)")
    assert explain(e).endswith("(its top page), which is not mapped in 'proc 2' (0x5000): a kernel stack missing pages "
                               "(not all of its pages mapped, or mapped only in the root where it was allocated)")
    e.mapped_in = ["'kernel' (0x1000)"]
    assert explain(e).endswith("(it is mapped in 'kernel' (0x1000)): a kernel stack mapped only in the root where it "
                               "was allocated")
    e.mapped_in = []
    assert "page 0 of its 3" in explain(dataclasses.replace(e, address=0x10_5000)) and "nor in any other root" in explain(e)
    # The source did not say the root lacks it (a fault on a present page): no such cause.
    e.root = None
    assert explain(e) is None
