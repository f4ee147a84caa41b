// The pre-switch check (AddressSpace::check_switch, activate) over simulated memory: every
// critical range walked in the new root, the reason named in one line, nothing loaded on a
// refusal, vm_check=off; and the roots every address space publishes for the debugging tools.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "host_support.hpp"
#include "mm/space/address_space.hpp"
#include "mm/base/layout.hpp"
#include "page_table_fakes.hpp"
#include "x86_hw_fake.hpp"

namespace pagoda {
namespace {

using F = arch::PageTableFormat;

constexpr Access kWrite{.write = true};
constexpr Access kExecute{.execute = true};

std::string text(const SwitchRefusal& r) {
  char buffer[512];
  return std::string(format_buffer(buffer, sizeof buffer, "{}", r).data());
}

/// A kernel space with a little kernel in it: 4 pages of text, a 4-page stack, an IDT page.
struct SwitchCheckTest : ::testing::Test {
  static constexpr u64 kText = layout::kKernelImageBase + 0x10'0000;
  static constexpr u64 kIdt = layout::kKernelImageBase + 0x20'0000;
  static constexpr u64 kStack = layout::kStackBase + 0x1000;  // 4 pages; a guard page below
  static constexpr u64 kRsp = kStack + 3 * kPageSize + 0x7a8;

  test::FakeTableMemory<F::kEntriesPerTable> memory;
  AddressSpace kernel = AddressSpace::create_kernel(memory).release_value();
  CriticalRange needed[3] = {
      {"the running stack", VirtAddr(kStack), 4 * kPageSize, kWrite, VirtAddr(kRsp)},
      {"the IDT", VirtAddr(kIdt), kPageSize, Access{}, VirtAddr(kIdt)},
      {"the kernel text", VirtAddr(kText), 4 * kPageSize - 0x123, kExecute, VirtAddr(kText)},
  };

  void SetUp() override {
    x86::hw::fake::cpu() = {};
    AddressSpace::set_switch_checks(true);
    ASSERT_TRUE(kernel.prepare_kernel_half().ok());
    ASSERT_TRUE(kernel.map_range(VirtAddr(kText), PhysAddr(0x10'0000), 4 * kPageSize, kKernelText).ok());
    ASSERT_TRUE(kernel.map(VirtAddr(kIdt), PhysAddr(0x20'0000), kKernelData).ok());
    ASSERT_TRUE(kernel.map_range(VirtAddr(kStack), PhysAddr(0x30'0000), 4 * kPageSize, kKernelData).ok());
  }
  void TearDown() override {
    x86::hw::fake::cpu() = {};  // nothing live: spaces may go
    AddressSpace::set_switch_checks(true);
  }
  Span<const CriticalRange> all() const { return Span<const CriticalRange>(needed, 3); }
  std::string hex(u64 v) const { return test::hex(v); }
  bool loaded() const {
    for (const std::string& e : x86::hw::fake::cpu().log)
      if (e.rfind("load", 0) == 0) return true;
    return false;
  }
};

TEST_F(SwitchCheckTest, ARootThatMapsEverythingPasses) {
  const SwitchRefusal r = kernel.check_switch(all());
  EXPECT_TRUE(r.ok()) << text(r);
  x86::hw::fake::cpu().critical.assign(needed, needed + 3);
  kernel.activate();
  EXPECT_TRUE(kernel.is_live());
}

TEST_F(SwitchCheckTest, AMissingStackIsNamedAtTheStackPointer) {
  ASSERT_TRUE(kernel.unmap(VirtAddr(align_down(kRsp, kPageSize))).ok());
  const SwitchRefusal r = kernel.check_switch(all());
  ASSERT_EQ(r.kind, SwitchRefusal::Kind::NotMapped);
  EXPECT_EQ(r.va.value(), kRsp);  // the focus, not the range's first page
  EXPECT_EQ(text(r), "new root " + hex(kernel.root().value()) + " does not map the running stack " + hex(kRsp) +
                         " (PT entry " + std::to_string(F::index(VirtAddr(kRsp), 3)) + " not present)");
}

TEST_F(SwitchCheckTest, ARangesNoteFollowsTheWalkInTheRefusal) {
  // The arch notes the running stack when it is the boot stub's low entry stack.
  CriticalRanges list;
  list.add("the running stack", VirtAddr(kStack), 4 * kPageSize, kWrite, VirtAddr(kRsp));
  list.note_last(kBootEntryStackNote);
  list.add("the IDT", VirtAddr(kIdt), kPageSize, Access{});
  ASSERT_TRUE(kernel.unmap(VirtAddr(align_down(kRsp, kPageSize))).ok());
  EXPECT_EQ(text(kernel.check_switch(list.ranges())),
            "new root " + hex(kernel.root().value()) + " does not map the running stack " + hex(kRsp) + " (PT entry " +
                std::to_string(F::index(VirtAddr(kRsp), 3)) + " not present): " + kBootEntryStackNote);
  // Only the range it was given to carries it.
  EXPECT_STREQ(list.ranges()[1].note, "");
}

TEST_F(SwitchCheckTest, EveryPageOfARangeIsWalkedNotOnlyItsFocus) {
  ASSERT_TRUE(kernel.unmap(VirtAddr(kStack)).ok());  // the deepest page of the stack
  const SwitchRefusal r = kernel.check_switch(all());
  ASSERT_EQ(r.kind, SwitchRefusal::Kind::NotMapped);
  EXPECT_EQ(r.va.value(), kStack);
  EXPECT_EQ(r.range.what, std::string("the running stack"));
}

TEST_F(SwitchCheckTest, AReadOnlyStackIsRefusedForWriting) {
  ASSERT_TRUE(kernel.protect(VirtAddr(kStack), 4 * kPageSize, kKernelReadOnly).ok());
  const SwitchRefusal r = kernel.check_switch(all());
  ASSERT_EQ(r.kind, SwitchRefusal::Kind::Denied);
  EXPECT_EQ(text(r), "new root " + hex(kernel.root().value()) + " maps the running stack " + hex(kRsp) +
                         " r-- kernel, but it must be writable (write to read-only page)");
}

TEST_F(SwitchCheckTest, TextWithoutExecuteIsRefused) {
  ASSERT_TRUE(kernel.protect(VirtAddr(kText), 4 * kPageSize, kKernelReadOnly).ok());
  const SwitchRefusal r = kernel.check_switch(all());
  ASSERT_EQ(r.kind, SwitchRefusal::Kind::Denied);
  EXPECT_NE(text(r).find("maps the kernel text " + hex(kText) +
                         " r-- kernel, but it must be executable "
                         "(execute of NX page)"),
            std::string::npos)
      << text(r);
}

TEST_F(SwitchCheckTest, OnlyTheLastPageMissingIsCalledAnEndRoundedDown) {
  // The text ends 0x123 bytes before its fourth page ends: mapped with its size rounded down.
  ASSERT_TRUE(kernel.unmap(VirtAddr(kText + 3 * kPageSize)).ok());
  const SwitchRefusal r = kernel.check_switch(all());
  ASSERT_EQ(r.kind, SwitchRefusal::Kind::NotMapped);
  EXPECT_EQ(r.va.value(), kText + 3 * kPageSize);
  EXPECT_NE(text(r).find("does not map the kernel text " + hex(kText + 3 * kPageSize) + " (PT entry " +
                         std::to_string(F::index(VirtAddr(kText + 3 * kPageSize), 3)) +
                         " not present): only its last page fails, so its end was rounded down instead of up"),
            std::string::npos)
      << text(r);
  // A hole in the middle is not an end rounded down.
  ASSERT_TRUE(kernel.map(VirtAddr(kText + 3 * kPageSize), PhysAddr(0x10'3000), kKernelText).ok());
  ASSERT_TRUE(kernel.unmap(VirtAddr(kText + kPageSize)).ok());
  EXPECT_EQ(text(kernel.check_switch(all())).find("rounded down"), std::string::npos);
}

// It runs on every switch: a range costs a table lookup per table it crosses (the cursor keeps
// the tables above), not a walk from the root per page.
TEST_F(SwitchCheckTest, TablesAreLookedUpOncePerRangeNotOncePerPage) {
  constexpr u64 kBig = layout::kKernelImageBase + 0x4000'0000;  // 2 MiB aligned: one PT
  ASSERT_TRUE(kernel.map_range(VirtAddr(kBig), PhysAddr(0x4000'0000), 64 * kPageSize, kKernelText).ok());
  const CriticalRange text{"a big text", VirtAddr(kBig), 64 * kPageSize, kExecute, VirtAddr(kBig)};
  memory.lookups = 0;
  EXPECT_TRUE(kernel.check_switch(Span<const CriticalRange>(&text, 1)).ok());
  EXPECT_LE(memory.lookups, 2 * F::kLevels) << "a walk per page would be " << 65 * F::kLevels;
}

TEST_F(SwitchCheckTest, ABlockCountsAsMappedForEveryPageInIt) {
  constexpr u64 kBig = layout::kKernelImageBase + 0x4000'0000;  // 2 MiB aligned
  constexpr usize kBlockLevel = F::kLevels - 2;
  for (u64 off = 0; off < 4 * MiB; off += F::entry_span(kBlockLevel)) {
    ConsistencyBatch b = kernel.batch();
    ASSERT_TRUE(
        kernel.cursor(b, VirtAddr(kBig + off)).map_block(PhysAddr(0x4000'0000 + off), kBlockLevel, kKernelText).ok());
  }
  ASSERT_EQ(kernel.query(VirtAddr(kBig)).page_size, 2 * MiB);
  const CriticalRange big{"a big text", VirtAddr(kBig), 4 * MiB + kPageSize, kExecute, VirtAddr(kBig + 3 * MiB)};
  const SwitchRefusal r = kernel.check_switch(Span<const CriticalRange>(&big, 1));
  ASSERT_EQ(r.kind, SwitchRefusal::Kind::NotMapped);  // the page after the two blocks
  EXPECT_EQ(r.va.value(), kBig + 4 * MiB);
  EXPECT_NE(text(r).find("only its last page fails"), std::string::npos) << text(r);
}

TEST_F(SwitchCheckTest, AUserRootWithoutTheStacksTopLevelEntrySaysItLostTheKernelHalf) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  const usize slot = F::index(VirtAddr(kStack), 0);
  u64* top = user.arch().tree_for(VirtAddr(kStack)).root_entries();
  const u64 kernels = top[slot];
  top[slot] = 0;  // a copy of the kernel half made by hand, that skipped an entry
  const SwitchRefusal r = user.check_switch(all());
  ASSERT_EQ(r.kind, SwitchRefusal::Kind::NotMapped);
  EXPECT_EQ(text(r), "new root " + hex(user.root().value()) + " does not map the running stack " + hex(kRsp) +
                         " (PML4 entry " + std::to_string(slot) +
                         " not present); it does not share the kernel half: "
                         "PML4 entry " +
                         std::to_string(slot) + " is 0x0, the kernel's is " + hex(kernels) +
                         ": kernel-half entries left empty, as by a copy that skipped them");
  top[slot] = kernels;
}

TEST_F(SwitchCheckTest, AUserRootWithACopiedKernelStackTableSaysWhatACopyMisses) {
  // Lab 3's second failure made by hand: the kernel-stack entry points to a copy of the
  // kernel's table instead of the shared one. It maps every stack made so far (so nothing
  // critical is missing yet) and none made later: the kernel half check names it.
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  const usize slot = F::index(VirtAddr(kStack), 0);
  u64* top = user.arch().tree_for(VirtAddr(kStack)).root_entries();
  const u64 kernels = top[slot];
  const PhysAddr copy = memory.allocate_table().release_value();
  const u64* from = memory.table_entries(F::output_address(kernels, 0));
  u64* to = memory.table_entries(copy);
  for (usize i = 0; i < F::kEntriesPerTable; ++i) to[i] = from[i];
  top[slot] = copy.value() | (kernels & ~F::kAddressMask);
  const SwitchRefusal r = user.check_switch(all());
  ASSERT_EQ(r.kind, SwitchRefusal::Kind::KernelHalf);
  EXPECT_EQ(text(r), "new root " + hex(user.root().value()) + " does not share the kernel half: PML4 entry " +
                         std::to_string(slot) + " is " + hex(top[slot]) + ", the kernel's is " + hex(kernels) +
                         ": a copy of the kernel's table of the kernel stacks, not the shared one: what the kernel "
                         "maps there later is only in the root where it was allocated");
  top[slot] = kernels;
  for (usize i = 0; i < F::kEntriesPerTable; ++i) to[i] = 0;
  memory.free_table(copy);
}

TEST_F(SwitchCheckTest, AUserRootThatLostAnotherKernelHalfEntryIsRefused) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  u64* top = user.arch().tree_for(VirtAddr(0)).root_entries();
  const u64 saved[2] = {top[300], top[301]};
  top[300] = top[301] = 0;  // nothing critical there, but kernel mappings made later would be missing
  const SwitchRefusal r = user.check_switch(all());
  ASSERT_EQ(r.kind, SwitchRefusal::Kind::KernelHalf);
  EXPECT_EQ(text(r), "new root " + hex(user.root().value()) +
                         " does not share the kernel half: PML4 entry 300 is "
                         "0x0, the kernel's is " +
                         hex(saved[0]) +
                         " (2 of its 256 entries differ): kernel-half "
                         "entries left empty, as by a copy that skipped them");
  top[300] = saved[0];
  top[301] = saved[1];
  EXPECT_TRUE(user.check_switch(all()).ok());
}

TEST_F(SwitchCheckTest, ActivateRefusesOnTheOldRootAndSaysWhatIsMissing) {
  x86::hw::fake::cpu().critical.assign(needed, needed + 3);
  kernel.activate();
  x86::hw::fake::cpu().log.clear();
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  u64* top = user.arch().tree_for(VirtAddr(kStack)).root_entries();
  const usize slot = F::index(VirtAddr(kStack), 0);
  const u64 saved = top[slot];
  top[slot] = 0;
  try {
    user.activate();
    FAIL() << "activate() loaded a root without the running stack";
  } catch (const host::HostPanic& e) {
    const std::string out = host::output_before_panic() + e.what();
    EXPECT_NE(out.find("vm: refusing to load root " + hex(user.root().value())), std::string::npos) << out;
    EXPECT_NE(out.find("the IDT"), std::string::npos) << out;  // every range is listed, with its result
    EXPECT_NE(out.find("NOT MAPPED at " + hex(kRsp) + ": PML4 entry"), std::string::npos) << out;
    EXPECT_NE(out.find("vm_check=off"), std::string::npos) << out;
    EXPECT_NE(out.find("PANIC: new root " + hex(user.root().value()) + " does not map the running stack " + hex(kRsp)),
              std::string::npos)
        << out;
  }
  EXPECT_FALSE(loaded()) << "the refused root was loaded";
  EXPECT_TRUE(kernel.is_live());
  top[slot] = saved;
}

TEST_F(SwitchCheckTest, VmCheckOffLoadsAnyRoot) {
  x86::hw::fake::cpu().critical.assign(needed, needed + 3);
  ASSERT_TRUE(kernel.unmap(VirtAddr(kIdt)).ok());
  EXPECT_THROW(kernel.activate(), host::HostPanic);
  EXPECT_FALSE(loaded());
  AddressSpace::set_switch_checks(false);
  kernel.activate();
  EXPECT_TRUE(loaded());
  EXPECT_TRUE(kernel.is_live());
}

// ---- What a switch takes from the last one ---------------------------------------------
// A space that shares the kernel half takes what an earlier check proved of it (the same
// tables translate it) until a table changes: the proofs must never outlive a change.

TEST_F(SwitchCheckTest, ASwitchIntoASharedKernelHalfWalksNothingUntilATableChanges) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  memory.lookups = 0;
  ASSERT_TRUE(user.check_switch(all()).ok());
  const usize walked = memory.lookups;
  memory.lookups = 0;
  ASSERT_TRUE(user.check_switch(all()).ok());
  EXPECT_LE(memory.lookups, 1u) << "the second check should read only the user root's top level (the first read "
                                << walked << " tables)";
  AddressSpace other = AddressSpace::create_user(kernel).release_value();  // the same kernel half
  memory.lookups = 0;
  ASSERT_TRUE(other.check_switch(all()).ok());
  EXPECT_LE(memory.lookups, 1u);
  memory.lookups = 0;
  ASSERT_TRUE(kernel.check_switch(all()).ok());
  EXPECT_EQ(memory.lookups, 0u) << "the kernel's own root shares its half with itself";
  // A change in a user half (through the user space's batch) takes nothing the check proved:
  // the kernel half's proofs stay.
  ASSERT_TRUE(user.map(VirtAddr(0x40'0000), PhysAddr(0x50'0000), kKernelData).ok());
  ASSERT_TRUE(user.unmap(VirtAddr(0x40'0000)).ok());
  memory.lookups = 0;
  ASSERT_TRUE(other.check_switch(all()).ok());
  EXPECT_LE(memory.lookups, 1u) << "a user half's own changes sent the check back to a full walk";
  // A change of the kernel's tables starts over.
  ASSERT_TRUE(kernel.map(VirtAddr(0xffff'9000'0000'0000), PhysAddr(0x50'0000), kKernelData).ok());
  ASSERT_TRUE(kernel.unmap(VirtAddr(0xffff'9000'0000'0000)).ok());
  memory.lookups = 0;
  ASSERT_TRUE(other.check_switch(all()).ok());
  EXPECT_GE(memory.lookups, walked - 1);
}

// ---- The fast path of activate(): the stacks of a switch, and the user-trap stack's owner ------

TEST_F(SwitchCheckTest, ASecondSwitchOnAProvenStackWalksNothingAndAChangeSendsItBack) {
  x86::hw::fake::cpu().critical.assign(needed, needed + 3);
  SwitchStacks& stacks = x86::hw::fake::cpu().stacks;
  stacks = SwitchStacks{.sp = kRsp, .stack_bottom = kStack, .stack_top = kStack + 4 * kPageSize};
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  user.activate();
  kernel.activate();
  memory.lookups = 0;
  user.activate();
  EXPECT_EQ(memory.lookups, 0u) << "a proven switch walked tables";
  // The stack the switch runs on is taken away in the kernel half: the next switch walks again.
  kernel.arch().activate();
  ASSERT_TRUE(kernel.unmap(VirtAddr(align_down(kRsp, kPageSize))).ok());
  EXPECT_THROW(user.activate(), host::HostPanic);
}

TEST_F(SwitchCheckTest, ASwitchOnAStackNoCheckProvedIsWalked) {
  x86::hw::fake::cpu().critical.assign(needed, needed + 3);
  SwitchStacks& stacks = x86::hw::fake::cpu().stacks;
  stacks = SwitchStacks{.sp = kRsp, .stack_bottom = kStack, .stack_top = kStack + 4 * kPageSize};
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  user.activate();
  kernel.activate();
  stacks.stack_bottom += 0x10000;  // another stack (the arch says so): never taken as proven
  stacks.stack_top += 0x10000;
  memory.lookups = 0;
  user.activate();
  EXPECT_GT(memory.lookups, 0u);
  kernel.arch().activate();
}

namespace {
bool judge_wants_top(u32 owner, u64 top, const char* what, FormatSink& why) {
  if (owner == 7 && top == 0xffff'ff00'0000'8000) return false;
  format_to(why, "{} is {:#x}, not pid {}'s", what, top, owner);
  return true;
}
}  // namespace

TEST_F(SwitchCheckTest, TheUserTrapStackIsJudgedForTheSpacesOwnerAtEverySwitchItChanges) {
  x86::hw::fake::cpu().critical.assign(needed, needed + 3);
  AddressSpace::set_trap_stack_judge(judge_wants_top);
  SwitchStacks& stacks = x86::hw::fake::cpu().stacks;
  stacks = SwitchStacks{.sp = kRsp,
                        .stack_bottom = kStack,
                        .stack_top = kStack + 4 * kPageSize,
                        .user_trap_top = 0xffff'ff00'0000'8000,
                        .user_trap_what = "TSS.RSP0"};
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  user.name_for_debugging("proc", 7);
  user.activate();  // its owner's stack: loaded
  kernel.activate();
  stacks.user_trap_top = 0;  // not set for the next switch into it
  try {
    user.activate();
    FAIL() << "a switch into pid 7's root with TSS.RSP0 = 0 was not refused";
  } catch (const host::HostPanic& e) {
    EXPECT_NE(std::string(e.what()).find("the kernel stack for traps from user mode is wrong for new root"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("TSS.RSP0 is 0x0, not pid 7's"), std::string::npos) << e.what();
  }
  AddressSpace::set_trap_stack_judge(nullptr);
  kernel.arch().activate();
}

TEST_F(SwitchCheckTest, AKernelHalfMappingRemovedAfterACheckedSwitchIsCaughtAtTheNext) {
  x86::hw::fake::cpu().critical.assign(needed, needed + 3);
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  user.activate();  // checked, and proven
  kernel.activate();
  ASSERT_TRUE(kernel.unmap(VirtAddr(align_down(kRsp, kPageSize))).ok());  // the kernel half: every root loses it
  x86::hw::fake::cpu().log.clear();
  try {
    user.activate();
    kernel.arch().activate();  // (unchecked: so that the user space may go)
    FAIL() << "activate() loaded a root without the running stack, on the strength of an earlier check";
  } catch (const host::HostPanic& e) {
    EXPECT_NE(std::string(e.what()).find("does not map the running stack " + hex(kRsp)), std::string::npos) << e.what();
  }
  EXPECT_FALSE(loaded());
  const SwitchRefusal r = user.check_switch(all());
  ASSERT_EQ(r.kind, SwitchRefusal::Kind::NotMapped);
  EXPECT_EQ(r.va.value(), kRsp);
}

TEST_F(SwitchCheckTest, EveryKindOfChangeAfterAPassIsSeenByTheNextCheck) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  const auto passes = [&] { return user.check_switch(all()).ok() && kernel.check_switch(all()).ok(); };
  ASSERT_TRUE(passes());

  // protect: the text loses execute.
  ASSERT_TRUE(kernel.protect(VirtAddr(kText), 4 * kPageSize, kKernelReadOnly).ok());
  EXPECT_EQ(user.check_switch(all()).kind, SwitchRefusal::Kind::Denied);
  ASSERT_TRUE(kernel.protect(VirtAddr(kText), 4 * kPageSize, kKernelText).ok());
  ASSERT_TRUE(passes());

  // An unmap not flushed yet: the proof goes when the entry does, not with the batch.
  {
    ConsistencyBatch b = kernel.batch();
    ASSERT_TRUE(kernel.cursor(b, VirtAddr(kIdt)).unmap().ok());
    EXPECT_EQ(user.check_switch(all()).kind, SwitchRefusal::Kind::NotMapped);
    ASSERT_TRUE(kernel.cursor(b, VirtAddr(kIdt)).map(PhysAddr(0x20'0000), kKernelData).ok());
  }
  ASSERT_TRUE(passes());

  // A change to the shared tables through a user space's cursor (which may_change() forbids,
  // and a buggy teardown of a user half could still do): the kernel's root loses it too.
  {
    ConsistencyBatch b = user.batch();
    ASSERT_TRUE(user.cursor(b, VirtAddr(kStack)).unmap().ok());
  }
  EXPECT_EQ(kernel.check_switch(all()).kind, SwitchRefusal::Kind::NotMapped);
  ASSERT_TRUE(kernel.map(VirtAddr(kStack), PhysAddr(0x30'0000), kKernelData).ok());
  ASSERT_TRUE(passes());

  // A top-level entry of the user root's kernel half cleared by hand: no proof is taken for a
  // root that no longer shares the kernel half.
  u64* top = user.arch().tree_for(VirtAddr(kStack)).root_entries();
  const usize slot = F::index(VirtAddr(kStack), 0);
  const u64 saved = top[slot];
  top[slot] = 0;
  const SwitchRefusal r = user.check_switch(all());
  EXPECT_EQ(r.kind, SwitchRefusal::Kind::NotMapped);
  EXPECT_NE(text(r).find("it does not share the kernel half"), std::string::npos) << text(r);
  top[slot] = saved;
  EXPECT_TRUE(passes());
}

TEST_F(SwitchCheckTest, ALowerHalfRangeIsWalkedAtEverySwitch) {
  // What a process maps below the kernel half is its own: nothing proven of another root (or of
  // this one, before) says anything about it. Cleared by hand here, no batch told.
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  constexpr u64 kLow = 0x40'0000;
  ASSERT_TRUE(user.map(VirtAddr(kLow), PhysAddr(0x50'0000), kKernelData).ok());
  const CriticalRange low{"a low stack", VirtAddr(kLow), kPageSize, kWrite, VirtAddr(kLow)};
  ASSERT_TRUE(user.check_switch(Span<const CriticalRange>(&low, 1)).ok());
  const Walk w = user.query(VirtAddr(kLow));
  u64& leaf = memory.table_entries(w.levels[w.depth - 1].table)[w.levels[w.depth - 1].index];
  const u64 saved = leaf;
  leaf = 0;
  EXPECT_EQ(user.check_switch(Span<const CriticalRange>(&low, 1)).kind, SwitchRefusal::Kind::NotMapped);
  leaf = saved;
}

TEST_F(SwitchCheckTest, AnotherKernelSpaceTakesNothingFromTheKernelsProofs) {
  ASSERT_TRUE(kernel.check_switch(all()).ok());  // proven in the kernel's root
  // A second kernel-like space (as the fixtures build one) with the stack and the IDT but no text.
  AddressSpace other = AddressSpace::create_kernel(memory).release_value();
  ASSERT_TRUE(other.map(VirtAddr(kIdt), PhysAddr(0x20'0000), kKernelData).ok());
  ASSERT_TRUE(other.map_range(VirtAddr(kStack), PhysAddr(0x30'0000), 4 * kPageSize, kKernelData).ok());
  ASSERT_TRUE(kernel.check_switch(all()).ok());
  const SwitchRefusal r = other.check_switch(all());
  ASSERT_EQ(r.kind, SwitchRefusal::Kind::NotMapped);
  EXPECT_EQ(r.range.what, std::string("the kernel text"));
  EXPECT_EQ(r.root, other.root());
}

TEST_F(SwitchCheckTest, ANewKernelSpaceWhereTheProvenRootWasTakesNothingFromIt) {
  ASSERT_TRUE(kernel.check_switch(all()).ok());
  // Another table memory hands out the same addresses: its first root is where the kernel's is,
  // and nothing is mapped in it (no batch told of any change).
  test::FakeTableMemory<F::kEntriesPerTable> other_memory;
  AddressSpace other = AddressSpace::create_kernel(other_memory).release_value();
  ASSERT_EQ(other.root(), kernel.root());
  EXPECT_EQ(other.check_switch(all()).kind, SwitchRefusal::Kind::NotMapped);
}

TEST(CriticalRanges, EmptyRangesAreSkippedAFullListCountsWhatItDropped) {
  CriticalRanges list;
  list.add("nothing", VirtAddr(0x1000), 0, Access{});
  EXPECT_EQ(list.ranges().size(), 0u);
  list.add("focus outside", VirtAddr(0x1000), 0x1000, Access{}, VirtAddr(0x5000));
  EXPECT_EQ(list.ranges()[0].focus.value(), 0x1000u);  // a focus outside the range is its start
  for (usize i = 1; i < CriticalRanges::kMax; ++i) list.add("more", VirtAddr(0x1000), 1, Access{});
  EXPECT_EQ(list.dropped(), 0u);
  list.add("one too many", VirtAddr(0x1000), 1, Access{});
  EXPECT_EQ(list.ranges().size(), CriticalRanges::kMax);
  EXPECT_EQ(list.dropped(), 1u);
}

// ---- Published roots ----------------------------------------------------------------------

const debug::DebugRootSlot* published(PhysAddr root) {
  for (const debug::DebugRootSlot& s : pagoda_debug_roots.slots)
    if (s.root == root.value()) return &s;
  return nullptr;
}

usize published_count() {
  usize n = 0;
  for (const debug::DebugRootSlot& s : pagoda_debug_roots.slots) n += s.root != 0;
  return n;
}

TEST_F(SwitchCheckTest, EveryAddressSpacePublishesItsRootWhileItLives) {
  const debug::DebugRootSlot* k = published(kernel.root());
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->kind, u32(debug::RootKind::Kernel));
  EXPECT_STREQ(k->name, "kernel");
  const usize before = published_count();
  PhysAddr root;
  {
    AddressSpace user = AddressSpace::create_user(kernel).release_value();
    root = user.root();
    const debug::DebugRootSlot* u = published(root);
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(u->kind, u32(debug::RootKind::Process));
    EXPECT_STREQ(u->name, "user");
    user.name_for_debugging("init-with-a-long-name", 7);
    EXPECT_STREQ(u->name, "init-with-a-lon");  // 15 characters and a NUL
    EXPECT_EQ(u->id, 7u);
    AddressSpace moved(move(user));  // one space, one slot
    EXPECT_EQ(published_count(), before + 1);
  }
  EXPECT_EQ(published(root), nullptr) << "a destroyed space's root is still published";
  EXPECT_EQ(published_count(), before);
}

}  // namespace
}  // namespace pagoda
