// The page-table layer over simulated physical memory, in the x86_64 format.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "arch_impl/page_table_format.hpp"
#include "host_support.hpp"
#include "mm/page_table.hpp"

namespace pagoda {
namespace {

using F = arch::PageTableFormat;
using Table = PageTable<F>;
constexpr u64 kPage = 4 * KiB;

/// Physical memory for tables: frames handed out from a counter, optionally failing after a
/// number of allocations; freed frames are checked to be empty.
class FakeTableMemory final : public TableMemory {
 public:
  Result<PhysAddr> allocate_table() override {
    if (fail_after_ >= 0 && allocations_ >= fail_after_) return Error::NoMemory;
    ++allocations_;
    const PhysAddr pa(next_);
    next_ += kPage;
    frames_[pa.value()] = std::make_unique<u64[]>(F::kEntriesPerTable);
    std::memset(frames_[pa.value()].get(), 0, kPage);
    return pa;
  }
  void free_table(PhysAddr table) override {
    auto it = frames_.find(table.value());
    ASSERT_NE(it, frames_.end()) << "freeing a table that is not allocated";
    for (usize i = 0; i < F::kEntriesPerTable; ++i) EXPECT_EQ(it->second[i], 0u) << "freeing a non-empty table";
    frames_.erase(it);
  }
  u64* table_entries(PhysAddr table) override {
    auto it = frames_.find(table.value());
    return it == frames_.end() ? nullptr : it->second.get();
  }
  usize live_tables() const { return frames_.size(); }
  void fail_after(int allocations) {
    fail_after_ = allocations;
    allocations_ = 0;
  }

 private:
  std::map<u64, std::unique_ptr<u64[]>> frames_;
  u64 next_ = 0x10'0000'0000;  // far away from the pages the tests map
  int allocations_ = 0;
  int fail_after_ = -1;
};

class RecordingTlb final : public TlbInvalidator {
 public:
  void invalidate_page(VirtAddr va) override { pages.push_back(va.value()); }
  void invalidate_all() override { ++full_flushes; }
  std::vector<u64> pages;
  int full_flushes = 0;
};

struct PageTableTest : ::testing::Test {
  FakeTableMemory memory;
  RecordingTlb tlb;
  Table table = Table::create(memory, tlb).release_value();

  std::string walk_text(VirtAddr va) {
    char buffer[2048];
    BufferSink sink(buffer, sizeof buffer);
    table.query(va).format(sink);
    return buffer;
  }
};

TEST_F(PageTableTest, MapThenQueryGivesAddressAndPermissions) {
  const VirtAddr va(0x0000'1234'5678'9000);
  ASSERT_TRUE(table.map(va, PhysAddr(0xabc000), kKernelData).ok());
  const Walk w = table.query(va.offset(0x123));
  ASSERT_TRUE(w.mapped());
  EXPECT_EQ(w.pa.value(), 0xabc123u);
  EXPECT_EQ(w.page_size, kPage);
  EXPECT_EQ(w.perms, kKernelData);
  EXPECT_EQ(w.depth, F::kLevels);
  EXPECT_EQ(memory.live_tables(), 4u);  // root + one table per level below it
}

TEST_F(PageTableTest, EveryPermissionCombinationRoundTrips) {
  u64 n = 0;
  for (int bits = 0; bits < 16; ++bits) {
    const Perms p{.read = true, .write = bool(bits & 1), .execute = bool(bits & 2), .user = bool(bits & 4),
                  .caching = (bits & 8) ? Caching::Uncached : Caching::WriteBack};
    const VirtAddr va(0x400000 + n * kPage);
    ASSERT_TRUE(table.map(va, PhysAddr(0x800000 + n * kPage), p).ok());
    EXPECT_EQ(table.query(va).perms, p) << "combination " << bits;
    ++n;
  }
}

TEST_F(PageTableTest, RejectsMisalignedNonCanonicalAndOverlappingRequests) {
  EXPECT_EQ(table.map(VirtAddr(0x1001000 + 8), PhysAddr(0x2000), kKernelData).error(), Error::InvalidArgument);
  EXPECT_EQ(table.map(VirtAddr(0x1001000), PhysAddr(0x2008), kKernelData).error(), Error::InvalidArgument);
  EXPECT_EQ(table.map(VirtAddr(0x0000'8000'0000'0000), PhysAddr(0x2000), kKernelData).error(), Error::InvalidArgument);
  EXPECT_EQ(table.map_range(VirtAddr(0x1000000), PhysAddr(0x2000), kPage + 1, kKernelData).error(), Error::InvalidArgument);
  ASSERT_TRUE(table.map(VirtAddr(0x1001000), PhysAddr(0x2000), kKernelData).ok());
  EXPECT_EQ(table.map(VirtAddr(0x1001000), PhysAddr(0x3000), kKernelText).error(), Error::AlreadyExists);
  EXPECT_EQ(table.query(VirtAddr(0x1001000)).pa.value(), 0x2000u);  // the first mapping stays
  EXPECT_EQ(table.map_range(VirtAddr(0x1000000), PhysAddr(0x5000000), 4 * kPage, kKernelData).error(),
            Error::AlreadyExists);
  EXPECT_FALSE(table.query(VirtAddr(0x1000000)).mapped());  // rolled back
  EXPECT_TRUE(table.query(VirtAddr(0x1001000)).mapped());
}

TEST_F(PageTableTest, UnmapReturnsTheFrameAndFreesEmptyTablesAllTheWayUp) {
  // 3 MiB below a 1 GiB boundary, 1536 pages: tables in two PDPT slots.
  const VirtAddr base(0x0000'3000'4000'0000 - 3 * MiB);
  const u64 size = 1536 * kPage;
  ASSERT_TRUE(table.map_range(base, PhysAddr(0x4000'0000), size, kKernelData).ok());
  EXPECT_GT(memory.live_tables(), 6u);
  const Result<PhysAddr> first = table.unmap(base);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first.value().value(), 0x4000'0000u);
  EXPECT_EQ(table.unmap(base).error(), Error::NotFound);
  ASSERT_TRUE(table.unmap_range(base.offset(kPage), size - kPage).ok());
  EXPECT_EQ(memory.live_tables(), 1u);  // only the root is left
  const Walk w = table.query(base);
  EXPECT_EQ(w.stop, WalkStop::NotPresent);
  EXPECT_EQ(w.depth, 1u);
}

TEST_F(PageTableTest, UnmapKeepsTablesThatStillMapSomething) {
  ASSERT_TRUE(table.map(VirtAddr(0x200000), PhysAddr(0x1000), kKernelData).ok());
  ASSERT_TRUE(table.map(VirtAddr(0x201000), PhysAddr(0x2000), kKernelData).ok());
  ASSERT_TRUE(table.unmap(VirtAddr(0x200000)).ok());
  EXPECT_EQ(memory.live_tables(), 4u);
  EXPECT_TRUE(table.query(VirtAddr(0x201000)).mapped());
}

TEST_F(PageTableTest, MapRangeOutOfMemoryLeavesNothingBehind) {
  memory.fail_after(4);  // enough for the first tables, not for crossing into the next PD
  const VirtAddr base(0x0000'0000'4000'0000 - 2 * kPage);
  const Result<void> r = table.map_range(base, PhysAddr(0x1000), 4 * kPage, kKernelData);
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), Error::NoMemory);
  EXPECT_FALSE(table.query(base).mapped());
  EXPECT_EQ(memory.live_tables(), 1u);
}

TEST_F(PageTableTest, ProtectChangesPermissionsAndFlushesEachPage) {
  ASSERT_TRUE(table.map_range(VirtAddr(0x600000), PhysAddr(0x9000), 3 * kPage, kKernelData).ok());
  tlb.pages.clear();
  ASSERT_TRUE(table.protect(VirtAddr(0x600000), 3 * kPage, kKernelReadOnly).ok());
  EXPECT_EQ(table.query(VirtAddr(0x601000)).perms, kKernelReadOnly);
  EXPECT_EQ(table.query(VirtAddr(0x601000)).pa.value(), 0xa000u);
  EXPECT_EQ(tlb.pages, (std::vector<u64>{0x600000, 0x601000, 0x602000}));
  EXPECT_EQ(table.protect(VirtAddr(0x600000), 4 * kPage, kKernelText).error(), Error::NotFound);
  EXPECT_EQ(table.query(VirtAddr(0x600000)).perms, kKernelReadOnly);  // nothing changed
}

TEST_F(PageTableTest, UnmapsAreBatchedIntoOneFlush) {
  ASSERT_TRUE(table.map_range(VirtAddr(0x800000), PhysAddr(0x1000), 100 * kPage, kKernelData).ok());
  EXPECT_TRUE(tlb.pages.empty());  // new mappings need no invalidation
  ASSERT_TRUE(table.unmap(VirtAddr(0x800000)).ok());
  EXPECT_EQ(tlb.pages, std::vector<u64>{0x800000});
  ASSERT_TRUE(table.unmap_range(VirtAddr(0x801000), 99 * kPage).ok());
  EXPECT_EQ(tlb.full_flushes, 1);
  EXPECT_EQ(tlb.pages.size(), 1u);
}

TEST_F(PageTableTest, LargePagesAreWalkedButNotSplit) {
  // A 2 MiB page at 0x4000'0000 written by hand, as the boot stub does.
  ASSERT_TRUE(table.map(VirtAddr(0x4020'0000), PhysAddr(0x1000), kKernelData).ok());
  const Walk small = table.query(VirtAddr(0x4020'0000));
  u64* pd = memory.table_entries(small.levels[2].table);
  pd[0] = 0x1'0000'0000ull | F::kPresent | F::kWritable | F::kHuge;
  const Walk w = table.query(VirtAddr(0x4012'3456));
  ASSERT_TRUE(w.mapped());
  EXPECT_EQ(w.page_size, 2 * MiB);
  EXPECT_EQ(w.pa.value(), 0x1'0012'3456u);
  EXPECT_EQ(w.depth, 3u);
  EXPECT_EQ(table.map(VirtAddr(0x4000'1000), PhysAddr(0x1000), kKernelData).error(), Error::AlreadyExists);
  EXPECT_EQ(table.unmap(VirtAddr(0x4000'1000)).error(), Error::Unsupported);
  pd[0] = 0;
}

TEST_F(PageTableTest, TableEntriesRestrictTheWholeSubtree) {
  ASSERT_TRUE(table.map(VirtAddr(0x300000), PhysAddr(0x1000), Perms{.write = true, .execute = true, .user = true}).ok());
  const Walk before = table.query(VirtAddr(0x300000));
  u64* pdpt = memory.table_entries(before.levels[1].table);
  pdpt[0] &= ~F::kWritable;
  pdpt[0] |= F::kNoExecute;
  const Walk after = table.query(VirtAddr(0x300000));
  EXPECT_FALSE(after.perms.write);
  EXPECT_FALSE(after.perms.execute);
  EXPECT_TRUE(after.perms.user);
}

TEST_F(PageTableTest, WalkStopsAreNamedByLevel) {
  EXPECT_NE(walk_text(VirtAddr(0x0000'2000'0000'0000)).find("stopped: PML4 entry 64 not present"), std::string::npos);
  ASSERT_TRUE(table.map(VirtAddr(0x1000), PhysAddr(0x1000), kKernelData).ok());
  EXPECT_NE(walk_text(VirtAddr(0x0)).find("stopped: PT entry 0 not present"), std::string::npos);
  EXPECT_NE(walk_text(VirtAddr(0x4000'0000)).find("stopped: PDPT entry 1 not present"), std::string::npos);
  EXPECT_EQ(table.query(VirtAddr(0x0000'8000'0000'0000)).stop, WalkStop::NonCanonical);
  const std::string mapped = walk_text(VirtAddr(0x1000));
  EXPECT_NE(mapped.find("PT  [  1]"), std::string::npos) << mapped;
  EXPECT_NE(mapped.find("-> page 0x0000000000001000 (4 KiB), rw- kernel"), std::string::npos) << mapped;
  // A PS bit in a PML4 entry is reserved.
  memory.table_entries(table.root())[0] |= F::kHuge;
  EXPECT_EQ(table.query(VirtAddr(0x1000)).stop, WalkStop::ReservedBits);
  memory.table_entries(table.root())[0] &= ~F::kHuge;
}

std::string explain(const Walk& w, Access a) {
  char buffer[256];
  BufferSink sink(buffer, sizeof buffer);
  explain_fault(sink, w, a);
  return buffer;
}

TEST_F(PageTableTest, FaultsAreExplained) {
  ASSERT_TRUE(table.map(VirtAddr(0x1000), PhysAddr(0x1000), kKernelText).ok());
  ASSERT_TRUE(table.map(VirtAddr(0x2000), PhysAddr(0x2000), kKernelData).ok());
  EXPECT_EQ(explain(table.query(VirtAddr(0x1000)), {.write = true}), "write to read-only page");
  EXPECT_EQ(explain(table.query(VirtAddr(0x2000)), {.execute = true}), "execute of NX page");
  EXPECT_EQ(explain(table.query(VirtAddr(0x2000)), {.user = true}), "user access to supervisor page");
  EXPECT_EQ(explain(table.query(VirtAddr(0x3000)), {}), "PT entry 3 not present");
}

}  // namespace
}  // namespace pagoda

// ---- Issue 12: the kernel half's pinning must not depend on which handle unmaps ---------------
#include "mm/layout.hpp"
namespace pagoda {
namespace {

TEST_F(PageTableTest, KernelHalfTopLevelEntrySurvivesUnmapThroughASecondHandle) {
  ASSERT_TRUE(table.prepare_kernel_half(VirtAddr(layout::kKernelHalfBase)).ok());
  const usize slot = F::index(VirtAddr(layout::kMmioBase), 0);
  const u64 before = memory.table_entries(table.root())[slot];
  ASSERT_TRUE(F::is_present(before, 0));
  Table second(table.root(), memory, tlb);  // what vm::kernel_table() hands out
  ASSERT_TRUE(second.map(VirtAddr(layout::kMmioBase), PhysAddr(0xfee00000), kKernelDevice).ok());
  ASSERT_TRUE(second.unmap(VirtAddr(layout::kMmioBase)).ok());
  EXPECT_EQ(memory.table_entries(table.root())[slot], before)
      << "the top-level entry of the kernel half was cleared (and its table freed) by an unmap through "
         "a second handle: every process root copied from it now points to a freed table";
}

}  // namespace
}  // namespace pagoda
