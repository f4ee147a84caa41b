// LAB 6 BEGIN copy_mappings() is the reference's own walk (mm/space/fork_copy.hpp): no branch of lab 6 or earlier holds it, nor this test
// copy_mappings() (mm/space/fork_copy.hpp), fork's walk a leaf table at a time, over simulated
// physical memory, on every ISA's format: what it writes must be exactly what the page-by-page
// cursor operations would (protect() for the parent's narrowed entries, map() for the child's
// copies), and the parent's TLB must be told of every entry it narrowed.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <vector>

#include "arch/aarch64/page_table_format.hpp"
#include "arch/x86_64/page_table_format.hpp"
#include "host_support.hpp"
#include "mm/space/fork_copy.hpp"
#include "page_table_fakes.hpp"

namespace pagoda {
namespace {

/// Bits the hardware sets in a leaf that a copy-on-write narrowing must keep.
template <class F> struct HardwareBits;
template <> struct HardwareBits<x86::PageTableFormat> {
  static constexpr u64 kBits = x86::PageTableFormat::kAccessed | x86::PageTableFormat::kDirty;
};
template <> struct HardwareBits<aarch64::PageTableFormat> {
  static constexpr u64 kBits = aarch64::PageTableFormat::kDirtyBitModifier;
};

constexpr Perms kUserData{.read = true, .write = true, .execute = false, .user = true};
constexpr Perms kUserText{.read = true, .write = false, .execute = true, .user = true};
constexpr Perms kUserReadOnly{.read = true, .write = false, .execute = false, .user = true};

template <class F> struct ForkCopyTest : ::testing::Test {
  using Tree = PageTable<F>;
  using Cur = Cursor<F>;
  static constexpr u64 kPage = F::kPageSize;
  static constexpr usize kLeaf = F::kLevels - 1;
  static constexpr u64 kTableSpan = F::entry_span(kLeaf - 1);

  test::FakeTableMemory<F::kEntriesPerTable> memory;
  test::RecordingTlb parent_tlb;
  test::RecordingTlb child_tlb;
  Tree parent = Tree::create(memory).release_value();
  Tree child = Tree::create(memory).release_value();

  /// va -> the parent's entry before the copy (the expected results are computed from it).
  std::map<u64, u64> before;

  void map(Tree& tree, VirtAddr va, PhysAddr pa, Perms perms, u64 extra_bits = 0) {
    test::RecordingTlb tlb;
    ConsistencyBatch b(tlb, memory);
    Cur c(tree, b, va);
    ASSERT_TRUE(c.map(pa, perms).ok());
    *c.page_entry() |= extra_bits;
  }
  u64 entry(Tree& tree, VirtAddr va) {
    const Walk w = tree.query(va);
    if (!w.mapped()) return 0;
    return memory.table_entries(w.last().table)[w.last().index];
  }

  /// The parent of every test: a run across a leaf table's end (data, some with the hardware's
  /// accessed/dirty bits, others without: two attribute sets), text and read-only pages between
  /// them, holes, and pages outside the copied range on both sides.
  void build_parent() {
    const u64 base = 3 * kTableSpan;  // a leaf table's start
    u64 frame = 0x40'0000;
    const auto add = [&](u64 va, Perms perms, u64 extra = 0) {
      map(parent, VirtAddr(va), PhysAddr(frame), perms, extra);
      before[va] = entry(parent, VirtAddr(va));
      frame += kPage;
    };
    add(base - kPage, kUserData);  // outside: before the range
    for (u64 i = 0; i < 3; ++i) add(base + i * kPage, kUserText);
    add(base + 5 * kPage, kUserReadOnly);
    for (u64 i = 8; i < 20; ++i) add(base + i * kPage, kUserData, i % 3 == 0 ? HardwareBits<F>::kBits : 0);
    for (u64 i = 0; i < 6; ++i) add(base + kTableSpan - 3 * kPage + i * kPage, kUserData);  // across the end
    add(base + 2 * kTableSpan + 7 * kPage, kUserData);  // a whole empty table between
    add(base + 2 * kTableSpan + 9 * kPage, kUserData);  // outside: after the range
  }
  VirtAddr range_start() const { return VirtAddr(3 * kTableSpan); }
  VirtAddr range_end() const { return VirtAddr(5 * kTableSpan + 8 * kPage); }
  bool in_range(u64 va) const { return va >= range_start().value() && va < range_end().value(); }

  /// The walk with the parent under a Cursor (copy-on-write: it may narrow the parent).
  template <class Visit> Result<void> copy(Visit visit) {
    ConsistencyBatch parent_batch(parent_tlb, memory);
    ConsistencyBatch child_batch(child_tlb, memory);
    Cur from(parent, parent_batch, VirtAddr(0));
    Cur to(child, child_batch, VirtAddr(0));
    return copy_mappings(from, to, range_start(), range_end(), visit);
  }
  /// The walk with the parent under a ReadCursor (the eager copy: no batch for the parent).
  template <class Visit> Result<void> copy_reading_parent(Visit visit) {
    ConsistencyBatch child_batch(child_tlb, memory);
    ReadCursor<F> from(parent, VirtAddr(0));
    Cur to(child, child_batch, VirtAddr(0));
    return copy_mappings(from, to, range_start(), range_end(), visit);
  }

  /// Whether the parent's TLB was told of @p va (one invalidation of it, or a full flush).
  bool invalidated(u64 va) const {
    if (parent_tlb.full_flushes > 0) return true;
    for (u64 p : parent_tlb.pages)
      if (p == va) return true;
    return false;
  }
};

using Formats = ::testing::Types<x86::PageTableFormat, aarch64::PageTableFormat>;
TYPED_TEST_SUITE(ForkCopyTest, Formats);

TYPED_TEST(ForkCopyTest, ShareMapsTheSameFramesReadOnlyInBothAsProtectWould) {
  using F = TypeParam;
  this->build_parent();
  std::vector<u64> visited;
  ASSERT_TRUE(this->copy([&](auto& page) -> Result<void> {
                    visited.push_back(page.va().value());
                    EXPECT_EQ(page.frame(), F::output_address(this->before[page.va().value()], this->kLeaf));
                    EXPECT_EQ(page.perms(), F::entry_perms(this->before[page.va().value()], this->kLeaf));
                    page.share();
                    return {};
                  })
                  .ok());
  std::vector<u64> expected_visits;
  for (const auto& [va, old] : this->before) {
    const u64 now = this->entry(this->parent, VirtAddr(va));
    const u64 in_child = this->entry(this->child, VirtAddr(va));
    if (!this->in_range(va)) {
      EXPECT_EQ(now, old) << "a page outside the range changed in the parent: " << test::hex(va);
      EXPECT_EQ(in_child, 0u) << "a page outside the range was copied: " << test::hex(va);
      continue;
    }
    expected_visits.push_back(va);
    Perms narrower = F::entry_perms(old, this->kLeaf);
    narrower.write = false;
    const u64 want = F::with_perms(old, this->kLeaf, narrower);  // what protect() writes
    EXPECT_EQ(now, want) << "parent entry at " << test::hex(va);
    EXPECT_EQ(in_child, want) << "child entry at " << test::hex(va);
    EXPECT_EQ(now & HardwareBits<F>::kBits, old & HardwareBits<F>::kBits) << "hardware bits lost at " << test::hex(va);
    if (F::entry_perms(old, this->kLeaf).write)
      EXPECT_TRUE(this->invalidated(va)) << "not invalidated: " << test::hex(va);
  }
  EXPECT_EQ(visited, expected_visits) << "every mapped page of the range once, in order";
  EXPECT_GT(this->child_tlb.barriers, 0) << "the child's table writes were never made visible";
}

// Through a read cursor the walk cannot narrow the parent: its pages have no share().
// clang-format off
template <class Page>
concept CanShare = requires(Page& page) { page.share(); };
// clang-format on
static_assert(CanShare<ForkPage<x86::PageTableFormat, u64*>>);
static_assert(!CanShare<ForkPage<x86::PageTableFormat, const u64*>>);
static_assert(!CanShare<ForkPage<aarch64::PageTableFormat, const u64*>>);

TYPED_TEST(ForkCopyTest, MapCopyGivesTheChildItsOwnFramesAndLeavesTheParentAlone) {
  using F = TypeParam;
  this->build_parent();
  u64 next = 0x900'0000;
  std::map<u64, u64> copies;
  std::vector<u64> visited;
  ASSERT_TRUE(this->copy_reading_parent([&](auto& page) -> Result<void> {
                    static_assert(!CanShare<decltype(page)>, "a read-only walk of the parent offers no share()");
                    visited.push_back(page.va().value());
                    copies[page.va().value()] = next;
                    page.map_copy(PhysAddr(next));
                    next += this->kPage;
                    return {};
                  })
                  .ok());
  std::vector<u64> expected_visits;
  for (const auto& [va, old] : this->before) {
    EXPECT_EQ(this->entry(this->parent, VirtAddr(va)), old) << "eager fork changed the parent at " << test::hex(va);
    if (!this->in_range(va)) continue;
    expected_visits.push_back(va);
    const Walk w = this->child.query(VirtAddr(va));
    ASSERT_TRUE(w.mapped()) << test::hex(va);
    EXPECT_EQ(w.pa.value(), copies[va]);
    EXPECT_EQ(w.perms, F::entry_perms(old, this->kLeaf)) << "child permissions at " << test::hex(va);
  }
  EXPECT_EQ(visited, expected_visits) << "every mapped page of the range once, in order";
  EXPECT_TRUE(this->parent_tlb.pages.empty() && this->parent_tlb.full_flushes == 0) << "nothing to invalidate";
  EXPECT_EQ(this->parent_tlb.barriers, 0) << "a read-only walk has nothing to make visible";
  EXPECT_GT(this->child_tlb.barriers, 0) << "the child's table writes were never made visible";
}

// A failing visit stops the walk: the pages before it are whole mappings in the child, the
// parent entries narrowed so far are invalidated, nothing after it is touched.
TYPED_TEST(ForkCopyTest, AFailedVisitStopsTheWalkWithWholeMappingsAndInvalidations) {
  this->build_parent();
  int visits = 0;
  u64 failed_at = 0;
  const Result<void> r = this->copy([&](auto& page) -> Result<void> {
    if (++visits == 10) {
      failed_at = page.va().value();
      return Error::NoMemory;
    }
    page.share();
    return {};
  });
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), Error::NoMemory);
  for (const auto& [va, old] : this->before) {
    if (!this->in_range(va)) continue;
    const u64 in_child = this->entry(this->child, VirtAddr(va));
    if (va < failed_at) {
      EXPECT_NE(in_child, 0u) << test::hex(va);
      if (TypeParam::entry_perms(old, this->kLeaf).write) EXPECT_TRUE(this->invalidated(va)) << test::hex(va);
    } else {
      EXPECT_EQ(in_child, 0u) << "mapped after the failure: " << test::hex(va);
      EXPECT_EQ(this->entry(this->parent, VirtAddr(va)), old) << "changed after the failure: " << test::hex(va);
    }
  }
}

TYPED_TEST(ForkCopyTest, LargePagesAndAChildThatAlreadyMapsThePageAreRefused) {
  {
    test::RecordingTlb tlb;
    ConsistencyBatch b(tlb, this->memory);
    ASSERT_TRUE(typename TestFixture::Cur(this->parent, b, this->range_start())
                    .map_block(PhysAddr(0x4000'0000), this->kLeaf - 1, kUserData)
                    .ok());
  }
  int visits = 0;
  Result<void> r = this->copy([&](auto& page) -> Result<void> {
    ++visits;
    page.share();
    return {};
  });
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), Error::InvalidArgument);
  EXPECT_EQ(visits, 0);

  const VirtAddr va = this->range_start().offset(this->kTableSpan + 4 * this->kPage);
  this->map(this->parent, va, PhysAddr(0x8000), kUserData);
  this->map(this->child, va, PhysAddr(0x9000), kUserData);
  ConsistencyBatch pb(this->parent_tlb, this->memory);
  ConsistencyBatch cb(this->child_tlb, this->memory);
  typename TestFixture::Cur from(this->parent, pb, VirtAddr(0));
  typename TestFixture::Cur to(this->child, cb, VirtAddr(0));
  r = copy_mappings(from, to, va, va.offset(this->kPage), [](auto& page) -> Result<void> {
    page.share();
    return {};
  });
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), Error::InvalidArgument);
}

TYPED_TEST(ForkCopyTest, NoMemoryForTheChildsTablesIsAnError) {
  this->build_parent();
  this->memory.fail_after(2);  // the child's first path needs three tables
  int visits = 0;
  const Result<void> r = this->copy([&](auto& page) -> Result<void> {
    ++visits;
    page.share();
    return {};
  });
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), Error::NoMemory);
  EXPECT_EQ(visits, 0);
  this->memory.fail_after(-1);
}

}  // namespace
}  // namespace pagoda
// LAB 6 END
