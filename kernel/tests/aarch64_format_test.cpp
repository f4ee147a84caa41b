// The AArch64 descriptor format bit by bit: what the generic tests (page_table_test.cpp, typed
// over both ISAs' formats) cannot see because they only speak in Perms.
#include <gtest/gtest.h>

#include "arch/aarch64/page_table_format.hpp"
#include "arch/x86_64/page_table_format.hpp"
#include "host_support.hpp"

namespace pagoda {
namespace {

using A64 = aarch64::PageTableFormat;
using X86 = x86::PageTableFormat;

u64 ap(u64 e) { return (e >> 6) & 3; }
u64 attr(u64 e) { return (e & A64::kAttrMask) >> A64::kAttrShift; }

std::string describe(u64 e, usize level) {
  char buffer[128];
  BufferSink sink(buffer, sizeof buffer);
  A64::describe_entry(sink, e, level);
  return buffer;
}

TEST(Aarch64Format, KernelPagesNeverExecuteAtEl0) {
  const u64 text = A64::make_page_entry(PhysAddr(0x4020'5000), kKernelText);
  EXPECT_EQ(text & 3, 3u) << "an L3 page descriptor";
  EXPECT_EQ(text & A64::kAddressMask, 0x4020'5000u);
  EXPECT_EQ(ap(text), 0b10u) << "read-only at EL1, no EL0 access";
  EXPECT_TRUE(text & A64::kUxn);
  EXPECT_FALSE(text & A64::kPxn);
  EXPECT_TRUE(text & A64::kAccessFlag) << "no access-flag fault on first use (TCR_EL1.HA is off)";
  EXPECT_EQ(text & A64::kShMask, A64::kShInner);
  EXPECT_EQ(attr(text), A64::kAttrNormal);
  const u64 data = A64::make_page_entry(PhysAddr(0x4100'0000), kKernelData);
  EXPECT_EQ(ap(data), 0b00u) << "read/write at EL1, no EL0 access";
  EXPECT_TRUE((data & A64::kPxn) && (data & A64::kUxn));
}

TEST(Aarch64Format, OnlyGlobalMappingsLeaveTheAsidOut) {
  EXPECT_TRUE(A64::make_page_entry(PhysAddr(0x1000), kKernelData) & A64::kNotGlobal);
  const Perms global{.write = true, .global = true};
  const u64 e = A64::make_page_entry(PhysAddr(0x1000), global);
  EXPECT_FALSE(e & A64::kNotGlobal);
  EXPECT_TRUE(A64::entry_perms(e, A64::kL3).global);
  EXPECT_FALSE(A64::entry_perms(A64::make_page_entry(PhysAddr(0x1000), kKernelData), A64::kL3).global);
}

TEST(Aarch64Format, UserPagesAreAsidTaggedAndNeverExecuteAtEl1) {
  const u64 rw = A64::make_page_entry(PhysAddr(0x5000'0000), Perms{.write = true, .user = true});
  EXPECT_EQ(ap(rw), 0b01u) << "read/write at EL1 and EL0";
  EXPECT_TRUE(rw & A64::kNotGlobal);
  EXPECT_TRUE((rw & A64::kPxn) && (rw & A64::kUxn));
  const u64 rx = A64::make_page_entry(PhysAddr(0x5000'1000), Perms{.execute = true, .user = true});
  EXPECT_EQ(ap(rx), 0b11u) << "read-only at EL1 and EL0";
  EXPECT_TRUE(rx & A64::kPxn);
  EXPECT_FALSE(rx & A64::kUxn);
  EXPECT_EQ(A64::entry_perms(rx, A64::kL3), (Perms{.execute = true, .user = true}));
}

TEST(Aarch64Format, DeviceMemoryUsesTheDeviceAttribute) {
  const u64 dev = A64::make_page_entry(PhysAddr(0x0900'0000), kKernelDevice);
  EXPECT_EQ(attr(dev), A64::kAttrDevice);
  EXPECT_EQ(dev & A64::kShMask, 0u);
  EXPECT_TRUE((dev & A64::kPxn) && (dev & A64::kUxn));
  EXPECT_EQ(A64::entry_perms(dev, A64::kL3).caching, Caching::Uncached);
}

TEST(Aarch64Format, TablesPointDownAndRestrictNothing) {
  const u64 t = A64::make_table_entry(PhysAddr(0x4030'0000), 0, true);
  EXPECT_EQ(t, 0x4030'0000u | 3u);
  EXPECT_EQ(A64::output_address(t, 0).value(), 0x4030'0000u);
  EXPECT_FALSE(A64::is_leaf(t, 0));
  EXPECT_FALSE(A64::is_leaf(t, 2));
  EXPECT_EQ(A64::entry_perms(t, 1), (Perms{.write = true, .execute = true, .user = true}));
  EXPECT_FALSE(A64::entry_perms(t | A64::kPxnTable, 1).execute);
  EXPECT_FALSE(A64::entry_perms(t | A64::kApTableReadOnly, 1).write);
  EXPECT_FALSE(A64::entry_perms(t | A64::kApTableNoEl0, 1).user);
}

TEST(Aarch64Format, BlocksAtL1AndL2OnlyAndAligned) {
  EXPECT_FALSE(A64::can_hold_block(A64::kL0));
  EXPECT_TRUE(A64::can_hold_block(A64::kL1) && A64::can_hold_block(A64::kL2));
  EXPECT_FALSE(A64::can_hold_block(A64::kL3));
  const u64 gib_block = A64::make_block_entry(PhysAddr(0x4000'0000), A64::kL1, kKernelData);
  EXPECT_EQ(gib_block & 3, 1u) << "bits 1:0 = 01: a block";
  EXPECT_TRUE(A64::is_leaf(gib_block, A64::kL1));
  EXPECT_FALSE(A64::has_reserved_bits(gib_block, A64::kL1));
  EXPECT_EQ(A64::output_address(gib_block, A64::kL1).value(), 0x4000'0000u);
  EXPECT_EQ(A64::entry_span(A64::kL1), 1 * GiB);
  EXPECT_TRUE(A64::has_reserved_bits(gib_block, A64::kL0)) << "no blocks at L0 with a 4 KiB granule";
  EXPECT_TRUE(A64::has_reserved_bits(0x4020'0000u | A64::kValid, A64::kL1)) << "a 1 GiB block must be 1 GiB aligned";
  EXPECT_FALSE(A64::has_reserved_bits(0x4020'0000u | A64::kValid, A64::kL2));
  EXPECT_TRUE(A64::has_reserved_bits(0x4020'1000u | A64::kValid, A64::kL3)) << "bits 1:0 = 01 at L3 are reserved";
}

TEST(Aarch64Format, AddressBitsAbove47AreReservedButDbmIsNot) {
  const u64 page = A64::make_page_entry(PhysAddr(0x1000), kKernelData);
  EXPECT_TRUE(A64::has_reserved_bits(page | (1ull << 48), A64::kL3));
  EXPECT_FALSE(A64::has_reserved_bits(page | A64::kDirtyBitModifier, A64::kL3)) << "DBM is a leaf attribute";
  EXPECT_TRUE(A64::has_reserved_bits(A64::make_table_entry(PhysAddr(0x2000), 0, true) | A64::kDirtyBitModifier, 0))
      << "in a table descriptor bit 51 is an address bit";
}

TEST(Aarch64Format, SplitKeepsTheAttributesAndMakesPagesBelowL2) {
  const Perms global_rx{.execute = true, .global = true};
  const u64 l1 = A64::make_block_entry(PhysAddr(0x4000'0000), A64::kL1, global_rx);
  const u64 l2 = A64::split_block(l1, A64::kL1, 3);
  EXPECT_EQ(l2 & 3, 1u) << "an L1 block splits into L2 blocks";
  EXPECT_EQ(A64::output_address(l2, A64::kL2).value(), 0x4000'0000u + 3 * 2 * MiB);
  EXPECT_EQ(A64::entry_perms(l2, A64::kL2), global_rx);
  const u64 l3 = A64::split_block(l2, A64::kL2, 511);
  EXPECT_EQ(l3 & 3, 3u) << "an L2 block splits into pages";
  EXPECT_EQ(A64::output_address(l3, A64::kL3).value(), 0x4000'0000u + 3 * 2 * MiB + 511 * A64::kPageSize);
  EXPECT_EQ(A64::entry_perms(l3, A64::kL3), global_rx);
  EXPECT_EQ(l3 & ~A64::kAddressMask & ~A64::kTableOrPage, l1 & ~A64::kAddressMask);
}

TEST(Aarch64Format, WithPermsRewritesPermissionsOnly) {
  const u64 e = A64::make_page_entry(PhysAddr(0x4000'3000), Perms{.write = true, .global = true}) |
                A64::kDirtyBitModifier;
  const u64 ro = A64::with_perms(e, A64::kL3, kKernelReadOnly);
  EXPECT_EQ(ap(ro), 0b10u);
  EXPECT_EQ(ro & A64::kAddressMask, 0x4000'3000u);
  EXPECT_TRUE(ro & A64::kAccessFlag);
  EXPECT_TRUE(ro & A64::kDirtyBitModifier);
  EXPECT_FALSE(ro & A64::kNotGlobal) << "protect keeps global";
  EXPECT_EQ(ro & 3, 3u);
  const u64 dev = A64::with_perms(e, A64::kL3, kKernelDevice);
  EXPECT_EQ(attr(dev), A64::kAttrDevice);
  EXPECT_EQ(dev & A64::kShMask, 0u);
}

TEST(Aarch64Format, AHeldLeafIsInvalidWithTheSoftwareBitAndEveryOtherBitKept) {
  const Perms none{.read = false, .user = true};
  const u64 e = A64::make_page_entry(PhysAddr(0x4000'3000), none);
  EXPECT_EQ(e & A64::kValid, 0u) << "invalid to the MMU";
  EXPECT_EQ(e & A64::kHeld, A64::kHeld);
  EXPECT_EQ(A64::kHeld, 1ull << 55) << "the first bit left to software";
  EXPECT_EQ(e & A64::kAddressMask, 0x4000'3000u);
  EXPECT_EQ(e & A64::kTableOrPage, A64::kTableOrPage) << "still an L3 page once made valid again";
  EXPECT_EQ(ap(e), 0b11u) << "user, read-only";
  EXPECT_TRUE(e & A64::kUxn && e & A64::kPxn && e & A64::kNotGlobal && e & A64::kAccessFlag);
  EXPECT_TRUE(A64::is_held(e, A64::kL3));
  EXPECT_TRUE(A64::is_present(e, A64::kL3));
  EXPECT_FALSE(A64::is_held(e | A64::kValid, A64::kL3));
  EXPECT_FALSE(A64::is_held(A64::kHeld | A64::kTableOrPage, A64::kL2)) << "a table descriptor is never held";
  EXPECT_FALSE(A64::is_held(A64::kHeld, A64::kL0));
  EXPECT_TRUE(A64::is_held(A64::kHeld, A64::kL2)) << "a held block";
  EXPECT_FALSE(A64::has_reserved_bits(e, A64::kL3));
  // Through protect: the valid bit and HELD swap, the rest comes back as it was.
  const u64 live = A64::make_page_entry(PhysAddr(0x4000'5000), Perms{.write = true, .user = true}) |
                   A64::kDirtyBitModifier;
  const u64 held = A64::with_perms(live, A64::kL3, none);
  EXPECT_EQ(held & A64::kValid, 0u);
  EXPECT_EQ(held & (A64::kAddressMask | A64::kAccessFlag | A64::kNotGlobal | A64::kDirtyBitModifier),
            live & (A64::kAddressMask | A64::kAccessFlag | A64::kNotGlobal | A64::kDirtyBitModifier));
  EXPECT_EQ(A64::entry_perms(held, A64::kL3), none);
  EXPECT_EQ(A64::with_perms(held, A64::kL3, Perms{.write = true, .user = true}), live);
  // A page writable to the MMU counts as written (lab 7): held, it keeps that in DIRTY (bit 58).
  EXPECT_EQ(describe(held, 3), "HELD PAGE AF ISH RO DIRTY EL0 PXN UXN nG Attr0");
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

TEST(Aarch64Format, KernelImageSlotsAreThoseOfX86) {
  // Both boot stubs put the image (0xffffffff80000000) in top-level slot 511, next level 510.
  const VirtAddr image(0xffff'ffff'8000'0000);
  EXPECT_EQ(A64::index(image, 0), 511u);
  EXPECT_EQ(A64::index(image, 1), 510u);
  EXPECT_EQ(X86::index(image, 0), 511u);
  EXPECT_EQ(X86::index(image, 1), 510u);
}

TEST(Aarch64Format, EntriesDescribeThemselves) {
  EXPECT_EQ(describe(A64::make_page_entry(PhysAddr(0x1000), Perms{.write = true, .user = true}), 3),
            "V PAGE AF ISH RW EL0 PXN UXN nG Attr0");
  EXPECT_EQ(describe(A64::make_table_entry(PhysAddr(0x2000), 0, true) | A64::kPxnTable, 0), "V TABLE PXNT");
  EXPECT_EQ(describe(A64::make_block_entry(PhysAddr(0x4000'0000), 1,
                                           Perms{.write = true, .caching = Caching::Uncached, .global = true}),
                     1),
            "V BLOCK AF RW PXN UXN Attr1");
  EXPECT_EQ(describe(0, 2), "invalid");
}

}  // namespace
}  // namespace pagoda
