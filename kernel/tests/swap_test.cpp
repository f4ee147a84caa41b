// Lab 7 over simulated memory: the swapper (mm/swap/swapper.hpp) with real address spaces over
// fake table memory and a simulated MMU, fake user frames and a fake swap disk (swap_fakes.hpp).
// Built into both host binaries: kernel_host_tests (x86_64's seam: only the live root's TLB can
// hold a translation) and kernel_host_tests_aarch64 (every space's translations stay cached
// under its ASID: an eviction must tell each root's own). Each test names the rule it checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "host_support.hpp"
#include "mm/base/layout.hpp"
#include "mm/space/address_space.hpp"
#include "mm/swap/swapper.hpp"
#include "page_table_fakes.hpp"
#include "swap_fakes.hpp"
#if defined(PAGODA_TEST_AARCH64)
#include "aarch64_hw_fake.hpp"
#else
#include "arch/aarch64/page_table_format.hpp"
#include "arch/x86_64/page_table_format.hpp"
#include "x86_hw_fake.hpp"
#endif

namespace pagoda {
namespace {

using F = arch::PageTableFormat;

constexpr Perms kUserData{.read = true, .write = true, .execute = false, .user = true};
constexpr Perms kUserReadOnly{.read = true, .write = false, .execute = false, .user = true};
constexpr u64 kFirstFrame = 0x20'0000 / kPageSize;  // SwapMachine's frames start there
constexpr usize kFrames = 256;
constexpr u64 kSlots = 64;

#if defined(PAGODA_TEST_AARCH64)
std::vector<std::string>& cpu_log() { return aarch64::hw::fake::cpu().log; }
void reset_cpu() { aarch64::hw::fake::cpu() = {}; }
/// The log line of the TLB of @p space told to forget @p va (AArch64: by that space's ASID).
std::string invalidation(const AddressSpace& space, u64 va) {
  return "tlbi va " + test::hex(va) + " asid " + std::to_string(space.arch().asid());
}
/// Whether @p space's TLB entries can be cached now (AArch64: always, under its ASID).
bool may_be_cached(const AddressSpace&) { return true; }
u64 accessed(u64 e) { return F::with_accessed(e); }
/// @p e written through (AArch64: a clean writable page's first write).
u64 written(u64 e) { return F::is_clean_writable(e) ? F::dirtied(e) : e; }
#else
std::vector<std::string>& cpu_log() { return x86::hw::fake::cpu().log; }
void reset_cpu() { x86::hw::fake::cpu() = {}; }
/// The log line of the TLB told to forget @p va (x86_64: INVLPG, of the live root's only).
std::string invalidation(const AddressSpace&, u64 va) { return "invlpg " + test::hex(va); }
/// Whether @p space's TLB entries can be cached now (x86_64 without PCIDs: the live root's only).
bool may_be_cached(const AddressSpace& space) { return space.is_live(); }
u64 accessed(u64 e) { return e | F::kAccessed; }
u64 written(u64 e) { return e | F::kAccessed | F::kDirty; }
#endif

bool logged(const std::string& event) {
  const auto& log = cpu_log();
  return std::find(log.begin(), log.end(), event) != log.end();
}

struct SwapTest : ::testing::Test {
  test::FakeTableMemory<F::kEntriesPerTable> memory;
  AddressSpace kernel = AddressSpace::create_kernel(memory).release_value();
  test::SwapMachine machine;
  std::vector<FrameEntry> entries = std::vector<FrameEntry>(kFrames);
  std::vector<RmapNode> nodes = std::vector<RmapNode>(64);
  std::vector<u16> counts = std::vector<u16>(kSlots);
  FrameTable table;
  SwapSlots slots;
  Swapper swapper{table, slots};
  std::vector<std::unique_ptr<AddressSpace>> spaces;

  void SetUp() override {
    reset_cpu();
    ASSERT_TRUE(kernel.prepare_kernel_half().ok());
#if defined(PAGODA_TEST_AARCH64)
    kernel.activate();
#endif
    test::machine() = &machine;
    machine.disk.resize(kSlots);
    for (auto& slot : machine.disk) slot.fill(0);
    table.init(Span<FrameEntry>(entries.data(), entries.size()), kFirstFrame,
               Span<RmapNode>(nodes.data(), nodes.size()), 0);
    slots.init(Span<u16>(counts.data(), counts.size()));
    swapper.attach(test::fake_disk(), test::fake_pool());
  }
  void TearDown() override {
    reset_cpu();  // nothing live: the spaces may go
    spaces.clear();
    test::machine() = nullptr;
  }

  AddressSpace& new_space() {
    spaces.push_back(std::make_unique<AddressSpace>(AddressSpace::create_user(kernel).release_value()));
    return *spaces.back();
  }
  /// A fresh frame holding @p seed's pattern, mapped at @p va in @p space and recorded, as the
  /// kernel's fault path does.
  PhysAddr map_page(AddressSpace& space, u64 va, u64 seed, Perms perms = kUserData) {
    const PhysAddr frame = machine.allocate();
    machine.fill(frame, seed);
    EXPECT_TRUE(space.map(VirtAddr(va), frame, perms).ok());
    EXPECT_TRUE(table.note_mapped(frame, space, space.root(), VirtAddr(va)).ok());
    return frame;
  }
  /// @p frame mapped in @p space too (what a copy-on-write fork does: one more reference).
  void share_page(AddressSpace& space, u64 va, PhysAddr frame, Perms perms = kUserReadOnly) {
    ++machine.refs[frame.value()];
    EXPECT_TRUE(space.map(VirtAddr(va), frame, perms).ok());
    EXPECT_TRUE(table.note_mapped(frame, space, space.root(), VirtAddr(va)).ok());
  }
  /// The page-level entry of @p va in @p space (a leaf, or a swap entry).
  u64& leaf(AddressSpace& space, u64 va) {
    const Walk w = space.query(VirtAddr(va));
    EXPECT_EQ(w.last().level, F::kLevels - 1) << "no leaf table for " << test::hex(va);
    return memory.table_entries(w.last().table)[w.last().index];
  }
  /// Brings @p va back as the fault path does: swap_in(), then the mapping recorded.
  PhysAddr bring_back(AddressSpace& space, u64 va, Perms perms = kUserData) {
    const Result<PhysAddr> frame = swapper.swap_in(space, VirtAddr(va), perms);
    EXPECT_TRUE(frame.ok());
    if (!frame.ok()) return PhysAddr();
    EXPECT_TRUE(table.note_mapped(frame.value(), space, space.root(), VirtAddr(va)).ok());
    return frame.value();
  }
};

// ---- Part A: one page out and back -----------------------------------------------------------

TEST_F(SwapTest, AnEvictedPageIsASwapEntryItsBytesInTheSlotItsFrameFree) {
  AddressSpace& a = new_space();
  a.activate();
  const u64 va = 0x40'3000;
  const PhysAddr frame = map_page(a, va, 7);
  cpu_log().clear();
  ASSERT_TRUE(swapper.evict_frame(frame).ok());
  const u64 e = leaf(a, va);
  ASSERT_TRUE(F::is_swap_entry(e, F::kLevels - 1)) << "the page's entry is " << test::hex(e) << ", not a swap entry";
  EXPECT_FALSE(F::is_present(e, F::kLevels - 1)) << "a swap entry the MMU (or the walk) takes for a mapping";
  EXPECT_FALSE(a.query(VirtAddr(va)).mapped());
  const u64 slot = F::swap_slot(e);
  EXPECT_EQ(slots.count(slot), 1u) << "one entry names the slot";
  EXPECT_TRUE(machine.slot_holds(slot, 7)) << "the slot does not hold the page's bytes";
  EXPECT_EQ(machine.writes(), 1u);
  EXPECT_EQ(machine.frames.count(frame.value()), 0u) << "the frame was not freed";
  EXPECT_FALSE(table.is_resident(frame));
  EXPECT_EQ(table.resident(), 0u);
  EXPECT_TRUE(logged(invalidation(a, va))) << "the evicted page's translation was not invalidated";
  EXPECT_EQ(swapper.counters().evictions, 1u);
}

TEST_F(SwapTest, SwapInReadsTheSlotIntoANewFrameBeforeMappingIt) {
  AddressSpace& a = new_space();
  const u64 va = 0x40'5000;
  ASSERT_TRUE(swapper.evict_frame(map_page(a, va, 3)).ok());
  const u64 slot = F::swap_slot(leaf(a, va));
  bool mapped_at_read = true;
  machine.on_read = [&](u64, PhysAddr) { mapped_at_read = a.query(VirtAddr(va)).mapped(); };
  const PhysAddr frame = bring_back(a, va);
  EXPECT_FALSE(mapped_at_read) << "the page was mapped before its bytes were read into its frame";
  const Walk w = a.query(VirtAddr(va));
  ASSERT_TRUE(w.mapped());
  EXPECT_EQ(w.pa, frame);
  EXPECT_TRUE(w.perms.write && w.perms.user) << "not mapped with the region's permissions";
  EXPECT_TRUE(machine.holds(frame, 3));
  EXPECT_EQ(machine.reads(), 1u);
  // The entry was the slot's only holder: its hold is the frame's backing now.
  EXPECT_EQ(slots.count(slot), 1u);
  ASSERT_TRUE(table.entry(frame).has_backing());
  EXPECT_EQ(table.entry(frame).backing_slot(), slot);
  EXPECT_FALSE(F::is_dirty(leaf(a, va))) << "a page fresh from its slot must be mapped clean";
}

TEST_F(SwapTest, SwapInOfAPageNotSwappedOutIsRefusedAndChangesNothing) {
  AddressSpace& a = new_space();
  const u64 va = 0x40'5000;
  (void)map_page(a, va, 3);
  const Result<PhysAddr> in = swapper.swap_in(a, VirtAddr(va), kUserData);
  ASSERT_TRUE(in.is_error());
  EXPECT_EQ(in.error().code, ErrorCode::NotFound);
  EXPECT_EQ(machine.reads(), 0u);
}

TEST_F(SwapTest, AFailedReadLeavesTheSwapEntryAndFreesTheFrame) {
  AddressSpace& a = new_space();
  const u64 va = 0x40'5000;
  ASSERT_TRUE(swapper.evict_frame(map_page(a, va, 3)).ok());
  const u64 before = leaf(a, va);
  machine.disk.resize(0);  // every read fails now
  const usize frames = machine.frames.size();
  ASSERT_TRUE(swapper.swap_in(a, VirtAddr(va), kUserData).is_error());
  EXPECT_EQ(leaf(a, va), before);
  EXPECT_EQ(machine.frames.size(), frames) << "the frame taken for the read was not given back";
}

TEST_F(SwapTest, ReleaseGivesBackEverySlotAndTheTablesItEmptied) {
  AddressSpace& a = new_space();
  const usize tables = memory.live_tables();
  for (u64 i = 0; i < 3; ++i) ASSERT_TRUE(swapper.evict_frame(map_page(a, 0x1000'0000 + i * kPageSize, i)).ok());
  EXPECT_EQ(slots.in_use(), 3u);
  EXPECT_GT(memory.live_tables(), tables);
  ASSERT_TRUE(swapper.release(a, VirtAddr(0), VirtAddr(0x2000'0000)).ok());
  EXPECT_EQ(slots.in_use(), 0u) << "slots leaked";
  for (u64 i = 0; i < 3; ++i) EXPECT_FALSE(a.query(VirtAddr(0x1000'0000 + i * kPageSize)).mapped());
  EXPECT_EQ(memory.live_tables(), tables) << "the tables the swap entries kept were not freed";
}

TEST_F(SwapTest, ReleaseLeavesResidentPagesAlone) {
  AddressSpace& a = new_space();
  const PhysAddr kept = map_page(a, 0x1000'0000, 1);
  ASSERT_TRUE(swapper.evict_frame(map_page(a, 0x1000'1000, 2)).ok());
  ASSERT_TRUE(swapper.release(a, VirtAddr(0x1000'0000), VirtAddr(0x1000'2000)).ok());
  EXPECT_EQ(a.query(VirtAddr(0x1000'0000)).pa, kept);
  EXPECT_EQ(slots.in_use(), 0u);
}

// ---- Part B: dirty tracking and the clock ----------------------------------------------------

TEST_F(SwapTest, ACleanPageGoesOutWithoutAWriteAWrittenOneIsWrittenAgain) {
  AddressSpace& a = new_space();
  const u64 va = 0x40'6000;
  ASSERT_TRUE(swapper.evict_frame(map_page(a, va, 5)).ok());
  const u64 slot = F::swap_slot(leaf(a, va));
  (void)bring_back(a, va);
  ASSERT_EQ(machine.writes(), 1u);
  ASSERT_TRUE(swapper.evict_frame(a.query(VirtAddr(va)).pa).ok());
  EXPECT_EQ(machine.writes(), 1u) << "a clean page whose slot still holds it was written again";
  EXPECT_EQ(F::swap_slot(leaf(a, va)), slot) << "a clean page goes back to its own slot";
  EXPECT_EQ(slots.count(slot), 1u);
  EXPECT_EQ(swapper.counters().clean_evictions, 1u);
  // Written through after it came back: its bytes on the disk are stale.
  const PhysAddr frame = bring_back(a, va);
  machine.fill(frame, 6);
  leaf(a, va) = written(leaf(a, va));
  ASSERT_TRUE(swapper.evict_frame(frame).ok());
  EXPECT_EQ(machine.writes(), 2u) << "a dirty page was dropped without a write";
  EXPECT_TRUE(machine.slot_holds(F::swap_slot(leaf(a, va)), 6));
}

TEST_F(SwapTest, APageWrittenThenMadeReadOnlyIsStillWritten) {
  // Fork's copy-on-write (and mprotect) take write permission from a page that was written since
  // it came back: the write must survive the narrowing, or the page goes out as clean.
  AddressSpace& a = new_space();
  const u64 va = 0x40'6000;
  ASSERT_TRUE(swapper.evict_frame(map_page(a, va, 5)).ok());
  const PhysAddr frame = bring_back(a, va);
  machine.fill(frame, 6);
  leaf(a, va) = written(leaf(a, va));
  ASSERT_TRUE(a.protect(VirtAddr(va), kPageSize, kUserReadOnly).ok());
  const usize writes = machine.writes();
  ASSERT_TRUE(swapper.evict_frame(frame).ok());
  EXPECT_EQ(machine.writes(), writes + 1) << "a page written, then made read-only, went out as clean";
  EXPECT_TRUE(machine.slot_holds(F::swap_slot(leaf(a, va)), 6));
}

TEST_F(SwapTest, TheDiskIsWrittenOnlyOnceNoRootMapsTheFrameAndEveryTlbWasTold) {
  AddressSpace& a = new_space();
  AddressSpace& b = new_space();
  a.activate();
  const PhysAddr frame = map_page(a, 0x40'0000, 9);
  share_page(b, 0x50'0000, frame);
  cpu_log().clear();
  bool checked = false;
  machine.on_write = [&](u64, PhysAddr written_frame) {
    checked = true;
    EXPECT_EQ(written_frame, frame);
    EXPECT_FALSE(a.query(VirtAddr(0x40'0000)).mapped()) << "the disk was written while a root still mapped the victim";
    EXPECT_FALSE(b.query(VirtAddr(0x50'0000)).mapped()) << "the disk was written while a root still mapped the victim";
    if (may_be_cached(a)) EXPECT_TRUE(logged(invalidation(a, 0x40'0000))) << "written before a's TLB was told";
    if (may_be_cached(b)) EXPECT_TRUE(logged(invalidation(b, 0x50'0000))) << "written before b's TLB was told";
  };
  ASSERT_TRUE(swapper.evict_frame(frame).ok());
  EXPECT_TRUE(checked) << "the victim (never written to the disk before) was not written";
}

TEST_F(SwapTest, ClockPassesFramesNotResidentOrPinnedAndGivesUsedOnesASecondChance) {
  AddressSpace& a = new_space();
  const PhysAddr used = map_page(a, 0x1000, 1);    // frame index 0
  const PhysAddr pinned = map_page(a, 0x2000, 2);  // index 1
  const PhysAddr idle = map_page(a, 0x3000, 3);    // index 2
  leaf(a, 0x1000) = accessed(leaf(a, 0x1000));
  leaf(a, 0x2000) = F::without_accessed(leaf(a, 0x2000));
  leaf(a, 0x3000) = F::without_accessed(leaf(a, 0x3000));
  table.set_hand(table.index_of(used));
  const FramePin pin(table, pinned);
  const Result<PhysAddr> victim = swapper.choose_victim();
  ASSERT_TRUE(victim.ok());
  EXPECT_EQ(victim.value(), idle) << "the clock passed the first unused frame, or took a pinned or used one";
  EXPECT_FALSE(F::is_accessed(leaf(a, 0x1000))) << "the hand passed a used frame without clearing its mark";
  EXPECT_EQ(table.hand(), table.index_of(idle) + 1) << "the hand must move past its victim";
}

TEST_F(SwapTest, ClockClearsEveryMarkInItsFirstTurnAndThenChoosesFromTheHand) {
  AddressSpace& a = new_space();
  std::vector<PhysAddr> frames;
  for (u64 i = 0; i < 4; ++i) {
    frames.push_back(map_page(a, 0x1000 * (i + 1), i));
    leaf(a, 0x1000 * (i + 1)) = accessed(leaf(a, 0x1000 * (i + 1)));
  }
  table.set_hand(table.index_of(frames[2]));
  const Result<PhysAddr> victim = swapper.choose_victim();
  ASSERT_TRUE(victim.ok());
  EXPECT_EQ(victim.value(), frames[2]) << "after a whole turn the first frame the hand meets again is the victim";
}

TEST_F(SwapTest, ClockTakesAnUnusedCleanFrameBeforeAnUnusedDirtyOneAndTouchesNothingForIt) {
  AddressSpace& a = new_space();
  const PhysAddr dirty = map_page(a, 0x1000, 1);  // index 0: never written to a slot
  const PhysAddr used = map_page(a, 0x2000, 2);   // index 1
  ASSERT_TRUE(swapper.evict_frame(map_page(a, 0x3000, 3)).ok());
  const PhysAddr clean = bring_back(a, 0x3000);  // backed by its slot, clean
  leaf(a, 0x1000) = F::without_accessed(leaf(a, 0x1000));
  leaf(a, 0x2000) = accessed(leaf(a, 0x2000));
  leaf(a, 0x3000) = F::without_accessed(leaf(a, 0x3000));
  table.set_hand(table.index_of(dirty));
  const Result<PhysAddr> victim = swapper.choose_victim();
  ASSERT_TRUE(victim.ok());
  EXPECT_EQ(victim.value(), clean) << "the clean turn must take the unused clean frame, not the dirty one before it";
  EXPECT_TRUE(F::is_accessed(leaf(a, 0x2000))) << "the clean turn only looks: it must not take a used frame's mark";
  EXPECT_NE(victim.value(), used);
}

TEST_F(SwapTest, ClockReadsTheAccessedStateOfEveryMapping) {
  AddressSpace& a = new_space();
  AddressSpace& b = new_space();
  a.activate();
  const PhysAddr shared = map_page(a, 0x1000, 1);
  share_page(b, 0x9000, shared);
  const PhysAddr other = map_page(a, 0x2000, 2);
  leaf(a, 0x1000) = F::without_accessed(leaf(a, 0x1000));
  leaf(b, 0x9000) = accessed(leaf(b, 0x9000));  // used through the second root only
  leaf(a, 0x2000) = F::without_accessed(leaf(a, 0x2000));
  table.set_hand(table.index_of(shared));
  cpu_log().clear();
  const Result<PhysAddr> victim = swapper.choose_victim();
  ASSERT_TRUE(victim.ok());
  EXPECT_EQ(victim.value(), other) << "a frame used through another root than the first mapping's was chosen";
  EXPECT_FALSE(F::is_accessed(leaf(b, 0x9000))) << "the other root's mark was not cleared";
  if (may_be_cached(b)) EXPECT_TRUE(logged(invalidation(b, 0x9000))) << "its mark cleared, its translation kept";
}

TEST_F(SwapTest, ClockReadsEachMappingInItsOwnRoot) {
  // The other way round: the mapping recorded last (the first of the frame's list) is the unused
  // one; the used one is at another address in another root. Read through any one root, the use
  // is missed.
  AddressSpace& a = new_space();
  AddressSpace& b = new_space();
  const PhysAddr shared = map_page(a, 0x1000, 1);
  share_page(b, 0x9000, shared);
  const PhysAddr other = map_page(a, 0x2000, 2);
  leaf(a, 0x1000) = accessed(leaf(a, 0x1000));  // used through the first root only
  leaf(b, 0x9000) = F::without_accessed(leaf(b, 0x9000));
  leaf(a, 0x2000) = F::without_accessed(leaf(a, 0x2000));
  table.set_hand(table.index_of(shared));
  const Result<PhysAddr> victim = swapper.choose_victim();
  ASSERT_TRUE(victim.ok());
  EXPECT_EQ(victim.value(), other) << "a frame used through one of its roots was chosen: that root's mark was not read";
  EXPECT_FALSE(F::is_accessed(leaf(a, 0x1000)));
}

TEST_F(SwapTest, SwapInMapsWithThePermissionsItIsGiven) {
  AddressSpace& a = new_space();
  constexpr Perms kUserText{.read = true, .write = false, .execute = true, .user = true};
  ASSERT_TRUE(swapper.evict_frame(map_page(a, 0x40'0000, 1, kUserText)).ok());
  (void)bring_back(a, 0x40'0000, kUserText);
  const Walk w = a.query(VirtAddr(0x40'0000));
  ASSERT_TRUE(w.mapped());
  EXPECT_FALSE(w.perms.write) << "a read-only region's page came back writable";
  EXPECT_TRUE(w.perms.execute) << "a text page came back not executable";
}

TEST_F(SwapTest, ClockSaysSoWhenEveryResidentFrameIsPinned) {
  AddressSpace& a = new_space();
  const FramePin pin(table, map_page(a, 0x1000, 1));
  const Result<PhysAddr> victim = swapper.choose_victim();
  ASSERT_TRUE(victim.is_error());
  EXPECT_EQ(victim.error().code, ErrorCode::NoMemory);
}

TEST_F(SwapTest, CleanFrameMarksEveryMappingCleanAndInvalidatesBeforeItWrites) {
  AddressSpace& a = new_space();
  AddressSpace& b = new_space();
  a.activate();
  const PhysAddr frame = map_page(a, 0x1000, 4);
  share_page(b, 0x2000, frame, kUserData);
  leaf(a, 0x1000) = written(leaf(a, 0x1000));
  cpu_log().clear();
  machine.on_write = [&](u64, PhysAddr) {
    EXPECT_FALSE(F::is_dirty(leaf(a, 0x1000)) || F::is_dirty(leaf(b, 0x2000))) << "written back while still dirty";
    if (may_be_cached(a)) EXPECT_TRUE(logged(invalidation(a, 0x1000))) << "cleaned without telling the TLB";
  };
  ASSERT_TRUE(swapper.clean_frame(frame).ok());
  EXPECT_EQ(machine.writes(), 1u);
  ASSERT_TRUE(table.entry(frame).has_backing());
  EXPECT_TRUE(machine.slot_holds(table.entry(frame).backing_slot(), 4));
  EXPECT_TRUE(a.query(VirtAddr(0x1000)).mapped()) << "clean_frame() keeps the page";
  ASSERT_TRUE(swapper.clean_frame(frame).ok());
  EXPECT_EQ(machine.writes(), 1u) << "a clean frame was written back again";
  ASSERT_TRUE(swapper.evict_frame(frame).ok());
  EXPECT_EQ(machine.writes(), 1u) << "evicting a cleaned frame wrote it again";
}

TEST_F(SwapTest, MakeRoomEvictsUntilTheCapLeavesRoom) {
  table.init(Span<FrameEntry>(entries.data(), entries.size()), kFirstFrame, Span<RmapNode>(nodes.data(), nodes.size()),
             3);
  AddressSpace& a = new_space();
  for (u64 i = 0; i < 3; ++i) (void)map_page(a, 0x1000 * (i + 1), i);
  ASSERT_TRUE(swapper.make_room(1).ok());
  EXPECT_EQ(table.resident(), 2u);
  EXPECT_EQ(swapper.counters().evictions, 1u);
  ASSERT_TRUE(swapper.make_room(3).ok());
  EXPECT_EQ(table.resident(), 0u);
}

TEST_F(SwapTest, MakeRoomWithoutADiskIsOutOfMemory) {
  table.init(Span<FrameEntry>(entries.data(), entries.size()), kFirstFrame, Span<RmapNode>(nodes.data(), nodes.size()),
             1);
  swapper.attach(SwapDevice{}, test::fake_pool());
  AddressSpace& a = new_space();
  (void)map_page(a, 0x1000, 1);
  const Result<void> room = swapper.make_room(1);
  ASSERT_TRUE(room.is_error());
  EXPECT_EQ(room.error().code, ErrorCode::NoMemory);
  EXPECT_EQ(table.resident(), 1u);
}

TEST_F(SwapTest, AFullDiskIsOutOfMemoryAndChangesNothing) {
  AddressSpace& a = new_space();
  for (u64 s = 0; s < kSlots; ++s) (void)slots.take();
  const u64 va = 0x40'1000;
  const PhysAddr frame = map_page(a, va, 1);
  const Result<void> out = swapper.evict_frame(frame);
  ASSERT_TRUE(out.is_error());
  EXPECT_EQ(out.error().code, ErrorCode::NoMemory);
  EXPECT_EQ(a.query(VirtAddr(va)).pa, frame);
  EXPECT_TRUE(table.is_resident(frame));
}

// ---- Part C: sharing -----------------------------------------------------------------------

TEST_F(SwapTest, AFrameMappedByTwoRootsLeavesBothEachInvalidatedInItsOwnRoot) {
  AddressSpace& a = new_space();
  AddressSpace& b = new_space();
  b.activate();  // a is not live: on AArch64 its entries are still cached under its own ASID
  const PhysAddr frame = map_page(a, 0x40'0000, 8, kUserReadOnly);
  share_page(b, 0x40'0000, frame);
  cpu_log().clear();
  ASSERT_TRUE(swapper.evict_frame(frame).ok());
  const u64 ea = leaf(a, 0x40'0000), eb = leaf(b, 0x40'0000);
  ASSERT_TRUE(F::is_swap_entry(ea, F::kLevels - 1) && F::is_swap_entry(eb, F::kLevels - 1))
      << "a root still maps the evicted frame";
  EXPECT_EQ(F::swap_slot(ea), F::swap_slot(eb)) << "one frame, one slot";
  EXPECT_EQ(slots.count(F::swap_slot(ea)), 2u) << "the slot's count is the entries that name it";
  EXPECT_EQ(machine.frames.count(frame.value()), 0u) << "both references dropped: the frame is free";
  EXPECT_EQ(machine.writes(), 1u);
  if (may_be_cached(a)) EXPECT_TRUE(logged(invalidation(a, 0x40'0000))) << "a's TLB not told (its own ASID)";
  if (may_be_cached(b)) EXPECT_TRUE(logged(invalidation(b, 0x40'0000))) << "b's TLB not told";
}

TEST_F(SwapTest, ForkSharesASwappedSlotAndTheLastHolderFreesIt) {
  AddressSpace& parent = new_space();
  AddressSpace& child = new_space();
  const u64 va = 0x40'2000;
  ASSERT_TRUE(swapper.evict_frame(map_page(parent, va, 2)).ok());
  const u64 slot = F::swap_slot(leaf(parent, va));
  ASSERT_TRUE(swapper.share_swapped(parent, child, VirtAddr(0x40'0000), VirtAddr(0x41'0000)).ok());
  EXPECT_EQ(leaf(child, va), leaf(parent, va)) << "the child's entry must name the parent's slot";
  EXPECT_EQ(slots.count(slot), 2u) << "fork shared the slot without counting the child's hold";
  // The child brings it back: a frame of its own; the parent still holds the slot.
  const PhysAddr mine = bring_back(child, va);
  EXPECT_TRUE(machine.holds(mine, 2));
  EXPECT_EQ(slots.count(slot), 1u);
  EXPECT_FALSE(table.entry(mine).has_backing()) << "a slot another entry names cannot be this frame's backing";
  EXPECT_TRUE(machine.slot_holds(slot, 2));
  // The parent lets go: the slot is free.
  ASSERT_TRUE(swapper.release(parent, VirtAddr(0), VirtAddr(0x1000'0000)).ok());
  EXPECT_EQ(slots.count(slot), 0u);
  EXPECT_EQ(slots.in_use(), 0u);
}

TEST_F(SwapTest, TheReverseMapFollowsASpaceThatMoves) {
  // exec loads the new space on its stack and moves it into the process: the mappings recorded
  // meanwhile must name the space where it lives now, or the next eviction follows a dead pointer.
  static FrameTable* observed;
  observed = &table;
  AddressSpace::set_move_observer([](const AddressSpace& from, AddressSpace& to) { observed->space_moved(from, to); });
  auto loaded = std::make_unique<AddressSpace>(AddressSpace::create_user(kernel).release_value());
  const PhysAddr frame = map_page(*loaded, 0x7fff'ffff'e000, 5);
  spaces.push_back(std::make_unique<AddressSpace>(move(*loaded)));
  loaded.reset();  // the old object is gone, as exec's local is when it returns
  AddressSpace::set_move_observer(nullptr);
  ASSERT_EQ(table.first_mapping(frame)->space, spaces.back().get())
      << "the reverse map still names the moved-from space";
  ASSERT_TRUE(swapper.evict_frame(frame).ok());
  EXPECT_TRUE(F::is_swap_entry(leaf(*spaces.back(), 0x7fff'ffff'e000), F::kLevels - 1));
}

// ---- The slot map and the reverse map ------------------------------------------------------

TEST(SwapSlots, TakeHandsOutFreeSlotsSharedAndDroppedByCountAndAFullMapIsOutOfMemory) {
  // The interface only: which free slot take() hands out is the student's design.
  std::vector<u16> counts(4, 7);  // init() must clear them
  SwapSlots s;
  s.init(Span<u16>(counts.data(), counts.size()));
  EXPECT_EQ(counts, (std::vector<u16>(4, 0))) << "init() leaves every slot free in the published counts";
  const u64 a = s.take().value(), b = s.take().value();
  EXPECT_NE(a, b) << "a held slot was handed out again";
  EXPECT_EQ(s.count(a), 1u);
  EXPECT_EQ(counts[b], 1u) << "the published count is the holders'";
  EXPECT_TRUE(s.drop(a));
  EXPECT_EQ(counts[a], 0u);
  EXPECT_TRUE(s.share(b).ok());
  EXPECT_EQ(s.count(b), 2u);
  EXPECT_FALSE(s.drop(b)) << "another holder remains";
  EXPECT_TRUE(s.drop(b)) << "the last holder frees it";
  EXPECT_TRUE(s.share(b).is_error()) << "sharing a free slot";
  std::vector<u64> taken;
  for (int i = 0; i < 4; ++i) taken.push_back(s.take().value());
  std::sort(taken.begin(), taken.end());
  EXPECT_EQ(taken, (std::vector<u64>{0, 1, 2, 3})) << "every free slot is handed out, none twice";
  EXPECT_EQ(s.in_use(), 4u);
  const Result<u64> full = s.take();
  ASSERT_TRUE(full.is_error());
  EXPECT_EQ(full.error().code, ErrorCode::NoMemory);
  EXPECT_THROW((void)s.drop(9), host::HostPanic);
  for (u64 slot = 0; slot < 4; ++slot) (void)s.drop(slot);
  EXPECT_EQ(s.in_use(), 0u);
  EXPECT_THROW((void)s.drop(2), host::HostPanic) << "dropping a free slot must stop the kernel";
}

TEST(FrameTable, TheReverseMapRecordsEveryMappingAndCountsResidentFrames) {
  std::vector<FrameEntry> entries(8);
  std::vector<RmapNode> nodes(3);
  FrameTable t;
  t.init(Span<FrameEntry>(entries.data(), entries.size()), 0x100, Span<RmapNode>(nodes.data(), nodes.size()), 0);
  auto* a = reinterpret_cast<AddressSpace*>(0x1000);  // never followed by the table
  auto* b = reinterpret_cast<AddressSpace*>(0x2000);
  const PhysAddr f(0x101 * kPageSize), g(0x102 * kPageSize);
  ASSERT_TRUE(t.tracks(f) && !t.tracks(PhysAddr(0x0ff * kPageSize)) && !t.tracks(PhysAddr(0x108 * kPageSize)));
  ASSERT_TRUE(t.note_mapped(f, *a, PhysAddr(0xa000), VirtAddr(0x4000)).ok());
  ASSERT_TRUE(t.note_mapped(f, *b, PhysAddr(0xb000), VirtAddr(0x4000)).ok());
  ASSERT_TRUE(t.note_mapped(g, *a, PhysAddr(0xa000), VirtAddr(0x5000)).ok());
  EXPECT_EQ(t.resident(), 2u);
  EXPECT_EQ(t.entry(f).mappings, 2u);
  std::vector<u64> roots;
  for (const RmapNode* m = t.first_mapping(f); m != nullptr; m = t.next_mapping(*m)) roots.push_back(m->root);
  std::sort(roots.begin(), roots.end());
  EXPECT_EQ(roots, (std::vector<u64>{0xa000, 0xb000}));
  EXPECT_TRUE(t.note_mapped(f, *a, PhysAddr(0xa000), VirtAddr(0x6000)).is_error()) << "the nodes are all taken";
  EXPECT_THROW((void)t.note_mapped(g, *a, PhysAddr(0xa000), VirtAddr(0x5000)), host::HostPanic) << "recorded twice";
  EXPECT_TRUE(t.note_unmapped(f, *b, VirtAddr(0x4000)));
  EXPECT_FALSE(t.note_unmapped(f, *b, VirtAddr(0x4000))) << "forgotten twice";
  EXPECT_TRUE(t.is_resident(f));
  EXPECT_TRUE(t.note_unmapped(f, *a, VirtAddr(0x4000)));
  EXPECT_FALSE(t.is_resident(f));
  EXPECT_EQ(t.resident(), 1u);
  EXPECT_EQ(t.forget_mappings(g), 1u);
  EXPECT_EQ(t.resident(), 0u);
  EXPECT_EQ(t.free_nodes(), 3u) << "a node was not given back";
  // The published records (the contract): a node with a space is one recorded mapping.
  ASSERT_TRUE(t.note_mapped(g, *b, PhysAddr(0xb000), VirtAddr(0x7000)).ok());
  usize recorded = 0;
  for (const RmapNode& n : nodes)
    if (n.space != nullptr) {
      ++recorded;
      EXPECT_TRUE(n.space == b && n.root == 0xb000 && n.va == 0x7000 && n.frame == t.index_of(g));
    }
  EXPECT_EQ(recorded, 1u) << "a node given back must have a null space; a taken one names its mapping";
}

TEST(FrameTable, APinHoldsTheFrameForAsLongAsItLives) {
  std::vector<FrameEntry> entries(4);
  std::vector<RmapNode> nodes(1);
  FrameTable t;
  t.init(Span<FrameEntry>(entries.data(), entries.size()), 0x100, Span<RmapNode>(nodes.data(), nodes.size()), 0);
  const PhysAddr f(0x101 * kPageSize);
  {
    const FramePin pin(t, f);
    EXPECT_TRUE(t.pinned(f));
    FramePin moved = FramePin(t, f);
    EXPECT_EQ(t.entry(f).pins, 2u);
  }
  EXPECT_FALSE(t.pinned(f));
  const FramePin none(t, PhysAddr(0x200 * kPageSize));  // not a frame the table tracks
  EXPECT_FALSE(none.holds());
  EXPECT_THROW(t.unpin(f), host::HostPanic);
}

#if !defined(PAGODA_TEST_AARCH64)
// ---- Swap entries in both formats --------------------------------------------------------------

template <class Fmt> struct SwapEntryTest : ::testing::Test {};
using Formats = ::testing::Types<x86::PageTableFormat, aarch64::PageTableFormat>;
TYPED_TEST_SUITE(SwapEntryTest, Formats);

TYPED_TEST(SwapEntryTest, ASwapEntryIsNeverAMappingAndNamesItsSlot) {
  using Fmt = TypeParam;
  constexpr usize kLeaf = Fmt::kLevels - 1;
  for (u64 slot : {u64{0}, u64{1}, u64{0x1234}, Fmt::kSwapSlots - 1}) {
    const u64 e = Fmt::make_swap_entry(slot);
    EXPECT_TRUE(Fmt::is_swap_entry(e, kLeaf));
    EXPECT_FALSE(Fmt::is_present(e, kLeaf)) << "the walk (and the MMU) must not take a swap entry for a mapping";
    EXPECT_FALSE(Fmt::is_held(e, kLeaf)) << "a swap entry is not a PROT_NONE page";
    EXPECT_EQ(e & 1, 0u) << "bit 0 (x86 P, AArch64 valid) must be clear: the MMU never uses the entry";
    EXPECT_EQ(Fmt::swap_slot(e), slot);
    EXPECT_FALSE(Fmt::is_swap_entry(e, kLeaf - 1)) << "only a page-level entry is a swap entry";
  }
  EXPECT_FALSE(Fmt::is_swap_entry(0, kLeaf)) << "an empty entry is not a swap entry of slot 0";
  const u64 held = Fmt::make_page_entry(PhysAddr(0x5000), Perms{.read = false, .user = true});
  EXPECT_FALSE(Fmt::is_swap_entry(held, kLeaf)) << "a held (PROT_NONE) leaf is not a swap entry";
  const u64 page = Fmt::make_page_entry(PhysAddr(0x5000), kUserData);
  EXPECT_FALSE(Fmt::is_swap_entry(page, kLeaf));
  EXPECT_THROW((void)Fmt::make_swap_entry(Fmt::kSwapSlots), host::HostPanic);
}

TYPED_TEST(SwapEntryTest, AccessedAndDirtyAreReadAndClearedThroughTheFormat) {
  using Fmt = TypeParam;
  const u64 page = Fmt::make_page_entry(PhysAddr(0x7000), kUserData);
  const u64 idle = Fmt::without_accessed(page);
  EXPECT_FALSE(Fmt::is_accessed(idle));
  EXPECT_EQ(Fmt::output_address(idle, Fmt::kLevels - 1), PhysAddr(0x7000));
  const u64 clean = Fmt::cleaned(page);
  EXPECT_FALSE(Fmt::is_dirty(clean));
  EXPECT_TRUE(Fmt::entry_perms(clean, Fmt::kLevels - 1).write) << "a clean writable page is still writable";
  EXPECT_TRUE(Fmt::is_present(clean, Fmt::kLevels - 1));
}

TEST(SwapEntryX86, TheSlotIsStoredInvertedFarAboveRam) {
  using Fmt = x86::PageTableFormat;
  const u64 e = Fmt::make_swap_entry(5);
  EXPECT_GE(Fmt::output_address(e, Fmt::kPt).value(), u64{1} << 40) << "L1TF: the address field must point past RAM";
}

TEST(SwapEntryAarch64, ACleanPageIsReadOnlyToTheMmuUntilItsFirstWrite) {
  using Fmt = aarch64::PageTableFormat;
  const u64 page = Fmt::make_page_entry(PhysAddr(0x4000'7000), kUserData);
  EXPECT_TRUE(Fmt::is_dirty(page)) << "a page mapped writable counts as written";
  const u64 clean = Fmt::cleaned(page);
  EXPECT_TRUE(Fmt::is_clean_writable(clean));
  EXPECT_NE(clean & Fmt::kApReadOnly, 0u) << "the MMU must refuse the first write (AP[2] set)";
  const u64 dirty = Fmt::dirtied(clean);
  EXPECT_TRUE(Fmt::is_dirty(dirty));
  EXPECT_EQ(dirty & Fmt::kApReadOnly, 0u);
  // mprotect keeps a clean page clean while it stays writable, and drops SW when it does not.
  EXPECT_TRUE(Fmt::is_clean_writable(Fmt::with_perms(clean, Fmt::kL3, kUserData)));
  const u64 ro = Fmt::with_perms(clean, Fmt::kL3, kUserReadOnly);
  EXPECT_FALSE(Fmt::entry_perms(ro, Fmt::kL3).write);
  EXPECT_EQ(ro & Fmt::kSoftWrite, 0u);
  // Write permission taken away from a dirty page (fork's copy-on-write, mprotect, PROT_NONE) must
  // not take the write with it: DIRTY keeps it, until the page is cleaned.
  for (const Perms narrower : {kUserReadOnly, Perms{.read = false, .user = true}}) {
    const u64 narrowed = Fmt::with_perms(dirty, Fmt::kL3, narrower);
    EXPECT_TRUE(Fmt::is_dirty(narrowed)) << "a written page made " << (narrower.read ? "read-only" : "PROT_NONE")
                                         << " lost its dirty state";
    EXPECT_FALSE(Fmt::is_dirty(Fmt::cleaned(narrowed)));
    EXPECT_TRUE(Fmt::is_dirty(Fmt::with_perms(narrowed, Fmt::kL3, kUserData))) << "and back to writable";
  }
  EXPECT_FALSE(Fmt::is_dirty(Fmt::with_perms(clean, Fmt::kL3, kUserReadOnly)))
      << "a clean page made read-only is clean";
  // The access flag.
  EXPECT_FALSE(Fmt::is_accessed(Fmt::without_accessed(page)));
  EXPECT_TRUE(Fmt::is_accessed(Fmt::with_accessed(Fmt::without_accessed(page))));
}
#endif

}  // namespace
}  // namespace pagoda
