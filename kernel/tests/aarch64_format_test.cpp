// The page-table layer over simulated physical memory, the same tests for every ISA's format
// (typed tests over x86_64 and AArch64), then the AArch64 descriptor encodings themselves.
//
// Folding into kernel/tests/page_table_test.cpp once that file is typed over the format: its
// type list gains aarch64::PageTableFormat, and Craft<F> below (the few entries a test writes
// by hand) moves with it.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "arch/aarch64/page_table_format.hpp"
#include "arch_impl/page_table_format.hpp"  // the host build's arch: x86_64
#include "host_support.hpp"
#include "mm/page_table.hpp"

namespace pagoda {
namespace {

constexpr u64 kPage = 4 * KiB;
using X86 = x86::PageTableFormat;
using A64 = aarch64::PageTableFormat;

/// Entries a test writes by hand, as each format spells them.
template <class F> struct Craft;

template <> struct Craft<X86> {
  /// A kernel read/write, no-execute leaf at @p level (1: 1 GiB, 2: 2 MiB).
  static u64 large_page(PhysAddr pa, usize) { return pa.value() | X86::kPresent | X86::kWritable | X86::kHuge | X86::kNoExecute; }
  /// A table entry that forbids writing and executing below it.
  static void forbid_write_and_execute_below(u64& e) {
    e &= ~X86::kWritable;
    e |= X86::kNoExecute;
  }
  /// A root entry the CPU refuses.
  static void make_reserved(u64& root_entry) { root_entry |= X86::kHuge; }
  static void undo_reserved(u64& root_entry) { root_entry &= ~X86::kHuge; }
};

template <> struct Craft<A64> {
  static u64 large_page(PhysAddr pa, usize) {
    return pa.value() | A64::kValid | A64::kAccessFlag | A64::kShInner | A64::kUxn | A64::kPxn;  // a block
  }
  static void forbid_write_and_execute_below(u64& e) { e |= A64::kApTableReadOnly | A64::kPxnTable | A64::kUxnTable; }
  static void make_reserved(u64& root_entry) { root_entry &= ~A64::kTableOrPage; }  // a block at L0
  static void undo_reserved(u64& root_entry) { root_entry |= A64::kTableOrPage; }
};

/// Physical memory for tables: frames handed out from a counter, optionally failing after a
/// number of allocations; freed frames are checked to be empty.
template <class F> class FakeTableMemory final : public TableMemory {
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

template <class F> struct FormatTest : ::testing::Test {
  using Table = PageTable<F>;
  FakeTableMemory<F> memory;
  RecordingTlb tlb;
  Table table = Table::create(memory, tlb).release_value();

  std::string walk_text(VirtAddr va) {
    char buffer[2048];
    BufferSink sink(buffer, sizeof buffer);
    table.query(va).format(sink);
    return buffer;
  }
  static std::string stop_text(usize level, usize index) {
    return std::string("stopped: ") + F::level_name(level) + " entry " + std::to_string(index) + " not present";
  }
};

struct FormatName {
  template <class F> static std::string GetName(int) { return F::kArchName; }
};

using Formats = ::testing::Types<X86, A64>;
TYPED_TEST_SUITE(FormatTest, Formats, FormatName);

TYPED_TEST(FormatTest, MapThenQueryGivesAddressAndPermissions) {
  const VirtAddr va(0x0000'1234'5678'9000);
  ASSERT_TRUE(this->table.map(va, PhysAddr(0xabc000), kKernelData).ok());
  const Walk w = this->table.query(va.offset(0x123));
  ASSERT_TRUE(w.mapped());
  EXPECT_EQ(w.pa.value(), 0xabc123u);
  EXPECT_EQ(w.page_size, kPage);
  EXPECT_EQ(w.perms, kKernelData);
  EXPECT_EQ(w.depth, TypeParam::kLevels);
  EXPECT_EQ(this->memory.live_tables(), 4u);  // root + one table per level below it
}

TYPED_TEST(FormatTest, EveryPermissionCombinationRoundTrips) {
  for (int bits = 0; bits < 16; ++bits) {
    const Perms p{.read = true, .write = bool(bits & 1), .execute = bool(bits & 2), .user = bool(bits & 4),
                  .caching = (bits & 8) ? Caching::Uncached : Caching::WriteBack};
    const VirtAddr va(0x400000 + u64(bits) * kPage);
    ASSERT_TRUE(this->table.map(va, PhysAddr(0x800000 + u64(bits) * kPage), p).ok());
    EXPECT_EQ(this->table.query(va).perms, p) << "combination " << bits;
  }
}

TYPED_TEST(FormatTest, RejectsMisalignedNonCanonicalAndOverlappingRequests) {
  auto& table = this->table;
  EXPECT_EQ(table.map(VirtAddr(0x1001000 + 8), PhysAddr(0x2000), kKernelData).error(), Error::InvalidArgument);
  EXPECT_EQ(table.map(VirtAddr(0x1001000), PhysAddr(0x2008), kKernelData).error(), Error::InvalidArgument);
  // Bit 48 set, bit 63 clear: outside every 48-bit range of both ISAs.
  EXPECT_EQ(table.map(VirtAddr(0x0001'0000'0000'0000), PhysAddr(0x2000), kKernelData).error(), Error::InvalidArgument);
  ASSERT_TRUE(table.map(VirtAddr(0x1001000), PhysAddr(0x2000), kKernelData).ok());
  EXPECT_EQ(table.map(VirtAddr(0x1001000), PhysAddr(0x3000), kKernelText).error(), Error::AlreadyExists);
  EXPECT_EQ(table.query(VirtAddr(0x1001000)).pa.value(), 0x2000u);
  EXPECT_EQ(table.map_range(VirtAddr(0x1000000), PhysAddr(0x5000000), 4 * kPage, kKernelData).error(),
            Error::AlreadyExists);
  EXPECT_FALSE(table.query(VirtAddr(0x1000000)).mapped());  // rolled back
  EXPECT_TRUE(table.query(VirtAddr(0x1001000)).mapped());
}

TYPED_TEST(FormatTest, UnmapReturnsTheFrameAndFreesEmptyTablesAllTheWayUp) {
  const VirtAddr base(0x0000'3000'4000'0000 - 3 * MiB);
  const u64 size = 1536 * kPage;
  ASSERT_TRUE(this->table.map_range(base, PhysAddr(0x4000'0000), size, kKernelData).ok());
  EXPECT_GT(this->memory.live_tables(), 6u);
  const Result<PhysAddr> first = this->table.unmap(base);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first.value().value(), 0x4000'0000u);
  EXPECT_EQ(this->table.unmap(base).error(), Error::NotFound);
  ASSERT_TRUE(this->table.unmap_range(base.offset(kPage), size - kPage).ok());
  EXPECT_EQ(this->memory.live_tables(), 1u);
  const Walk w = this->table.query(base);
  EXPECT_EQ(w.stop, WalkStop::NotPresent);
  EXPECT_EQ(w.depth, 1u);
}

TYPED_TEST(FormatTest, MapRangeOutOfMemoryLeavesNothingBehind) {
  this->memory.fail_after(4);
  const VirtAddr base(0x0000'0000'4000'0000 - 2 * kPage);
  const Result<void> r = this->table.map_range(base, PhysAddr(0x1000), 4 * kPage, kKernelData);
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), Error::NoMemory);
  EXPECT_FALSE(this->table.query(base).mapped());
  EXPECT_EQ(this->memory.live_tables(), 1u);
}

TYPED_TEST(FormatTest, ProtectChangesPermissionsAndFlushesEachPage) {
  ASSERT_TRUE(this->table.map_range(VirtAddr(0x600000), PhysAddr(0x9000), 3 * kPage, kKernelData).ok());
  this->tlb.pages.clear();
  ASSERT_TRUE(this->table.protect(VirtAddr(0x600000), 3 * kPage, kKernelReadOnly).ok());
  EXPECT_EQ(this->table.query(VirtAddr(0x601000)).perms, kKernelReadOnly);
  EXPECT_EQ(this->table.query(VirtAddr(0x601000)).pa.value(), 0xa000u);
  EXPECT_EQ(this->tlb.pages, (std::vector<u64>{0x600000, 0x601000, 0x602000}));
}

TYPED_TEST(FormatTest, LargePagesAreWalkedButNotSplit) {
  using F = TypeParam;
  ASSERT_TRUE(this->table.map(VirtAddr(0x4020'0000), PhysAddr(0x1000), kKernelData).ok());
  const Walk small = this->table.query(VirtAddr(0x4020'0000));
  u64* l2 = this->memory.table_entries(small.levels[2].table);
  l2[0] = Craft<F>::large_page(PhysAddr(0x1'0000'0000), 2);
  const Walk w = this->table.query(VirtAddr(0x4012'3456));
  ASSERT_TRUE(w.mapped()) << this->walk_text(VirtAddr(0x4012'3456));
  EXPECT_EQ(w.page_size, 2 * MiB);
  EXPECT_EQ(w.pa.value(), 0x1'0012'3456u);
  EXPECT_EQ(w.depth, 3u);
  EXPECT_FALSE(w.perms.execute);
  EXPECT_EQ(this->table.map(VirtAddr(0x4000'1000), PhysAddr(0x1000), kKernelData).error(), Error::AlreadyExists);
  EXPECT_EQ(this->table.unmap(VirtAddr(0x4000'1000)).error(), Error::Unsupported);
  l2[0] = Craft<F>::large_page(PhysAddr(0x1'0001'0000), 2);  // not 2 MiB aligned
  EXPECT_EQ(this->table.query(VirtAddr(0x4000'0000)).stop, WalkStop::ReservedBits);
  l2[0] = 0;
}

TYPED_TEST(FormatTest, TableEntriesRestrictTheWholeSubtree) {
  ASSERT_TRUE(this->table.map(VirtAddr(0x300000), PhysAddr(0x1000), Perms{.write = true, .execute = true}).ok());
  const Walk before = this->table.query(VirtAddr(0x300000));
  EXPECT_TRUE(before.perms.write && before.perms.execute);
  Craft<TypeParam>::forbid_write_and_execute_below(this->memory.table_entries(before.levels[1].table)[0]);
  const Walk after = this->table.query(VirtAddr(0x300000));
  EXPECT_TRUE(after.mapped());
  EXPECT_FALSE(after.perms.write);
  EXPECT_FALSE(after.perms.execute);
}

TYPED_TEST(FormatTest, WalkStopsAreNamedByLevel) {
  using F = TypeParam;
  EXPECT_NE(this->walk_text(VirtAddr(0x0000'2000'0000'0000)).find(this->stop_text(0, 64)), std::string::npos);
  ASSERT_TRUE(this->table.map(VirtAddr(0x1000), PhysAddr(0x1000), kKernelData).ok());
  EXPECT_NE(this->walk_text(VirtAddr(0x0)).find(this->stop_text(3, 0)), std::string::npos);
  EXPECT_NE(this->walk_text(VirtAddr(0x4000'0000)).find(this->stop_text(1, 1)), std::string::npos);
  EXPECT_EQ(this->table.query(VirtAddr(0x0001'0000'0000'0000)).stop, WalkStop::NonCanonical);
  const std::string mapped = this->walk_text(VirtAddr(0x1000));
  EXPECT_NE(mapped.find("-> page 0x0000000000001000 (4 KiB), rw- kernel"), std::string::npos) << mapped;
  u64& root_entry = this->memory.table_entries(this->table.root())[0];
  Craft<F>::make_reserved(root_entry);
  EXPECT_EQ(this->table.query(VirtAddr(0x1000)).stop, WalkStop::ReservedBits);
  Craft<F>::undo_reserved(root_entry);
  EXPECT_TRUE(this->table.query(VirtAddr(0x1000)).mapped());
}

std::string explain(const Walk& w, Access a) {
  char buffer[256];
  BufferSink sink(buffer, sizeof buffer);
  explain_fault(sink, w, a);
  return buffer;
}

TYPED_TEST(FormatTest, FaultsAreExplained) {
  ASSERT_TRUE(this->table.map(VirtAddr(0x1000), PhysAddr(0x1000), kKernelText).ok());
  ASSERT_TRUE(this->table.map(VirtAddr(0x2000), PhysAddr(0x2000), kKernelData).ok());
  EXPECT_EQ(explain(this->table.query(VirtAddr(0x1000)), {.write = true}), "write to read-only page");
  EXPECT_EQ(explain(this->table.query(VirtAddr(0x2000)), {.execute = true}), "execute of NX page");
  EXPECT_EQ(explain(this->table.query(VirtAddr(0x2000)), {.user = true}), "user access to supervisor page");
  EXPECT_EQ(explain(this->table.query(VirtAddr(0x3000)), {}),
            std::string(TypeParam::level_name(3)) + " entry 3 not present");
}

TYPED_TEST(FormatTest, KernelImageSlotsAreTheSameOnBothIsas) {
  // layout::kKernelImageBase: both boot stubs put the image in top-level slot 511, next level 510.
  const VirtAddr image(0xffff'ffff'8000'0000);
  EXPECT_TRUE(TypeParam::is_canonical(image));
  EXPECT_EQ(TypeParam::index(image, 0), 511u);
  EXPECT_EQ(TypeParam::index(image, 1), 510u);
}

// ---- AArch64 descriptors, bit by bit --------------------------------------------------------

u64 ap(u64 e) { return (e >> 6) & 3; }

TEST(Aarch64Format, KernelPagesAreGlobalAndNeverExecutableAtEl0) {
  const u64 text = A64::make_page_entry(PhysAddr(0x4020'5000), kKernelText);
  EXPECT_EQ(text & 3, 3u) << "an L3 page descriptor";
  EXPECT_EQ(text & A64::kAddressMask, 0x4020'5000u);
  EXPECT_EQ(ap(text), 0b10u) << "read-only at EL1, no EL0 access";
  EXPECT_TRUE(text & A64::kUxn);
  EXPECT_FALSE(text & A64::kPxn);
  EXPECT_TRUE(text & A64::kAccessFlag) << "no access-flag fault on first use";
  EXPECT_EQ(text & A64::kShMask, A64::kShInner);
  EXPECT_EQ((text & A64::kAttrMask) >> A64::kAttrShift, A64::kAttrNormal);
  EXPECT_FALSE(text & A64::kNotGlobal);
  const u64 data = A64::make_page_entry(PhysAddr(0x4100'0000), kKernelData);
  EXPECT_EQ(ap(data), 0b00u) << "read/write at EL1, no EL0 access";
  EXPECT_TRUE((data & A64::kPxn) && (data & A64::kUxn));
}

TEST(Aarch64Format, UserPagesAreAsidTaggedAndNeverExecutableAtEl1) {
  const u64 rw = A64::make_page_entry(PhysAddr(0x5000'0000), Perms{.write = true, .user = true});
  EXPECT_EQ(ap(rw), 0b01u) << "read/write at EL1 and EL0";
  EXPECT_TRUE(rw & A64::kNotGlobal);
  EXPECT_TRUE((rw & A64::kPxn) && (rw & A64::kUxn));
  const u64 rx = A64::make_page_entry(PhysAddr(0x5000'1000), Perms{.execute = true, .user = true});
  EXPECT_EQ(ap(rx), 0b11u) << "read-only at EL1 and EL0";
  EXPECT_TRUE(rx & A64::kPxn);
  EXPECT_FALSE(rx & A64::kUxn);
  EXPECT_EQ(A64::entry_perms(rx, 3), (Perms{.execute = true, .user = true}));
}

TEST(Aarch64Format, DeviceMemoryUsesTheDeviceAttribute) {
  const u64 dev = A64::make_page_entry(PhysAddr(0x0900'0000), kKernelDevice);
  EXPECT_EQ((dev & A64::kAttrMask) >> A64::kAttrShift, A64::kAttrDevice);
  EXPECT_EQ(dev & A64::kShMask, 0u);
  EXPECT_TRUE((dev & A64::kPxn) && (dev & A64::kUxn));
  EXPECT_EQ(A64::entry_perms(dev, 3).caching, Caching::Uncached);
}

TEST(Aarch64Format, TablesPointDownAndRestrictNothing) {
  const u64 t = A64::make_table_entry(PhysAddr(0x4030'0000), 0);
  EXPECT_EQ(t, 0x4030'0000u | 3u);
  EXPECT_EQ(A64::output_address(t, 0).value(), 0x4030'0000u);
  EXPECT_FALSE(A64::is_leaf(t, 0));
  EXPECT_FALSE(A64::is_leaf(t, 2));
  EXPECT_EQ(A64::entry_perms(t, 1), (Perms{.write = true, .execute = true, .user = true}));
}

TEST(Aarch64Format, BlocksAtL1AndL2OnlyAndAligned) {
  const u64 gib_block = 0x4000'0000u | A64::kValid | A64::kAccessFlag;
  EXPECT_TRUE(A64::is_leaf(gib_block, 1));
  EXPECT_FALSE(A64::has_reserved_bits(gib_block, 1));
  EXPECT_EQ(A64::output_address(gib_block, 1).value(), 0x4000'0000u);
  EXPECT_EQ(A64::entry_span(1), 1 * GiB);
  EXPECT_TRUE(A64::has_reserved_bits(gib_block, 0)) << "no blocks at L0 with a 4 KiB granule";
  EXPECT_TRUE(A64::has_reserved_bits(0x4020'0000u | A64::kValid, 1)) << "a 1 GiB block must be 1 GiB aligned";
  EXPECT_FALSE(A64::has_reserved_bits(0x4020'0000u | A64::kValid, 2));
  EXPECT_TRUE(A64::has_reserved_bits(0x4020'1000u | A64::kValid, 3)) << "bits 1:0 = 01 at L3 are reserved";
  EXPECT_TRUE(A64::has_reserved_bits(A64::make_page_entry(PhysAddr(0x1000), kKernelData) | (1ull << 48), 3))
      << "output address bits above 47";
}

TEST(Aarch64Format, TwoRangesOf48Bits) {
  EXPECT_TRUE(A64::is_canonical(VirtAddr(0x0000'ffff'ffff'f000))) << "TTBR0 covers all 48 bits";
  EXPECT_FALSE(A64::in_upper_range(VirtAddr(0x0000'ffff'ffff'f000)));
  EXPECT_TRUE(A64::is_canonical(VirtAddr(0xffff'0000'0000'0000)));
  EXPECT_TRUE(A64::in_upper_range(VirtAddr(0xffff'0000'0000'0000)));
  EXPECT_EQ(A64::kUpperHalfStart.value(), 0xffff'0000'0000'0000u);
  EXPECT_FALSE(A64::is_canonical(VirtAddr(0x0001'0000'0000'0000)));
  EXPECT_FALSE(A64::is_canonical(VirtAddr(0xfffe'ffff'ffff'f000)));
  EXPECT_FALSE(X86::is_canonical(VirtAddr(0x0000'8000'0000'0000))) << "where the two ISAs differ";
  EXPECT_TRUE(A64::is_canonical(VirtAddr(0x0000'8000'0000'0000)));
}

TEST(Aarch64Format, EntriesDescribeThemselves) {
  char buffer[128];
  BufferSink sink(buffer, sizeof buffer);
  A64::describe_entry(sink, A64::make_page_entry(PhysAddr(0x1000), Perms{.write = true, .user = true}), 3);
  EXPECT_STREQ(buffer, "V PAGE AF ISH RW EL0 PXN UXN nG Attr0");
  BufferSink table_sink(buffer, sizeof buffer);
  A64::describe_entry(table_sink, A64::make_table_entry(PhysAddr(0x2000), 0) | A64::kPxnTable, 0);
  EXPECT_STREQ(buffer, "V TABLE PXNT");
  BufferSink block_sink(buffer, sizeof buffer);
  A64::describe_entry(block_sink, A64::make_page_entry(PhysAddr(0x4000'0000), kKernelDevice) & ~A64::kTableOrPage, 1);
  EXPECT_STREQ(buffer, "V BLOCK AF RW PXN UXN Attr1");
}

}  // namespace
}  // namespace pagoda
