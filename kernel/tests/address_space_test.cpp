// Address spaces over simulated physical memory and a simulated CPU: the kernel space as the one
// owner of the kernel root and its pinned half (issue 12's bug), user spaces that share that half
// and free only their own, activation, and which invalidations reach the TLB.
#include <gtest/gtest.h>

#include <algorithm>
#include <type_traits>

#include "host_support.hpp"
#include "mm/space/address_space.hpp"
#include "mm/base/layout.hpp"
#include "page_table_fakes.hpp"
#include "x86_hw_fake.hpp"

namespace pagoda {
namespace {

using F = arch::PageTableFormat;
constexpr usize kHalf = arch::ArchAddressSpace::kKernelHalfFirst;

// No second handle on a root can be made: the kernel root has one owner, the kernel space, so no
// handle can exist that forgets which of its tables are pinned.
static_assert(!std::is_copy_constructible_v<AddressSpace> && !std::is_copy_assignable_v<AddressSpace>);
static_assert(!std::is_constructible_v<AddressSpace, PhysAddr>);
static_assert(!std::is_constructible_v<AddressSpace, arch::ArchAddressSpace>);  // only create_*()
static_assert(!std::is_copy_constructible_v<AddressSpace::Tree>);
static_assert(!std::is_constructible_v<AddressSpace::Tree, PhysAddr, TableMemory&>);

struct AddressSpaceTest : ::testing::Test {
  test::FakeTableMemory<F::kEntriesPerTable> memory;
  AddressSpace kernel = AddressSpace::create_kernel(memory).release_value();

  void SetUp() override {
    x86::hw::fake::cpu() = {};
    ASSERT_TRUE(kernel.prepare_kernel_half().ok());
  }
  void TearDown() override { x86::hw::fake::cpu().cr3 = PhysAddr(); }  // nothing live: spaces may go
  std::vector<std::string>& cpu_log() { return x86::hw::fake::cpu().log; }
  usize invlpgs() const {
    const auto& log = x86::hw::fake::cpu().log;
    return usize(std::count_if(log.begin(), log.end(), [](const std::string& e) { return e.rfind("invlpg", 0) == 0; }));
  }
};

// Issue 12: through vm::kernel_table(), a second handle on the kernel root without the pinning,
// an unmap that emptied a kernel-half table freed it and cleared its top-level entry, which
// every process root copies. Now the kernel space is the only way to change the kernel root.
TEST_F(AddressSpaceTest, KernelHalfTopLevelEntrySurvivesAnUnmapThatEmptiesItsTable) {
  const VirtAddr mmio(layout::kMmioBase);
  const usize slot = F::index(mmio, 0);
  const u64 before = kernel.arch().tree_for(mmio).root_entries()[slot];
  ASSERT_TRUE(F::is_present(before, 0));
  const usize tables = memory.live_tables();
  ASSERT_TRUE(kernel.map(mmio, PhysAddr(0xfee00000), kKernelDevice).ok());
  ASSERT_TRUE(kernel.unmap(mmio).ok());
  EXPECT_EQ(kernel.arch().tree_for(mmio).root_entries()[slot], before)
      << "the kernel half's top-level entry was cleared (and its table freed): every process root copied "
         "from it would point to a freed table";
  EXPECT_EQ(memory.live_tables(), tables);
  EXPECT_TRUE(memory.is_live(F::output_address(before, 0)));
}

// Issue 12: the kernel half's tables were linked with US set at every level, so only the leaves
// protected the kernel. Now no table entry of the kernel half allows user access, at any level;
// the user half's table entries do (the leaf decides there).
TEST_F(AddressSpaceTest, NoTableEntryOfTheKernelHalfAllowsUserAccess) {
  const VirtAddr high(layout::kStackBase + 0x5000), low(0x40'0000);
  ASSERT_TRUE(kernel.map(high, PhysAddr(0x123000), kKernelData).ok());
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  ASSERT_TRUE(user.map(low, PhysAddr(0x124000), Perms{.write = true, .user = true}).ok());
  const u64* top = kernel.arch().tree_for(high).root_entries();
  for (usize i = kHalf; i < F::kEntriesPerTable; ++i) EXPECT_FALSE(F::entry_perms(top[i], 0).user) << "entry " << i;
  const Walk k = user.query(high), u = user.query(low);
  ASSERT_TRUE(k.mapped() && u.mapped());
  for (usize l = 0; l + 1 < k.depth; ++l) EXPECT_FALSE(F::entry_perms(k.levels[l].entry, l).user) << "level " << l;
  for (usize l = 0; l + 1 < u.depth; ++l) EXPECT_TRUE(F::entry_perms(u.levels[l].entry, l).user) << "level " << l;
  EXPECT_TRUE(u.perms.user);
  // A leaf made user by mistake in the kernel half still gives user mode nothing.
  ASSERT_TRUE(kernel.protect(high, kPageSize, Perms{.write = true, .user = true}).ok());
  EXPECT_FALSE(kernel.query(high).perms.user);
}

// A protect or an unmap of part of a large page splits it first (lab 2): the rest keeps its
// translation and permissions, and a range that covers a block whole leaves it a block.
TEST_F(AddressSpaceTest, PartialProtectAndUnmapSplitALargePage) {
  constexpr u64 kBlock = AddressSpace::kBlockSize;
  const VirtAddr base(layout::kWindowBase + 4 * kBlock), next = base.offset(kBlock);
  ASSERT_TRUE(kernel.map_block(base, PhysAddr(0x80'0000), kBlock, kKernelData).ok());
  ASSERT_TRUE(kernel.map_block(next, PhysAddr(0xa0'0000), kBlock, kKernelData).ok());
  EXPECT_EQ(kernel.map_block(base, PhysAddr(0x80'0000), 3 * kPageSize, kKernelData).error(), Error::InvalidArgument);
  ASSERT_TRUE(kernel.protect(base.offset(3 * kPageSize), 2 * kPageSize, kKernelReadOnly).ok());
  ASSERT_TRUE(kernel.unmap_range(base.offset(9 * kPageSize), kPageSize).ok());
  for (u64 i = 0; i < kBlock / kPageSize; ++i) {
    const Walk w = kernel.query(base.offset(i * kPageSize));
    if (i == 9) {
      EXPECT_FALSE(w.mapped());
      continue;
    }
    ASSERT_TRUE(w.mapped()) << i;
    EXPECT_EQ(w.page_size, kPageSize) << i;
    EXPECT_EQ(w.pa.value(), 0x80'0000 + i * kPageSize) << i;
    EXPECT_EQ(w.perms.write, i < 3 || i > 4) << i;
  }
  ASSERT_TRUE(kernel.protect(next, kBlock, kKernelReadOnly).ok());
  EXPECT_EQ(kernel.query(next).page_size, kBlock) << "a block the range covers whole is changed as one";
}

TEST_F(AddressSpaceTest, AUserSpaceSharesTheKernelHalfAndSeesLaterKernelMappings) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  const u64* k = kernel.arch().tree_for(VirtAddr(0)).root_entries();
  const u64* u = user.arch().tree_for(VirtAddr(0)).root_entries();
  for (usize i = kHalf; i < F::kEntriesPerTable; ++i) EXPECT_EQ(u[i], k[i]) << "entry " << i;
  for (usize i = 0; i < kHalf; ++i) EXPECT_EQ(u[i], 0u) << "entry " << i;
  const VirtAddr stack(layout::kStackBase + 0x5000);
  ASSERT_TRUE(kernel.map(stack, PhysAddr(0x123000), kKernelData).ok());  // made after the user space
  const Walk w = user.query(stack);
  ASSERT_TRUE(w.mapped());
  EXPECT_EQ(w.pa.value(), 0x123000u);
}

TEST_F(AddressSpaceTest, AUserSpaceChangesOnlyItsOwnHalf) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  EXPECT_EQ(user.map(VirtAddr(layout::kStackBase), PhysAddr(0x1000), kKernelData).error(), Error::InvalidArgument);
  EXPECT_EQ(user.map_range(VirtAddr(0x0000'7fff'ffff'f000), PhysAddr(0x1000), 2 * kPageSize, kKernelData).error(),
            Error::InvalidArgument);
  EXPECT_TRUE(user.map(VirtAddr(0x400000), PhysAddr(0x1000), Perms{.write = true, .user = true}).ok());
  EXPECT_FALSE(kernel.query(VirtAddr(0x400000)).mapped());
}

TEST_F(AddressSpaceTest, AUserSpaceNeedsAPreparedKernelHalf) {
  test::FakeTableMemory<F::kEntriesPerTable> other;
  AddressSpace bare = AddressSpace::create_kernel(other).release_value();
  const Result<AddressSpace> user = AddressSpace::create_user(bare);
  ASSERT_TRUE(user.is_error());
  EXPECT_EQ(user.error(), Error::Unsupported);
}

TEST_F(AddressSpaceTest, DestroyingAUserSpaceFreesItsHalfAndNothingOfTheKernels) {
  const usize before = memory.live_tables();
  const VirtAddr kernel_page(layout::kTempMapBase);
  ASSERT_TRUE(kernel.map(kernel_page, PhysAddr(0x77000), kKernelData).ok());
  const usize with_kernel_page = memory.live_tables();
  {
    AddressSpace user = AddressSpace::create_user(kernel).release_value();
    const Perms user_data{.write = true, .user = true};
    // Pages under three top-level entries, one range across a level-1 boundary.
    ASSERT_TRUE(
        user.map_range(VirtAddr(0x4000'0000 - 8 * kPageSize), PhysAddr(0x100000), 16 * kPageSize, user_data).ok());
    ASSERT_TRUE(user.map(VirtAddr(0x0000'0080'0000'0000), PhysAddr(0x200000), user_data).ok());
    ASSERT_TRUE(user.map(VirtAddr(0x0000'7fff'ffff'f000), PhysAddr(0x300000), user_data).ok());
    EXPECT_EQ(memory.live_tables(), with_kernel_page + 1 + 5 + 3 + 3);  // root; PDPT, 2 PD, 2 PT; 3; 3
  }
  EXPECT_EQ(memory.live_tables(), with_kernel_page);  // every user table and the user root went
  const Walk w = kernel.query(kernel_page);           // the kernel half is intact
  ASSERT_TRUE(w.mapped());
  EXPECT_EQ(w.pa.value(), 0x77000u);
  ASSERT_TRUE(kernel.unmap(kernel_page).ok());
  EXPECT_EQ(memory.live_tables(), before);
}

TEST_F(AddressSpaceTest, ActivateLoadsTheRootAfterCheckingTheSharedHalf) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  user.activate();
  EXPECT_TRUE(user.is_live());
  EXPECT_FALSE(kernel.is_live());
  EXPECT_EQ(cpu_log().back(), "load " + test::hex(user.root().value()));
  kernel.activate();
  u64* top = user.arch().tree_for(VirtAddr(0)).root_entries();
  const u64 saved = top[300];
  top[300] = 0;  // a root that lost part of the kernel half
  EXPECT_THROW(user.activate(), host::HostPanic);
  EXPECT_TRUE(kernel.is_live());  // the switch never happened
  top[300] = saved;
}

TEST_F(AddressSpaceTest, OnlyTranslationsTheTlbCanHoldAreInvalidated) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  const Perms user_data{.write = true, .user = true};
  ASSERT_TRUE(user.map_range(VirtAddr(0x400000), PhysAddr(0x1000), 4 * kPageSize, user_data).ok());
  kernel.activate();
  cpu_log().clear();
  ASSERT_TRUE(user.unmap(VirtAddr(0x400000)).ok());  // not live: nothing of it is cached (no PCIDs)
  EXPECT_EQ(invlpgs(), 0u);
  user.activate();
  ASSERT_TRUE(user.unmap(VirtAddr(0x401000)).ok());  // live: INVLPG
  EXPECT_EQ(invlpgs(), 1u);
  ASSERT_TRUE(kernel.map(VirtAddr(layout::kStackBase), PhysAddr(0x5000), kKernelData).ok());
  ASSERT_TRUE(kernel.unmap(VirtAddr(layout::kStackBase)).ok());  // kernel half: cached in every root
  EXPECT_EQ(invlpgs(), 2u);
  ASSERT_TRUE(kernel.map(VirtAddr(0x600000), PhysAddr(0x5000), kKernelData).ok());
  ASSERT_TRUE(kernel.unmap(VirtAddr(0x600000)).ok());  // the kernel root's own low half, not live
  EXPECT_EQ(invlpgs(), 2u);
  kernel.activate();
}

}  // namespace
}  // namespace pagoda
