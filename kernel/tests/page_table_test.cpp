// The page-table layer (PageTable, Cursor, TableIterator, ConsistencyBatch) over simulated
// physical memory. The tests are typed over the format: adding an ISA's format to `Formats`
// (and its FormatTestBits) runs every test of this file on it.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "arch/aarch64/page_table_format.hpp"
#include "arch/x86_64/page_table_format.hpp"
#include "host_support.hpp"
#include "mm/pt/cursor.hpp"
#include "page_table_fakes.hpp"

namespace pagoda {
namespace {

/// What the tests need beyond the concept: the bits the hardware itself sets in a leaf.
template <class F> struct FormatTestBits;
template <> struct FormatTestBits<x86::PageTableFormat> {
  static constexpr u64 kAccessedDirty = x86::PageTableFormat::kAccessed | x86::PageTableFormat::kDirty;
  /// The bit the MMU looks at first: clear, it ignores the rest of the entry (P).
  static constexpr u64 kHardwareValid = x86::PageTableFormat::kPresent;
};
/// AArch64 (TCR_EL1.HA off): the hardware sets nothing; DBM stands in for a bit the kernel
/// keeps across protect(), which Pagoda's own entries never set.
template <> struct FormatTestBits<aarch64::PageTableFormat> {
  static constexpr u64 kAccessedDirty = aarch64::PageTableFormat::kDirtyBitModifier;
  static constexpr u64 kHardwareValid = aarch64::PageTableFormat::kValid;
};

/// F, but with AArch64's rule that a live entry changes only through an invalid one.
// clang-format off
template <class F> struct BreakBeforeMake : F {
  static constexpr bool kBreakBeforeMake = true;
};
// clang-format on

std::string explain(const Walk& w, Access a) {
  char buffer[256];
  BufferSink sink(buffer, sizeof buffer);
  explain_fault(sink, w, a);
  return buffer;
}

template <class F> struct TreeTest : ::testing::Test {
  using Tree = PageTable<F>;
  using Cur = Cursor<F>;
  static constexpr u64 kPage = F::kPageSize;
  static constexpr usize kLeaf = F::kLevels - 1;
  static constexpr usize kBlock = F::kLevels - 2;  ///< the level of 2 MiB blocks

  test::EventLog log;
  test::FakeTableMemory<F::kEntriesPerTable> memory{&log};
  test::RecordingTlb tlb{&log};
  Tree tree = Tree::create(memory).release_value();

  Result<void> map(VirtAddr va, PhysAddr pa, Perms p) {
    ConsistencyBatch b(tlb, memory);
    return Cur(tree, b, va).map(pa, p);
  }
  Result<void> map_range(VirtAddr va, PhysAddr pa, u64 size, Perms p) {
    ConsistencyBatch b(tlb, memory);
    return Cur(tree, b, va).map_range(pa, size, p);
  }
  Result<void> map_block(VirtAddr va, PhysAddr pa, Perms p) {
    ConsistencyBatch b(tlb, memory);
    return Cur(tree, b, va).map_block(pa, kBlock, p);
  }
  Result<PhysAddr> unmap(VirtAddr va) {
    ConsistencyBatch b(tlb, memory);
    return Cur(tree, b, va).unmap();
  }
  Result<void> unmap_range(VirtAddr va, u64 size) {
    ConsistencyBatch b(tlb, memory);
    return Cur(tree, b, va).unmap_range(size);
  }
  Result<void> protect(VirtAddr va, u64 size, Perms p) {
    ConsistencyBatch b(tlb, memory);
    return Cur(tree, b, va).protect_range(size, p);
  }
  Result<void> split(VirtAddr va) {
    ConsistencyBatch b(tlb, memory);
    return Cur(tree, b, va).split();
  }
  Walk query(VirtAddr va) { return tree.query(va); }
  /// The entry that decides @p va (the leaf when mapped).
  u64& entry_of(VirtAddr va) {
    const Walk w = query(va);
    return memory.table_entries(w.last().table)[w.last().index];
  }
  std::string walk_text(VirtAddr va) {
    char buffer[2048];
    BufferSink sink(buffer, sizeof buffer);
    query(va).format(sink);
    return buffer;
  }
  usize count(const std::string& prefix) const {
    return usize(std::count_if(log.begin(), log.end(), [&](const std::string& e) { return e.rfind(prefix, 0) == 0; }));
  }
  /// True when every log entry that starts with @p prefix ("free", "release") comes after a
  /// barrier and an invalidation of the same flush, and no invalidation comes before the first
  /// barrier: what is handed back is handed back only once no translation of it can be cached.
  bool follows_flushes(const std::string& prefix) const {
    bool barrier = false, invalidated = false;
    for (const std::string& e : log) {
      if (e == "barrier") {
        barrier = true;
        invalidated = false;
      } else if (e.rfind("invalidate", 0) == 0) {
        if (!barrier) return false;
        invalidated = true;
      } else if (e.rfind(prefix, 0) == 0 && !(barrier && invalidated)) {
        return false;
      }
    }
    return true;
  }
};

using Formats = ::testing::Types<x86::PageTableFormat, aarch64::PageTableFormat>;
TYPED_TEST_SUITE(TreeTest, Formats);

// ---- The tree has one owner --------------------------------------------------------------

TYPED_TEST(TreeTest, ATreeCannotBeCopiedNorMadeFromARawRoot) {
  using Tree = PageTable<TypeParam>;
  static_assert(!std::is_copy_constructible_v<Tree> && !std::is_copy_assignable_v<Tree>);
  static_assert(!std::is_constructible_v<Tree, PhysAddr, TableMemory&>);
  static_assert(!std::is_constructible_v<Tree, PhysAddr, TableMemory&, typename Tree::Shape>);
  static_assert(!std::is_copy_constructible_v<Cursor<TypeParam>>);
  static_assert(!std::is_copy_constructible_v<ConsistencyBatch>);
  Tree moved = std::move(this->tree);  // moving hands the root over: still one owner
  EXPECT_FALSE(this->tree.valid());
  EXPECT_TRUE(moved.valid());
}

TYPED_TEST(TreeTest, DestroyingATreeFreesEveryTable) {
  const usize before = this->memory.live_tables();
  {
    auto other = PageTable<TypeParam>::create(this->memory).release_value();
    ConsistencyBatch b(this->tlb, this->memory);
    Cursor<TypeParam> c(other, b, VirtAddr(0x0000'3000'4000'0000 - 3 * MiB));
    ASSERT_TRUE(c.map_range(PhysAddr(0x4000'0000), 1536 * this->kPage, kKernelData).ok());
    EXPECT_GT(this->memory.live_tables(), before + 6);
  }
  EXPECT_EQ(this->memory.live_tables(), before);
}

// ---- Map, query, unmap -------------------------------------------------------------------

TYPED_TEST(TreeTest, MapThenQueryGivesAddressAndPermissions) {
  const VirtAddr va(0x0000'1234'5678'9000);
  ASSERT_TRUE(this->map(va, PhysAddr(0xabc000), kKernelData).ok());
  const Walk w = this->query(va.offset(0x123));
  ASSERT_TRUE(w.mapped());
  EXPECT_EQ(w.pa.value(), 0xabc123u);
  EXPECT_EQ(w.page_size, this->kPage);
  EXPECT_EQ(w.perms, kKernelData);
  EXPECT_EQ(w.depth, TypeParam::kLevels);
  EXPECT_EQ(this->memory.live_tables(), TypeParam::kLevels);  // root + one table per level below it
}

TYPED_TEST(TreeTest, EveryPermissionCombinationRoundTrips) {
  for (int bits = 0; bits < 32; ++bits) {
    const Perms p{.read = true,
                  .write = bool(bits & 1),
                  .execute = bool(bits & 2),
                  .user = bool(bits & 4),
                  .caching = (bits & 8) ? Caching::Uncached : Caching::WriteBack,
                  .global = bool(bits & 16)};
    const VirtAddr va(0x400000 + u64(bits) * this->kPage);
    ASSERT_TRUE(this->map(va, PhysAddr(0x800000 + u64(bits) * this->kPage), p).ok());
    EXPECT_EQ(this->query(va).perms, p) << "combination " << bits;
    ConsistencyBatch b(this->tlb, this->memory);
    EXPECT_EQ(Cursor<TypeParam>(this->tree, b, va).perms(), p) << "combination " << bits;
  }
}

TYPED_TEST(TreeTest, RejectsMisalignedNonCanonicalAndOverlappingRequests) {
  const u64 kPage = this->kPage;
  EXPECT_EQ(this->map(VirtAddr(0x1001000 + 8), PhysAddr(0x2000), kKernelData).error(), Error::InvalidArgument);
  EXPECT_EQ(this->map(VirtAddr(0x1001000), PhysAddr(0x2008), kKernelData).error(), Error::InvalidArgument);
  // Bit 48 set, bit 63 clear: outside the lower range of both ISAs.
  EXPECT_EQ(this->map(VirtAddr(0x0001'0000'0000'0000), PhysAddr(0x2000), kKernelData).error(), Error::InvalidArgument);
  EXPECT_EQ(this->map_range(VirtAddr(0x1000000), PhysAddr(0x2000), kPage + 1, kKernelData).error(),
            Error::InvalidArgument);
  const VirtAddr last_low_page(~TypeParam::kUpperHalfStart.value() & ~(kPage - 1));  // x86: 0x7fff'ffff'f000
  EXPECT_EQ(this->map_range(last_low_page, PhysAddr(0x2000), 2 * kPage, kKernelData).error(),
            Error::InvalidArgument);  // runs into the non-canonical hole
  ASSERT_TRUE(this->map(VirtAddr(0x1001000), PhysAddr(0x2000), kKernelData).ok());
  EXPECT_EQ(this->map(VirtAddr(0x1001000), PhysAddr(0x3000), kKernelText).error(), Error::AlreadyExists);
  {  // the refusal says which page: a caller mapping a range may not know
    const Result<void> again = this->map(VirtAddr(0x1001000), PhysAddr(0x3000), kKernelText);
    ASSERT_TRUE(again.is_error());
    EXPECT_TRUE(again.error().has_address);
    EXPECT_EQ(again.error().address, 0x1001000u);
  }
  EXPECT_EQ(this->query(VirtAddr(0x1001000)).pa.value(), 0x2000u);  // the first mapping stays
  EXPECT_EQ(this->map_range(VirtAddr(0x1000000), PhysAddr(0x5000000), 4 * kPage, kKernelData).error(),
            Error::AlreadyExists);
  EXPECT_FALSE(this->query(VirtAddr(0x1000000)).mapped());  // rolled back
  EXPECT_TRUE(this->query(VirtAddr(0x1001000)).mapped());
}

TYPED_TEST(TreeTest, UnmapReturnsTheFrameAndFreesEmptyTablesAllTheWayUp) {
  // 3 MiB below a 1 GiB boundary, 1536 pages: tables in two level-1 slots.
  const VirtAddr base(0x0000'3000'4000'0000 - 3 * MiB);
  const u64 size = 1536 * this->kPage;
  ASSERT_TRUE(this->map_range(base, PhysAddr(0x4000'0000), size, kKernelData).ok());
  EXPECT_GT(this->memory.live_tables(), 6u);
  const Result<PhysAddr> first = this->unmap(base);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first.value().value(), 0x4000'0000u);
  EXPECT_EQ(this->unmap(base).error(), Error::NotFound);
  EXPECT_EQ(this->unmap_range(base, size).error(), Error::NotFound);  // the first page is gone
  ASSERT_TRUE(this->unmap_range(base.offset(this->kPage), size - this->kPage).ok());
  EXPECT_EQ(this->memory.live_tables(), 1u);  // only the root is left
  const Walk w = this->query(base);
  EXPECT_EQ(w.stop, WalkStop::NotPresent);
  EXPECT_EQ(w.depth, 1u);
}

TYPED_TEST(TreeTest, UnmapRangeStopsAtTheFirstHoleEvenWhenTablesWereFreed) {
  ASSERT_TRUE(this->map(VirtAddr(0x200000), PhysAddr(0x1000), kKernelData).ok());
  // The unmap of the only page frees its tables; the page after it was never mapped.
  EXPECT_EQ(this->unmap_range(VirtAddr(0x200000), 2 * this->kPage).error(), Error::NotFound);
  EXPECT_FALSE(this->query(VirtAddr(0x200000)).mapped());
}

TYPED_TEST(TreeTest, UnmapKeepsTablesThatStillMapSomething) {
  ASSERT_TRUE(this->map(VirtAddr(0x200000), PhysAddr(0x1000), kKernelData).ok());
  ASSERT_TRUE(this->map(VirtAddr(0x201000), PhysAddr(0x2000), kKernelData).ok());
  ASSERT_TRUE(this->unmap(VirtAddr(0x200000)).ok());
  EXPECT_EQ(this->memory.live_tables(), TypeParam::kLevels);
  EXPECT_TRUE(this->query(VirtAddr(0x201000)).mapped());
}

TYPED_TEST(TreeTest, PinnedTopLevelTablesAreNeverFreed) {
  auto pinned = PageTable<TypeParam>::create(this->memory, {.pinned_first = 256}).release_value();
  ASSERT_TRUE(pinned.populate_top_level(256, TypeParam::kEntriesPerTable).ok());
  const VirtAddr va(0xffff'c000'0000'0000);
  const usize slot = TypeParam::index(va, 0);
  const u64 before = pinned.root_entries()[slot];
  ASSERT_TRUE(TypeParam::is_present(before, 0));
  const usize tables = this->memory.live_tables();
  {
    ConsistencyBatch b(this->tlb, this->memory);
    Cursor<TypeParam> c(pinned, b, va);
    ASSERT_TRUE(c.map(PhysAddr(0xfee00000), kKernelDevice).ok());
    ASSERT_TRUE(c.unmap().ok());
  }
  EXPECT_EQ(pinned.root_entries()[slot], before);
  EXPECT_EQ(this->memory.live_tables(), tables);  // the level-1 table stays, the ones below went
}

TYPED_TEST(TreeTest, MapRangeOutOfMemoryLeavesNothingBehind) {
  this->memory.fail_after(4);  // enough for the first tables, not for crossing into the next level-2 table
  const VirtAddr base(0x0000'0000'4000'0000 - 2 * this->kPage);
  const Result<void> r = this->map_range(base, PhysAddr(0x1000), 4 * this->kPage, kKernelData);
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), Error::NoMemory);
  EXPECT_FALSE(this->query(base).mapped());
  EXPECT_EQ(this->memory.live_tables(), 1u);
}

// ---- Protect -----------------------------------------------------------------------------

TYPED_TEST(TreeTest, ProtectChangesPermissionsAndInvalidatesEachPage) {
  const u64 kPage = this->kPage;
  ASSERT_TRUE(this->map_range(VirtAddr(0x600000), PhysAddr(0x9000), 3 * kPage, kKernelData).ok());
  this->tlb.pages.clear();
  ASSERT_TRUE(this->protect(VirtAddr(0x600000), 3 * kPage, kKernelReadOnly).ok());
  EXPECT_EQ(this->query(VirtAddr(0x601000)).perms, kKernelReadOnly);
  EXPECT_EQ(this->query(VirtAddr(0x601000)).pa.value(), 0xa000u);
  EXPECT_EQ(this->tlb.pages, (std::vector<u64>{0x600000, 0x601000, 0x602000}));
  EXPECT_EQ(this->protect(VirtAddr(0x600000), 4 * kPage, kKernelText).error(), Error::NotFound);
  EXPECT_EQ(this->query(VirtAddr(0x600000)).perms, kKernelReadOnly);  // nothing changed
}

TYPED_TEST(TreeTest, ProtectKeepsAccessedDirtyAndGlobal) {
  const VirtAddr va(0x700000);
  const Perms global_data{.write = true, .global = true};
  ASSERT_TRUE(this->map(va, PhysAddr(0x5000), global_data).ok());
  this->entry_of(va) |= FormatTestBits<TypeParam>::kAccessedDirty;    // as the CPU would after a write
  ASSERT_TRUE(this->protect(va, this->kPage, kKernelReadOnly).ok());  // kKernelReadOnly is not global
  const u64 e = this->entry_of(va);
  EXPECT_EQ(e & FormatTestBits<TypeParam>::kAccessedDirty, FormatTestBits<TypeParam>::kAccessedDirty);
  const Walk w = this->query(va);
  EXPECT_FALSE(w.perms.write);
  EXPECT_TRUE(w.perms.global) << "protect dropped the global bit";
  EXPECT_EQ(w.pa.value(), 0x5000u);
  EXPECT_EQ(this->log.back(), "invalidate 0x700000 global");
}

// ---- No access: held leaves (PROT_NONE) ------------------------------------------------------

TYPED_TEST(TreeTest, ProtectToNoAccessHoldsTheFrameInAnEntryTheMmuIgnores) {
  using F = TypeParam;
  const u64 kPage = this->kPage;
  const VirtAddr va(0x0000'0040'0000'3000);
  const Perms rw{.write = true, .user = true}, none{.read = false, .user = true};
  ASSERT_TRUE(this->map_range(va, PhysAddr(0x7000), 2 * kPage, rw).ok());
  this->entry_of(va) |= FormatTestBits<F>::kAccessedDirty;
  this->tlb.pages.clear();
  ASSERT_TRUE(this->protect(va, 2 * kPage, none).ok());
  EXPECT_EQ(this->tlb.pages, (std::vector<u64>{va.value(), va.value() + kPage})) << "valid -> held must be invalidated";
  const u64 e = this->entry_of(va);
  EXPECT_EQ(e & FormatTestBits<F>::kHardwareValid, 0u) << "a held entry must be invalid to the MMU: " << test::hex(e);
  EXPECT_TRUE(F::is_held(e, this->kLeaf));
  EXPECT_TRUE(F::is_present(e, this->kLeaf)) << "in use for the kernel";
  EXPECT_EQ(F::output_address(e, this->kLeaf).value(), 0x7000u) << "the frame is kept";
  EXPECT_EQ(e & FormatTestBits<F>::kAccessedDirty, FormatTestBits<F>::kAccessedDirty);
  const Walk w = this->query(va.offset(0x10));
  ASSERT_TRUE(w.mapped());
  EXPECT_EQ(w.pa.value(), 0x7010u);
  EXPECT_EQ(w.perms, (Perms{.read = false, .write = false, .execute = false, .user = true}));
  ConsistencyBatch b(this->tlb, this->memory);
  Cursor<F> c(this->tree, b, VirtAddr(0x0000'0040'0000'0000));
  ASSERT_TRUE(c.next_mapped(VirtAddr(0x0000'0040'0010'0000))) << "next_mapped finds a held page";
  EXPECT_EQ(c.va(), va);
  EXPECT_FALSE(c.perms().read);
  EXPECT_NE(this->walk_text(va).find(", --- user, held: invalid to the MMU"), std::string::npos) << this->walk_text(va);
  EXPECT_EQ(explain(w, {.user = true}).rfind("no-access page (held", 0), 0u);
  EXPECT_EQ(explain(w, {}).rfind("no-access page (held", 0), 0u) << "before 'kernel touched user memory'";
}

TYPED_TEST(TreeTest, ProtectBackFromNoAccessRestoresTheSameFrame) {
  using F = TypeParam;
  const VirtAddr va(0x500000);
  const Perms rw{.write = true, .user = true};
  ASSERT_TRUE(this->map(va, PhysAddr(0x9000), rw).ok());
  const u64 before = this->entry_of(va);
  ASSERT_TRUE(this->protect(va, this->kPage, Perms{.read = false, .write = true, .execute = true, .user = true}).ok());
  EXPECT_EQ(this->query(va).perms, (Perms{.read = false, .user = true})) << "no read: write and execute dropped";
  ASSERT_TRUE(this->protect(va, this->kPage, rw).ok());
  EXPECT_EQ(this->entry_of(va), before) << "the round trip gives back the very entry";
  EXPECT_EQ(this->query(va).perms, rw);
  ASSERT_TRUE(this->protect(va, this->kPage, Perms{.read = false, .user = true}).ok());
  ASSERT_TRUE(this->protect(va, this->kPage, Perms{.user = true}).ok());
  EXPECT_EQ(this->query(va).pa.value(), 0x9000u);
  EXPECT_NE(this->entry_of(va) & FormatTestBits<F>::kHardwareValid, 0u);
}

TYPED_TEST(TreeTest, HeldPagesKeepTheirTablesAndUnmapGivesTheirFrameBack) {
  const u64 kPage = this->kPage;
  const Perms none{.read = false, .user = true};
  ASSERT_TRUE(this->map(VirtAddr(0x800000), PhysAddr(0x3000), none).ok()) << "a page may be made held";
  ASSERT_TRUE(this->map(VirtAddr(0x801000), PhysAddr(0x4000), kKernelData).ok());
  const usize tables = this->memory.live_tables();
  EXPECT_EQ(this->unmap(VirtAddr(0x801000)).value().value(), 0x4000u);
  EXPECT_EQ(this->memory.live_tables(), tables) << "a table holding a held page is not empty";
  EXPECT_EQ(this->unmap(VirtAddr(0x800000)).value().value(), 0x3000u);
  EXPECT_EQ(this->memory.live_tables(), 1u) << "the held page was the last: every table goes";
  // Copy-on-write's break on a held page (a forked child's PROT_NONE page) stays held.
  ASSERT_TRUE(this->map(VirtAddr(0x800000), PhysAddr(0x3000), none).ok());
  {
    ConsistencyBatch b(this->tlb, this->memory);
    ASSERT_TRUE(Cursor<TypeParam>(this->tree, b, VirtAddr(0x800000)).remap(PhysAddr(0x6000), none).ok());
  }
  EXPECT_EQ(this->query(VirtAddr(0x800000)).pa.value(), 0x6000u);
  EXPECT_FALSE(this->query(VirtAddr(0x800000)).perms.read);
  EXPECT_TRUE(this->unmap_range(VirtAddr(0x800000), kPage).ok());
  EXPECT_EQ(this->memory.live_tables(), 1u);
}

TYPED_TEST(TreeTest, AHeldBlockSplitsIntoHeldPages) {
  using F = TypeParam;
  const VirtAddr va(0x4000'0000);
  const u64 block = F::entry_span(this->kBlock);
  ASSERT_TRUE(this->map_block(va, PhysAddr(0x8000'0000), kKernelData).ok());
  ASSERT_TRUE(this->protect(va, block, Perms{.read = false}).ok());
  EXPECT_EQ(this->entry_of(va) & FormatTestBits<F>::kHardwareValid, 0u);
  EXPECT_EQ(this->query(va).page_size, block);
  ASSERT_TRUE(this->split(va.offset(5 * this->kPage)).ok());
  const Walk w = this->query(va.offset(5 * this->kPage));
  ASSERT_TRUE(w.mapped());
  EXPECT_EQ(w.page_size, this->kPage);
  EXPECT_EQ(w.pa.value(), 0x8000'0000u + 5 * this->kPage);
  EXPECT_FALSE(w.perms.read);
  EXPECT_EQ(this->entry_of(va.offset(5 * this->kPage)) & FormatTestBits<F>::kHardwareValid, 0u);
}

// ---- Blocks (large pages) and split --------------------------------------------------------

TYPED_TEST(TreeTest, BlocksAreWalkedMappedAndUnmappedWhole) {
  const u64 kBlockSize = TypeParam::entry_span(this->kBlock);
  ASSERT_EQ(kBlockSize, 2 * MiB);
  ASSERT_TRUE(TypeParam::can_hold_block(this->kBlock));
  const VirtAddr base(0x4000'0000);
  EXPECT_EQ(this->map_block(base.offset(this->kPage), PhysAddr(0x1'0000'0000), kKernelData).error(),
            Error::InvalidArgument);  // misaligned
  ASSERT_TRUE(this->map_block(base, PhysAddr(0x1'0000'0000), kKernelData).ok());
  const Walk w = this->query(VirtAddr(0x4012'3456));
  ASSERT_TRUE(w.mapped());
  EXPECT_EQ(w.page_size, kBlockSize);
  EXPECT_EQ(w.pa.value(), 0x1'0012'3456u);
  EXPECT_EQ(w.depth, this->kBlock + 1);
  EXPECT_EQ(this->map(base.offset(this->kPage), PhysAddr(0x1000), kKernelData).error(), Error::AlreadyExists);
  EXPECT_EQ(this->unmap(base.offset(this->kPage)).error(), Error::Unsupported);  // split it first
  EXPECT_EQ(this->unmap_range(base, kBlockSize / 2).error(), Error::Unsupported);
  EXPECT_EQ(this->protect(base, kBlockSize / 2, kKernelReadOnly).error(), Error::Unsupported);
  ASSERT_TRUE(this->protect(base, kBlockSize, kKernelReadOnly).ok());  // the whole block
  EXPECT_EQ(this->query(base).perms, kKernelReadOnly);
  const int flushes = this->tlb.full_flushes;
  ASSERT_TRUE(this->unmap_range(base, kBlockSize).ok());
  EXPECT_EQ(this->tlb.full_flushes, flushes + 1);  // 512 pages: one full invalidation
  EXPECT_EQ(this->memory.live_tables(), 1u);
}

TYPED_TEST(TreeTest, SplitKeepsEveryTranslationAndAttribute) {
  const VirtAddr base(0x4000'0000);
  const PhysAddr pa(0x1'0000'0000);
  const Perms p{.write = true, .global = true};
  ASSERT_TRUE(this->map_block(base, pa, p).ok());
  this->entry_of(base) |= FormatTestBits<TypeParam>::kAccessedDirty;
  const int flushes = this->tlb.full_flushes;
  ASSERT_TRUE(this->split(base.offset(5 * this->kPage)).ok());
  EXPECT_EQ(this->tlb.full_flushes, flushes + 1);  // the whole block's translations went
  for (u64 i : {u64(0), u64(1), u64(5), u64(511)}) {
    const VirtAddr va = base.offset(i * this->kPage);
    const Walk w = this->query(va);
    ASSERT_TRUE(w.mapped()) << i;
    EXPECT_EQ(w.page_size, this->kPage);
    EXPECT_EQ(w.pa, pa.offset(i * this->kPage));
    EXPECT_EQ(w.perms, p);
    EXPECT_EQ(this->entry_of(va) & FormatTestBits<TypeParam>::kAccessedDirty,
              FormatTestBits<TypeParam>::kAccessedDirty);
  }
  EXPECT_EQ(this->split(base).error(), Error::InvalidArgument);  // no block left there
  ASSERT_TRUE(this->unmap(base.offset(5 * this->kPage)).ok());   // now a page can go
  ASSERT_TRUE(this->protect(base, this->kPage, kKernelReadOnly).ok());
  EXPECT_TRUE(this->query(base.offset(4 * this->kPage)).perms.write);
}

TYPED_TEST(TreeTest, SplitOutOfMemoryChangesNothing) {
  const VirtAddr base(0x4000'0000);
  ASSERT_TRUE(this->map_block(base, PhysAddr(0x1'0000'0000), kKernelData).ok());
  const u64 block = this->entry_of(base);
  this->memory.fail_after(0);
  EXPECT_EQ(this->split(base).error(), Error::NoMemory);
  EXPECT_EQ(this->entry_of(base), block);
}

// ---- Remap and break-before-make ----------------------------------------------------------

TYPED_TEST(TreeTest, RemapWritesTheNewEntryDirectlyWhenTheFormatAllowsIt) {
  const VirtAddr va(0x900000);
  ASSERT_TRUE(this->map(va, PhysAddr(0x1000), kKernelData).ok());
  u64* slot = &this->entry_of(va);
  std::vector<std::string> seen;
  this->tlb.hook = [&](const std::string& event) { seen.push_back(event + " @" + test::hex(*slot)); };
  {
    ConsistencyBatch b(this->tlb, this->memory);
    ASSERT_TRUE(Cursor<TypeParam>(this->tree, b, va).remap(PhysAddr(0x2000), kKernelReadOnly).ok());
  }
  const u64 fresh = TypeParam::make_page_entry(PhysAddr(0x2000), kKernelReadOnly);
  if constexpr (!TypeParam::kBreakBeforeMake)
    EXPECT_EQ(seen,
              (std::vector<std::string>{"barrier @" + test::hex(fresh), "invalidate 0x900000 @" + test::hex(fresh)}));
  EXPECT_EQ(this->query(va).pa.value(), 0x2000u);
}

TYPED_TEST(TreeTest, BreakBeforeMakeGoesThroughAnInvalidEntryTheTlbNoLongerHolds) {
  using B = BreakBeforeMake<TypeParam>;
  static_assert(ValidPageTableFormat<B> && B::kBreakBeforeMake);
  auto bbm = PageTable<B>::create(this->memory).release_value();
  const VirtAddr va(0x900000);
  u64* slot = nullptr;
  {
    ConsistencyBatch b(this->tlb, this->memory);
    Cursor<B> c(bbm, b, va);
    ASSERT_TRUE(c.map(PhysAddr(0x1000), kKernelData).ok());
  }
  const Walk w = bbm.query(va);
  slot = &this->memory.table_entries(w.last().table)[w.last().index];
  std::vector<std::string> seen;
  this->tlb.hook = [&](const std::string& event) { seen.push_back(event + " @" + test::hex(*slot)); };
  {
    ConsistencyBatch b(this->tlb, this->memory);
    ASSERT_TRUE(Cursor<B>(bbm, b, va).remap(PhysAddr(0x2000), kKernelReadOnly).ok());
  }
  const u64 fresh = B::make_page_entry(PhysAddr(0x2000), kKernelReadOnly);
  // write invalid, barrier, invalidate (the entry still invalid), write new, barrier at the end
  EXPECT_EQ(seen, (std::vector<std::string>{"barrier @0", "invalidate 0x900000 @0", "barrier @" + test::hex(fresh)}));
  EXPECT_EQ(*slot, fresh);
}

// ---- The cursor walks each table once -------------------------------------------------------

TYPED_TEST(TreeTest, RangeOperationsReadEachTableOnce) {
  const VirtAddr base(0x0000'3000'4000'0000 - 3 * MiB);
  const u64 size = 1536 * this->kPage;
  this->memory.lookups = 0;
  ASSERT_TRUE(this->map_range(base, PhysAddr(0x4000'0000), size, kKernelData).ok());
  const usize tables = this->memory.live_tables();  // root, 2 level-1, 2 level-2, 4 level-3 ... tables
  EXPECT_LE(this->memory.lookups, tables + 1) << "map_range looked tables up " << this->memory.lookups << " times";
  this->memory.lookups = 0;
  ASSERT_TRUE(this->protect(base, size, kKernelReadOnly).ok());  // checks, then changes: two passes
  EXPECT_LE(this->memory.lookups, 2 * tables + 2);
  this->memory.lookups = 0;
  ASSERT_TRUE(this->unmap_range(base, size).ok());
  EXPECT_LE(this->memory.lookups, tables + 1);
}

TYPED_TEST(TreeTest, NextMappedSkipsUnmappedRangesAWholeEntryAtATime) {
  const std::vector<u64> pages = {0x1000, 0x20'0000'3000, 0x20'0000'4000, 0x7f00'0000'0000};
  for (u64 va : pages) ASSERT_TRUE(this->map(VirtAddr(va), PhysAddr(va & 0xfff'ffff'f000), kKernelData).ok());
  ASSERT_TRUE(this->map_block(VirtAddr(0x4000'0000), PhysAddr(0x4000'0000), kKernelData).ok());
  std::vector<u64> seen;
  std::vector<u64> sizes;
  ConsistencyBatch b(this->tlb, this->memory);
  this->memory.lookups = 0;
  const VirtAddr end(0x0000'8000'0000'0000);
  for (Cursor<TypeParam> c(this->tree, b, VirtAddr(0)); c.next_mapped(end); c.next()) {
    seen.push_back(c.va().value());
    sizes.push_back(c.span());
  }
  EXPECT_EQ(seen, (std::vector<u64>{0x1000, 0x4000'0000, 0x20'0000'3000, 0x20'0000'4000, 0x7f00'0000'0000}));
  EXPECT_EQ(sizes, (std::vector<u64>{this->kPage, 2 * MiB, this->kPage, this->kPage, this->kPage}));
  EXPECT_LE(this->memory.lookups, this->memory.live_tables());
}

// ---- The table iterator ---------------------------------------------------------------------

TYPED_TEST(TreeTest, TableIteratorVisitsEveryTableChildrenBeforeParents) {
  const std::vector<u64> pages = {0x1000, 0x20'0000, 0x4000'0000, 0x20'0000'3000, 0x7f00'0000'0000};
  for (u64 va : pages) ASSERT_TRUE(this->map(VirtAddr(va), PhysAddr(0x1000), kKernelData).ok());
  std::map<u64, u64> parent;  // table -> the table above it, from the walks
  std::map<u64, usize> level;
  for (u64 va : pages) {
    const Walk w = this->query(VirtAddr(va));
    for (usize l = 1; l < w.depth; ++l) {
      parent[w.levels[l].table.value()] = w.levels[l - 1].table.value();
      level[w.levels[l].table.value()] = l;
    }
  }
  std::vector<u64> order;
  for (TableIterator<TypeParam> it(this->tree, 0, TypeParam::kEntriesPerTable); !it.done(); it.next()) {
    order.push_back(it.table().value());
    EXPECT_EQ(it.level(), level[it.table().value()]);
  }
  EXPECT_EQ(order.size(), this->memory.live_tables() - 1);  // every table but the root, once
  EXPECT_EQ(std::set<u64>(order.begin(), order.end()).size(), order.size());
  for (usize i = 0; i < order.size(); ++i) {
    const u64 up = parent[order[i]];
    if (up == this->tree.root().value()) continue;
    const auto at = std::find(order.begin(), order.end(), up);
    EXPECT_GT(at - order.begin(), std::ptrdiff_t(i)) << "a parent came before its child";
  }
  usize low = 0;  // a range of top-level entries: only what lies under them
  for (TableIterator<TypeParam> it(this->tree, 0, 1); !it.done(); it.next()) ++low;
  // Everything but the tables of 0x7f00'0000'0000, the only page outside top-level entry 0.
  EXPECT_EQ(low, this->memory.live_tables() - 1 - (TypeParam::kLevels - 1));
}

// ---- The consistency batch: barrier, then invalidations, then frees ------------------------

TYPED_TEST(TreeTest, TableFramesAreFreedOnlyAfterTheFlush) {
  const VirtAddr va(0x0000'1234'5678'9000);
  ASSERT_TRUE(this->map(va, PhysAddr(0xabc000), kKernelData).ok());
  const Walk before = this->query(va);
  this->log.clear();
  {
    ConsistencyBatch b(this->tlb, this->memory);
    Cursor<TypeParam> c(this->tree, b, va);
    ASSERT_TRUE(c.unmap().ok());
    // Unlinked, but not freed: a TLB may still hold a walk through them.
    EXPECT_EQ(this->count("free"), 0u);
    for (usize l = 1; l < TypeParam::kLevels; ++l) EXPECT_TRUE(this->memory.is_live(before.levels[l].table));
    EXPECT_EQ(this->query(va).depth, 1u);  // already gone from the tree
  }
  ASSERT_EQ(this->count("free"), TypeParam::kLevels - 1) << ::testing::PrintToString(this->log);
  EXPECT_EQ(this->log.front(), "barrier");
  const auto first_free = std::find_if(this->log.begin(), this->log.end(),
                                       [](const std::string& e) { return e.rfind("free", 0) == 0; });
  const auto last_invalidate = std::find_if(this->log.rbegin(), this->log.rend(),
                                            [](const std::string& e) { return e.rfind("invalidate", 0) == 0; });
  ASSERT_NE(last_invalidate, this->log.rend());
  EXPECT_LT(last_invalidate.base() - 1 - this->log.begin(), first_free - this->log.begin())
      << ::testing::PrintToString(this->log);
  EXPECT_TRUE(std::all_of(first_free, this->log.end(), [](const std::string& e) { return e.rfind("free", 0) == 0; }));
}

TYPED_TEST(TreeTest, AFullBatchFlushesEarlyAndStillInOrder) {
  // One page in each of 40 level-3 tables: unmapping them all frees 40 tables in one batch.
  const u64 step = TypeParam::entry_span(this->kBlock);
  for (u64 i = 0; i < 40; ++i)
    ASSERT_TRUE(this->map(VirtAddr(0x4000'0000 + i * step), PhysAddr(0x1000), kKernelData).ok());
  this->log.clear();
  {
    ConsistencyBatch b(this->tlb, this->memory);
    Cursor<TypeParam> c(this->tree, b, VirtAddr(0x4000'0000));
    for (u64 i = 0; i < 40; ++i) {
      c.find(VirtAddr(0x4000'0000 + i * step));
      ASSERT_TRUE(c.unmap().ok());
    }
  }
  EXPECT_EQ(this->count("free"), 40u + 2);  // and the level-2 and level-1 tables above them
  // Every free follows an invalidation of its own flush, which follows that flush's barrier.
  EXPECT_TRUE(this->follows_flushes("free")) << ::testing::PrintToString(this->log);
  EXPECT_GE(this->count("barrier"), 2u);  // it flushed early at least once
}

TYPED_TEST(TreeTest, NewMappingsNeedABarrierButNoInvalidation) {
  this->log.clear();
  ASSERT_TRUE(this->map_range(VirtAddr(0x800000), PhysAddr(0x1000), 100 * this->kPage, kKernelData).ok());
  EXPECT_EQ(this->log, std::vector<std::string>{"barrier"});
}

TYPED_TEST(TreeTest, UnmapsAreBatchedIntoOneFlush) {
  ASSERT_TRUE(this->map_range(VirtAddr(0x800000), PhysAddr(0x1000), 100 * this->kPage, kKernelData).ok());
  EXPECT_TRUE(this->tlb.pages.empty());  // new mappings need no invalidation
  ASSERT_TRUE(this->unmap(VirtAddr(0x800000)).ok());
  EXPECT_EQ(this->tlb.pages, std::vector<u64>{0x800000});
  ASSERT_TRUE(this->unmap_range(VirtAddr(0x801000), 99 * this->kPage).ok());
  EXPECT_EQ(this->tlb.full_flushes, 1);
  EXPECT_EQ(this->tlb.pages.size(), 1u);
}

// ---- A read-only cursor: queries with no batch --------------------------------------------

// clang-format off
template <class C> concept CanMap = requires(C c) { c.map(PhysAddr(0), Perms{}); };
template <class C> concept CanUnmap = requires(C c) { c.unmap(); };
template <class C> concept CanProtect = requires(C c) { c.protect(Perms{}); };
template <class C> concept CanReadAnEntry = requires(C c) { u64(*c.page_entry()); };
template <class C> concept CanWriteAnEntry = requires(C c) { *c.page_entry() = u64(0); };
// clang-format on

TYPED_TEST(TreeTest, AReadCursorCannotChangeTheTreeAndNeedsNoBatch) {
  using Read = ReadCursor<TypeParam>;
  static_assert(!CanMap<Read> && !CanUnmap<Read> && !CanProtect<Read> && !CanWriteAnEntry<Read>);
  static_assert(CanReadAnEntry<Read>);  // fork's eager copy reads a leaf table at a time through it
  static_assert(CanMap<Cursor<TypeParam>> && CanUnmap<Cursor<TypeParam>> && CanProtect<Cursor<TypeParam>> &&
                CanWriteAnEntry<Cursor<TypeParam>>);
  static_assert(std::is_constructible_v<Read, const PageTable<TypeParam>&, VirtAddr>);
  static_assert(!std::is_constructible_v<Read, const PageTable<TypeParam>&, ConsistencyBatch&, VirtAddr>);
}

TYPED_TEST(TreeTest, AReadCursorWalksAsTheCursorDoesAndTellsTheTlbNothing) {
  const u64 step = TypeParam::entry_span(this->kBlock);
  ASSERT_TRUE(this->map_range(VirtAddr(0x4000'0000), PhysAddr(0x10'0000), 3 * this->kPage, kKernelData).ok());
  ASSERT_TRUE(this->map(VirtAddr(0x4000'0000 + 5 * step), PhysAddr(0x20'0000), Perms{.read = true}).ok());
  this->log.clear();
  const PageTable<TypeParam>& tree = this->tree;
  std::vector<std::string> seen;
  for (ReadCursor<TypeParam> c(tree, VirtAddr(0x4000'0000)); c.next_mapped(VirtAddr(0x8000'0000)); c.next())
    seen.push_back(test::hex(c.va().value()) + " " + test::hex(c.pa().value()) + (c.perms().write ? " w" : " -"));
  const std::vector<std::string> expected = {"0x40000000 0x100000 w", "0x40001000 0x101000 w", "0x40002000 0x102000 w",
                                             test::hex(0x4000'0000 + 5 * step) + " 0x200000 -"};
  EXPECT_EQ(seen, expected);
  EXPECT_TRUE(this->log.empty()) << ::testing::PrintToString(this->log);
  const ReadCursor<TypeParam> hole(tree, VirtAddr(0x4000'3000));
  EXPECT_FALSE(hole.mapped());
  EXPECT_EQ(hole.stop(), WalkStop::NotPresent);
}

// ---- User frames: released only after the flush ---------------------------------------------

/// Where the released frames are recorded (ConsistencyBatch's release hook is a plain function).
test::EventLog* g_release_log = nullptr;
void record_release(PhysAddr frame) {
  if (g_release_log != nullptr) g_release_log->push_back("release " + test::hex(frame.value()));
}

template <class F> struct FrameReleaseTest : TreeTest<F> {
  void SetUp() override {
    g_release_log = &this->log;
    ConsistencyBatch::set_frame_release(record_release);
  }
  void TearDown() override {
    ConsistencyBatch::set_frame_release(nullptr);
    g_release_log = nullptr;
  }
  /// Unmaps @p pages pages from @p va through one batch, each frame handed to it as a teardown does.
  void tear_down(VirtAddr va, u64 pages) {
    ConsistencyBatch b(this->tlb, this->memory, true);
    for (Cursor<F> c(this->tree, b, va); c.next_mapped(va.offset(pages * this->kPage));) {
      b.release_frame(c.unmap().value());
      EXPECT_EQ(this->count("release"), 0u) << "a frame released while its translation may be cached";
      c.find(c.va().offset(this->kPage));
    }
  }
};
TYPED_TEST_SUITE(FrameReleaseTest, Formats);

TYPED_TEST(FrameReleaseTest, FramesAreReleasedOnlyAfterTheBatchFlushesOnceForTheRange) {
  ASSERT_TRUE(this->map_range(VirtAddr(0x40'0000), PhysAddr(0x10'0000), 20 * this->kPage, kKernelData).ok());
  this->log.clear();
  this->tear_down(VirtAddr(0x40'0000), 20);
  EXPECT_EQ(this->count("release"), 20u);
  EXPECT_EQ(this->count("barrier"), 1u) << "one flush for the whole range: " << ::testing::PrintToString(this->log);
  EXPECT_EQ(this->count("invalidate"), 20u);  // each page once (the freed tables' walks: the last page's)
  EXPECT_TRUE(this->follows_flushes("release")) << ::testing::PrintToString(this->log);
  EXPECT_EQ(this->log.back(), "release " + test::hex(0x10'0000 + 19 * this->kPage));
}

TYPED_TEST(FrameReleaseTest, AFullFrameListFlushesBeforeReleasingAndStillInOrder) {
  const u64 pages = ConsistencyBatch::kMaxFrames + 10;
  ASSERT_TRUE(this->map_range(VirtAddr(0x40'0000), PhysAddr(0x10'0000), pages * this->kPage, kKernelData).ok());
  this->log.clear();
  {
    ConsistencyBatch b(this->tlb, this->memory, true);
    Cursor<TypeParam> c(this->tree, b, VirtAddr(0x40'0000));
    for (u64 i = 0; i < pages; ++i) {
      c.find(VirtAddr(0x40'0000 + i * this->kPage));
      b.release_frame(c.unmap().value());
    }
    EXPECT_EQ(this->count("release"), ConsistencyBatch::kMaxFrames);  // the full list, after a flush
  }
  EXPECT_EQ(this->count("release"), pages);
  EXPECT_EQ(this->count("barrier"), 2u) << ::testing::PrintToString(this->log);
  EXPECT_TRUE(this->follows_flushes("release")) << ::testing::PrintToString(this->log);
  // The last frames go after the last flush, not before it.
  EXPECT_EQ(this->log.back(), "release " + test::hex(0x10'0000 + (pages - 1) * this->kPage));
}

TYPED_TEST(TreeTest, PastThePageLimitARangeIsFlushedWholeOnce) {
  const u64 limit = ConsistencyBatch::kMaxPages;
  ASSERT_TRUE(this->map_range(VirtAddr(0x800000), PhysAddr(0x1000), (limit + 2) * this->kPage, kKernelData).ok());
  ASSERT_TRUE(this->unmap_range(VirtAddr(0x800000), limit * this->kPage).ok());
  EXPECT_EQ(this->tlb.pages.size(), limit);  // at the limit: each page
  EXPECT_EQ(this->tlb.full_flushes, 0);
  ASSERT_TRUE(this->map_range(VirtAddr(0x800000), PhysAddr(0x1000), limit * this->kPage, kKernelData).ok());
  this->log.clear();
  ASSERT_TRUE(this->unmap_range(VirtAddr(0x800000), (limit + 1) * this->kPage).ok());
  EXPECT_EQ(this->log, (std::vector<std::string>{"barrier", "invalidate all"}));  // past it: one whole flush
}

// ---- Walks and fault explanations ------------------------------------------------------------

TYPED_TEST(TreeTest, WalkStopsAreNamedByLevel) {
  using F = TypeParam;
  const auto stop = [](usize level, VirtAddr va) {
    return std::string("stopped: ") + F::level_name(level) + " entry " + std::to_string(F::index(va, level)) +
           " not present";
  };
  const VirtAddr far(0x0000'2000'0000'0000);
  EXPECT_NE(this->walk_text(far).find(stop(0, far)), std::string::npos);
  ASSERT_TRUE(this->map(VirtAddr(0x1000), PhysAddr(0x1000), kKernelData).ok());
  EXPECT_NE(this->walk_text(VirtAddr(0)).find(stop(F::kLevels - 1, VirtAddr(0))), std::string::npos);
  EXPECT_NE(this->walk_text(VirtAddr(0x4000'0000)).find(stop(1, VirtAddr(0x4000'0000))), std::string::npos);
  EXPECT_EQ(this->query(VirtAddr(0x0001'0000'0000'0000)).stop, WalkStop::NonCanonical);
  EXPECT_NE(this->walk_text(VirtAddr(0x1000)).find("-> page 0x0000000000001000 (4 KiB), rw- kernel"),
            std::string::npos);
}

TYPED_TEST(TreeTest, FaultsAreExplained) {
  ASSERT_TRUE(this->map(VirtAddr(0x1000), PhysAddr(0x1000), kKernelText).ok());
  ASSERT_TRUE(this->map(VirtAddr(0x2000), PhysAddr(0x2000), kKernelData).ok());
  EXPECT_EQ(explain(this->query(VirtAddr(0x1000)), {.write = true}), "write to read-only page");
  EXPECT_EQ(explain(this->query(VirtAddr(0x2000)), {.execute = true}), "execute of NX page");
  EXPECT_EQ(explain(this->query(VirtAddr(0x2000)), {.user = true}), "user access to supervisor page");
  EXPECT_EQ(explain(this->query(VirtAddr(0x3000)), {}),
            std::string(TypeParam::level_name(TypeParam::kLevels - 1)) + " entry 3 not present");
  // The kernel reaching a user page: SMAP/PAN, SMEP/PXN, before any other reason.
  ASSERT_TRUE(this->map(VirtAddr(0x4000), PhysAddr(0x4000), Perms{.write = false, .execute = true, .user = true}).ok());
  EXPECT_EQ(explain(this->query(VirtAddr(0x4000)), {.write = true}).rfind("kernel touched user memory", 0), 0u);
  EXPECT_EQ(explain(this->query(VirtAddr(0x4000)), {}).rfind("kernel touched user memory", 0), 0u);
  EXPECT_EQ(explain(this->query(VirtAddr(0x4000)), {.execute = true}).rfind("kernel executed user memory", 0), 0u);
  EXPECT_EQ(explain(this->query(VirtAddr(0x4000)), {.write = true, .user = true}), "write to read-only page");
}

// ---- x86_64 only: bits the generic tests do not know ------------------------------------------

using X86 = x86::PageTableFormat;

struct X86TreeTest : TreeTest<X86> {};

TEST_F(X86TreeTest, TableEntriesRestrictTheWholeSubtree) {
  ASSERT_TRUE(map(VirtAddr(0x300000), PhysAddr(0x1000), Perms{.write = true, .execute = true, .user = true}).ok());
  const Walk before = query(VirtAddr(0x300000));
  u64* pdpt = memory.table_entries(before.levels[1].table);
  pdpt[0] &= ~X86::kWritable;
  pdpt[0] |= X86::kNoExecute;
  const Walk after = query(VirtAddr(0x300000));
  EXPECT_FALSE(after.perms.write);
  EXPECT_FALSE(after.perms.execute);
  EXPECT_TRUE(after.perms.user);
}

TEST_F(X86TreeTest, ReservedBitsStopTheWalk) {
  ASSERT_TRUE(map(VirtAddr(0x1000), PhysAddr(0x1000), kKernelData).ok());
  tree.root_entries()[0] |= X86::kHuge;  // PS is reserved in a PML4 entry
  EXPECT_EQ(query(VirtAddr(0x1000)).stop, WalkStop::ReservedBits);
  EXPECT_EQ(map(VirtAddr(0x2000), PhysAddr(0x2000), kKernelData).error(), Error::InvalidArgument);
  tree.root_entries()[0] &= ~X86::kHuge;
}

TEST_F(X86TreeTest, ABootStyleLargePageWrittenByHandIsWalked) {
  // The boot stub writes 2 MiB pages with P|RW|PS; the cursor and the walk read them.
  ASSERT_TRUE(map(VirtAddr(0x4020'0000), PhysAddr(0x1000), kKernelData).ok());
  u64* pd = memory.table_entries(query(VirtAddr(0x4020'0000)).levels[2].table);
  pd[0] = 0x1'0000'0000ull | X86::kPresent | X86::kWritable | X86::kHuge;
  ConsistencyBatch b(tlb, memory);
  Cursor<X86> c(tree, b, VirtAddr(0x4012'3456));
  EXPECT_TRUE(c.mapped());
  EXPECT_EQ(c.level(), 2u);
  EXPECT_EQ(c.pa().value(), 0x1'0012'3456u);
  EXPECT_EQ(c.perms(), (Perms{.write = true, .execute = true}));
  pd[0] = 0;
}

TEST_F(X86TreeTest, SplitOfAOneGibBlockMakesTwoMibBlocks) {
  {
    ConsistencyBatch b(tlb, memory);
    Cursor<X86> c(tree, b, VirtAddr(0x4000'0000));
    ASSERT_TRUE(c.map_block(PhysAddr(0x8000'0000), X86::kPdpt, kKernelData).ok());
    ASSERT_TRUE(c.split().ok());
    EXPECT_EQ(c.level(), X86::kPd);
    EXPECT_TRUE(c.mapped());
  }
  const Walk w = query(VirtAddr(0x4030'1234));
  ASSERT_TRUE(w.mapped());
  EXPECT_EQ(w.page_size, 2 * MiB);
  EXPECT_EQ(w.pa.value(), 0x8030'1234u);
}

TEST_F(X86TreeTest, AHeldLeafIsPClearWithTheSoftwareBitAndEveryOtherBitKept) {
  const Perms none{.read = false, .user = true};
  const u64 e = X86::make_page_entry(PhysAddr(0x12'3456'7000), none);
  EXPECT_EQ(e, 0x12'3456'7000ull | X86::kHeld | X86::kUser | X86::kNoExecute) << test::hex(e);
  EXPECT_EQ(X86::kHeld, 1ull << 9) << "an AVL bit: ignored by the CPU in every entry";
  EXPECT_TRUE(X86::is_held(e, X86::kPt));
  EXPECT_FALSE(X86::is_held(e | X86::kPresent, X86::kPt));
  EXPECT_FALSE(X86::is_held(X86::kHeld, X86::kPml4)) << "only leaves are held";
  EXPECT_FALSE(X86::is_held(X86::kHeld, X86::kPd)) << "a PD entry without PS points to a table";
  EXPECT_TRUE(X86::is_held(X86::kHeld | X86::kHuge, X86::kPd));
  // Through protect: A, D, G and the caching bits stay; P and HELD swap.
  const u64 live =
      X86::make_page_entry(PhysAddr(0x5000),
                           Perms{.write = true, .user = true, .caching = Caching::Uncached, .global = true}) |
      X86::kAccessed | X86::kDirty;
  const u64 held = X86::with_perms(live, X86::kPt, Perms{.read = false, .user = true, .caching = Caching::Uncached});
  EXPECT_EQ(held, (live & ~(X86::kPresent | X86::kWritable)) | X86::kHeld | X86::kNoExecute) << test::hex(held);
  EXPECT_EQ(X86::with_perms(held, X86::kPt, Perms{.write = true, .user = true, .caching = Caching::Uncached}), live);
  char buffer[64];
  BufferSink sink(buffer, sizeof buffer);
  X86::describe_entry(sink, held, X86::kPt);
  EXPECT_STREQ(buffer, "HELD US PWT PCD A D G NX");
}

// Issue 11: an entry whose address lies above the CPU's physical address width faults with
// RSVD however much RAM there is; the usual cause is a virtual address passed as a physical
// one. The format refuses it where the entry is made, naming it.
TEST(X86PhysicalWidth, EntriesRefuseAddressesAboveTheCpusWidth) {
  X86::set_phys_bits(40);
  EXPECT_EQ(X86::make_page_entry(PhysAddr((u64{1} << 40) - X86::kPageSize), kKernelData) & X86::kAddressMask,
            (u64{1} << 40) - X86::kPageSize);
  try {
    (void)X86::make_table_entry(PhysAddr(0xffff'8000'0025'9000), 2, false);
    ADD_FAILURE() << "make_table_entry took a virtual address";
  } catch (const host::HostPanic& e) {
    EXPECT_STREQ(e.what(), "PANIC: make_table_entry: 0xffff800000259000 is not a physical address of this CPU (its "
                           "addresses are below 2^40); it looks like a kernel virtual address: an entry must hold the "
                           "physical address (virt_to_phys)\n");
  }
  EXPECT_THROW((void)X86::make_page_entry(PhysAddr(u64{1} << 40), kKernelData), host::HostPanic);
  EXPECT_THROW((void)X86::make_block_entry(PhysAddr(u64{1} << 41), X86::kPd, kKernelData), host::HostPanic);
  X86::set_phys_bits(52);
  EXPECT_TRUE(X86::fits_phys(PhysAddr(u64{1} << 41)));
}

}  // namespace
}  // namespace pagoda
