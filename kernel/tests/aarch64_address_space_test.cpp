// AArch64 address spaces over simulated physical memory and a simulated CPU (TTBR0 with its
// ASID, TTBR1, TLBI): the one TTBR1 root every space shares, user spaces with their own TTBR0
// root and ASID, activation, which invalidations reach the TLB, and the order of barrier,
// invalidation and frees. Built into kernel_host_tests_aarch64, whose arch_impl/ is AArch64's.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "aarch64_hw_fake.hpp"
#include "host_support.hpp"
#include "lib/optional.hpp"
#include "mm/space/address_space.hpp"
#include "mm/base/layout.hpp"
#include "page_table_fakes.hpp"

namespace pagoda {
namespace {

using F = arch::PageTableFormat;
static_assert(kIsSame<F, aarch64::PageTableFormat>, "this binary is built with AArch64's seam headers");

constexpr Perms kUserData{.write = true, .user = true};

struct Aarch64SpaceTest : ::testing::Test {
  test::FakeTableMemory<F::kEntriesPerTable> memory{&aarch64::hw::fake::cpu().log};
  AddressSpace kernel = AddressSpace::create_kernel(memory).release_value();

  void SetUp() override {
    aarch64::hw::fake::cpu() = {};
    ASSERT_TRUE(kernel.prepare_kernel_half().ok());
    kernel.activate();
    log().clear();
  }
  void TearDown() override { aarch64::hw::fake::cpu() = {}; }  // nothing live: spaces may go
  static std::vector<std::string>& log() { return aarch64::hw::fake::cpu().log; }
  static usize index_of(const std::string& event) {
    const auto it = std::find(log().begin(), log().end(), event);
    return it == log().end() ? ~usize{0} : usize(it - log().begin());
  }
};

TEST_F(Aarch64SpaceTest, TheKernelSpaceOwnsTwoRootsAndLoadsBoth) {
  const VirtAddr low(0x4020'0000), high(layout::kKernelImageBase);
  EXPECT_NE(kernel.arch().tree_for(low).root(), kernel.arch().tree_for(high).root());
  EXPECT_EQ(kernel.root(), kernel.arch().kernel_root());
  aarch64::hw::fake::cpu() = {};
  kernel.activate();
  EXPECT_EQ(log(), (std::vector<std::string>{"kernel roots " + test::hex(kernel.arch().kernel_root().value()) + " " +
                                             test::hex(kernel.arch().lower_root().value())}));
  EXPECT_TRUE(aarch64::hw::fake::cpu().wxn) << "the kernel's own tables come with WXN";
  EXPECT_TRUE(kernel.is_live());
  EXPECT_EQ(kernel.arch().asid(), 0u);
}

TEST_F(Aarch64SpaceTest, AUserSpaceSharesTheOneKernelRootWithoutCopyingAnything) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  const u64* top = user.arch().tree_for(VirtAddr(0)).root_entries();
  for (usize i = 0; i < F::kEntriesPerTable; ++i) EXPECT_EQ(top[i], 0u) << "entry " << i;
  EXPECT_EQ(user.arch().kernel_root(), kernel.arch().kernel_root());
  const VirtAddr stack(layout::kStackBase + 0x5000);
  ASSERT_TRUE(kernel.map(stack, PhysAddr(0x4012'3000), kKernelData).ok());  // after the user space
  const Walk w = user.query(stack);
  ASSERT_TRUE(w.mapped());
  EXPECT_EQ(w.pa.value(), 0x4012'3000u);
  EXPECT_EQ(w.root, kernel.arch().kernel_root());
}

// Every table descriptor of TTBR1's kernel half forbids EL0 (APTable[0]), the counterpart of x86's
// US clear; TTBR0's table descriptors restrict nothing (the leaf decides).
TEST_F(Aarch64SpaceTest, NoTableDescriptorOfTheKernelHalfAllowsEl0) {
  const VirtAddr high(layout::kStackBase + 0x5000), low(0x40'0000);
  ASSERT_TRUE(kernel.map(high, PhysAddr(0x4012'3000), kKernelData).ok());
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  ASSERT_TRUE(user.map(low, PhysAddr(0x4012'4000), kUserData).ok());
  const Walk k = user.query(high), u = user.query(low);
  ASSERT_TRUE(k.mapped() && u.mapped());
  for (usize l = 0; l + 1 < k.depth; ++l) EXPECT_TRUE(k.levels[l].entry & F::kApTableNoEl0) << "level " << l;
  for (usize l = 0; l + 1 < u.depth; ++l) EXPECT_FALSE(u.levels[l].entry & F::kApTableNoEl0) << "level " << l;
  EXPECT_TRUE(u.perms.user);
  ASSERT_TRUE(kernel.protect(high, kPageSize, Perms{.write = true, .user = true}).ok());
  EXPECT_FALSE(kernel.query(high).perms.user) << "a leaf made EL0-accessible by mistake still gives EL0 nothing";
}

TEST_F(Aarch64SpaceTest, AUserSpaceChangesOnlyItsOwnHalfButAllOfIt) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  EXPECT_EQ(user.map(VirtAddr(layout::kStackBase), PhysAddr(0x1000), kKernelData).error(), Error::InvalidArgument);
  EXPECT_TRUE(user.map(VirtAddr(0x0000'ffff'ffff'f000), PhysAddr(0x1000), kUserData).ok())
      << "TTBR0's range is all 48 bits (no x86-style hole at 2^47)";
  EXPECT_EQ(user.map_range(VirtAddr(0x0000'ffff'ffff'f000), PhysAddr(0x1000), 2 * kPageSize, kUserData).error(),
            Error::InvalidArgument);
  ASSERT_TRUE(user.map(VirtAddr(0x400000), PhysAddr(0x2000), kUserData).ok());
  EXPECT_FALSE(kernel.query(VirtAddr(0x400000)).mapped()) << "the kernel's TTBR0 tree is its own";
}

TEST_F(Aarch64SpaceTest, EachUserSpaceHasItsOwnAsidUntilItGoes) {
  u16 first;
  {
    AddressSpace a = AddressSpace::create_user(kernel).release_value();
    AddressSpace b = AddressSpace::create_user(kernel).release_value();
    first = a.arch().asid();
    EXPECT_NE(first, 0u);
    EXPECT_NE(b.arch().asid(), first);
    EXPECT_NE(b.arch().asid(), 0u);
    log().clear();
  }
  // Going away: its TLB entries before its ASID and tables can be reused.
  EXPECT_NE(index_of("tlbi asid " + std::to_string(first)), ~usize{0});
  EXPECT_LT(index_of("barrier"), index_of("tlbi asid " + std::to_string(first)));
  AddressSpace again = AddressSpace::create_user(kernel).release_value();
  EXPECT_NE(again.arch().asid(), 0u);
}

TEST_F(Aarch64SpaceTest, AnAsidThatMayStillTagTranslationsIsNeverHandedOutAgain) {
  // A space that ran and went while another process's root stayed in TTBR0 (no switch to the
  // kernel's roots, whose TLBI VMALLE1IS drops everything): with one CPU its ASID is clean only
  // through the TLBI ASIDE1 of ~Aarch64AddressSpace (lab 3's end).
  AddressSpace other = AddressSpace::create_user(kernel).release_value();
  u16 asid;
  {
    AddressSpace a = AddressSpace::create_user(kernel).release_value();
    asid = a.arch().asid();
    a.activate();
    other.activate();
    EXPECT_TRUE(aarch64::hw::asid_may_be_cached(asid));
  }
  EXPECT_FALSE(aarch64::hw::asid_may_be_cached(asid));
  AddressSpace b = AddressSpace::create_user(kernel).release_value();
  ASSERT_EQ(b.arch().asid(), asid) << "the lowest free ASID again";
  // An ASID TTBR0 was loaded with and that nothing invalidated since: a new space that gets it
  // must not load it (its first activate() says why).
  AddressSpace c = AddressSpace::create_user(kernel).release_value();
  aarch64::hw::load_ttbr0(PhysAddr(0x1000), c.arch().asid());
  other.activate();
  EXPECT_THROW(c.activate(), host::HostPanic);
  aarch64::hw::invalidate_asid(c.arch().asid());
  c.activate();
  other.activate();
  c.activate();       // its own entries since: not another space's
  kernel.activate();  // nothing live: the spaces may go
}

TEST_F(Aarch64SpaceTest, AsidsRunOut) {
  std::vector<AddressSpace> spaces;
  for (u16 i = 1; i < arch::ArchAddressSpace::kAsids; ++i)
    spaces.push_back(AddressSpace::create_user(kernel).release_value());
  const Result<AddressSpace> one_more = AddressSpace::create_user(kernel);
  ASSERT_TRUE(one_more.is_error());
  EXPECT_EQ(one_more.error(), Error::NoMemory);
  spaces.pop_back();
  EXPECT_TRUE(AddressSpace::create_user(kernel).ok()) << "a freed ASID is handed out again";
}

TEST_F(Aarch64SpaceTest, ActivateChecksThatTtbr1StillHoldsTheSharedKernelRoot) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  user.activate();
  EXPECT_TRUE(user.is_live());
  EXPECT_FALSE(kernel.is_live());
  EXPECT_EQ(log().back(),
            "ttbr0 " + test::hex(user.arch().lower_root().value()) + " asid " + std::to_string(user.arch().asid()));
  kernel.activate();
  // A TTBR1 without the kernel's tables: the next instruction after a switch would fault, and
  // so would the exception taken for it. The switch refuses instead.
  aarch64::hw::fake::cpu().ttbr1 = PhysAddr(0x7777'0000);  // an empty table, say
  EXPECT_THROW(user.activate(), host::HostPanic);
  EXPECT_EQ(aarch64::hw::fake::cpu().ttbr0.root, kernel.arch().lower_root()) << "the switch never happened";
}

TEST_F(Aarch64SpaceTest, InvalidationsAreTaggedWithTheAsidUnlessTheyAreTheKernelsOrGlobal) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  const std::string asid = std::to_string(user.arch().asid());
  ASSERT_TRUE(user.map_range(VirtAddr(0x400000), PhysAddr(0x1000), 4 * kPageSize, kUserData).ok());
  log().clear();
  ASSERT_TRUE(user.unmap(VirtAddr(0x400000)).ok());  // not live: its ASID may still be cached
  EXPECT_NE(index_of("tlbi va 0x400000 asid " + asid), ~usize{0});
  ASSERT_TRUE(kernel.map(VirtAddr(layout::kStackBase), PhysAddr(0x5000), kKernelData).ok());
  log().clear();
  ASSERT_TRUE(kernel.unmap(VirtAddr(layout::kStackBase)).ok());  // the kernel half: under any ASID
  EXPECT_NE(index_of("tlbi va " + test::hex(layout::kStackBase)), ~usize{0});
  ASSERT_TRUE(kernel.map(VirtAddr(0x4020'0000), PhysAddr(0x4020'0000), kKernelText).ok());
  log().clear();
  ASSERT_TRUE(kernel.unmap(VirtAddr(0x4020'0000)).ok());  // the kernel's lower half (lab 1): ASID 0
  EXPECT_NE(index_of("tlbi va 0x40200000 asid 0"), ~usize{0});
  ASSERT_TRUE(user.map(VirtAddr(0x500000), PhysAddr(0x1000), Perms{.write = true, .user = true, .global = true}).ok());
  log().clear();
  ASSERT_TRUE(user.unmap(VirtAddr(0x500000)).ok());  // global: under any ASID
  EXPECT_NE(index_of("tlbi va 0x500000"), ~usize{0});
}

TEST_F(Aarch64SpaceTest, BarrierThenInvalidationThenFrees) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  ASSERT_TRUE(user.map(VirtAddr(0x0000'0080'0000'0000), PhysAddr(0x1000), kUserData).ok());
  log().clear();
  ASSERT_TRUE(user.unmap(VirtAddr(0x0000'0080'0000'0000)).ok());  // empties an L3, an L2 and an L1 table
  const usize barrier = index_of("barrier");
  const auto first_free = std::find_if(log().begin(), log().end(),
                                       [](const std::string& e) { return e.rfind("free", 0) == 0; });
  const auto last_tlbi = std::find_if(log().rbegin(), log().rend(),
                                      [](const std::string& e) { return e.rfind("tlbi", 0) == 0; });
  ASSERT_NE(barrier, ~usize{0});
  ASSERT_NE(first_free, log().end());
  ASSERT_NE(last_tlbi, log().rend());
  EXPECT_LT(barrier, usize(first_free - log().begin()));
  EXPECT_LT(usize(log().rend() - last_tlbi - 1), usize(first_free - log().begin()))
      << "a table frame was freed before the TLB forgot the walks through it";
  EXPECT_EQ(std::count_if(log().begin(), log().end(), [](const std::string& e) { return e.rfind("free", 0) == 0; }), 3);
}

TEST_F(Aarch64SpaceTest, ALiveEntryChangesThroughAnInvalidOne) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  const VirtAddr va(0x400000);
  ASSERT_TRUE(user.map(va, PhysAddr(0x1000), kUserData).ok());
  log().clear();
  {
    ConsistencyBatch batch = user.batch();
    ASSERT_TRUE(user.cursor(batch, va).remap(PhysAddr(0x2000), kUserData).ok());
    // Break-before-make: by the time the new entry is written, the old translation is gone.
    EXPECT_NE(index_of("tlbi va 0x400000 asid " + std::to_string(user.arch().asid())), ~usize{0});
    EXPECT_LT(index_of("barrier"), index_of("tlbi va 0x400000 asid " + std::to_string(user.arch().asid())));
  }
  EXPECT_EQ(user.query(va).pa.value(), 0x2000u);
}

// The pre-switch check (AddressSpace::activate) on AArch64: a range of the kernel half is walked
// in the one TTBR1 root a user space shares; the kernel half is shared when TTBR1 holds it.
TEST_F(Aarch64SpaceTest, ThePreSwitchCheckWalksTheKernelHalfInTheSharedTtbr1Root) {
  constexpr Access kWrite{.write = true};
  const u64 stack = layout::kStackBase + 0x1000, sp = stack + 2 * kPageSize - 0x40;
  ASSERT_TRUE(kernel.map_range(VirtAddr(stack), PhysAddr(0x4030'0000), 2 * kPageSize, kKernelData).ok());
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  aarch64::hw::fake::cpu().critical = {{"the running stack", VirtAddr(stack), 2 * kPageSize, kWrite, VirtAddr(sp)}};
  EXPECT_TRUE(user.check_switch(Span<const CriticalRange>(aarch64::hw::fake::cpu().critical.data(), 1)).ok());
  user.activate();
  EXPECT_TRUE(user.is_live());
  kernel.activate();

  ASSERT_TRUE(kernel.unmap(VirtAddr(stack)).ok());  // through the kernel: every space loses it
  const SwitchRefusal r = user.check_switch(Span<const CriticalRange>(aarch64::hw::fake::cpu().critical.data(), 1));
  ASSERT_EQ(r.kind, SwitchRefusal::Kind::NotMapped);
  EXPECT_EQ(r.va.value(), stack);
  EXPECT_EQ(r.walk.root, kernel.arch().kernel_root()) << "walked in TTBR1's root, not the user's TTBR0 root";
  EXPECT_EQ(r.root, kernel.arch().kernel_root()) << "the refusal names the root it walked (\"new root ...\")";
  log().clear();
  EXPECT_THROW(user.activate(), host::HostPanic);
  EXPECT_EQ(index_of("ttbr0 " + test::hex(user.arch().lower_root().value()) + " asid " +
                     std::to_string(user.arch().asid())),
            ~usize{0})
      << "a refused switch loads nothing";
}

TEST_F(Aarch64SpaceTest, AForeignTtbr1IsRefusedAsNotSharingTheKernelHalf) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  EXPECT_TRUE(user.check_switch({}).ok());
  aarch64::hw::fake::cpu().ttbr1 = PhysAddr(0x7777'0000);
  const SwitchRefusal r = user.check_switch({});
  ASSERT_EQ(r.kind, SwitchRefusal::Kind::KernelHalf);
  EXPECT_EQ(std::string(r.detail),
            "TTBR1_EL1 holds 0x77770000, not the kernel root " + test::hex(kernel.arch().kernel_root().value()));
  EXPECT_TRUE(kernel.check_switch({}).ok()) << "the kernel space loads TTBR1 itself";
}

TEST_F(Aarch64SpaceTest, TwoCpusReuseAnAsidOnlyInANewGenerationAfterEachCpusOwnFlush) {
  // Lab 8's generations over two simulated CPUs (each with its own TTBRs and cached ASIDs).
  host::g_cpus_online = 2;
  const auto on = [](u32 cpu) {
    host::g_cpu = cpu;
    return aarch64::hw::fake::cpu().log.size();
  };
  const auto flushed_since = [&](usize from) {
    const auto& events = log();
    return std::find(events.begin() + long(from), events.end(), "tlbi all (this CPU)") != events.end();
  };
  const auto invalidated_since = [&](usize from) {
    const auto& events = log();
    return std::any_of(events.begin() + long(from), events.end(),
                       [](const std::string& e) { return e.starts_with("tlbi"); });
  };
  on(1);
  aarch64::hw::fake::cpu() = {};
  kernel.arch().activate();  // CPU 1 comes online on the kernel's roots
  u16 asid;
  usize logged[2];
  {
    AddressSpace r = AddressSpace::create_user(kernel).release_value();
    asid = r.arch().asid();
    r.arch().activate();       // R runs on CPU 1
    kernel.arch().activate();  // and leaves its ASID in TTBR0 (the empty lower half)
    logged[1] = log().size();
    logged[0] = on(0);
  }                                            // R ends on CPU 0: no flush anywhere, the ASID stays taken
  EXPECT_FALSE(invalidated_since(logged[0]));  // (the table frames went back: the fake memory logs them here)
  on(1);
  EXPECT_FALSE(invalidated_since(logged[1]));
  EXPECT_TRUE(aarch64::hw::asid_may_be_cached(asid)) << "CPU 1 still holds what R's ASID tagged";
  on(0);
  // A space made before the rollover, and enough more (each made and dropped) to run out.
  AddressSpace old = AddressSpace::create_user(kernel).release_value();
  const u16 old_asid = old.arch().asid();
  Optional<AddressSpace> n;
  for (usize made = 0; !n && made < 2 * aarch64::Aarch64AddressSpace::kAsids; ++made) {
    AddressSpace s = AddressSpace::create_user(kernel).release_value();
    EXPECT_NE(s.arch().asid(), old_asid) << "an ASID of a live space handed out again in its generation";
    if (s.arch().asid() == asid) n.emplace(move(s));
  }
  ASSERT_TRUE(n) << "R's ASID never came back: the ASIDs never rolled over";
  // CPU 0 switches into the new generation first: its own flush, not CPU 1's.
  AddressSpace q = AddressSpace::create_user(kernel).release_value();
  usize from = on(0);
  q.arch().activate();
  EXPECT_TRUE(flushed_since(from)) << "CPU 0's first switch into the new generation flushes its TLB";
  from = log().size();
  kernel.arch().activate();
  n->arch().activate();
  EXPECT_FALSE(flushed_since(from)) << "one flush per CPU and generation";
  kernel.arch().activate();
  from = on(1);
  EXPECT_NO_THROW(n->arch().activate()) << "CPU 1 loads R's ASID again only after its own flush";
  EXPECT_TRUE(flushed_since(from));
  // A space of the old generation takes a new ASID at its next switch, on either CPU.
  old.arch().activate();
  EXPECT_NE(old.arch().asid(), old_asid);
  EXPECT_NE(old.arch().asid(), n->arch().asid());
  kernel.arch().activate();
  aarch64::hw::fake::cpu() = {};  // (CPU 1's)
  on(0);
  host::g_cpus_online = 1;  // (the spaces end as lab 3's do: their ASIDs given back, for the next tests)
}

}  // namespace
}  // namespace pagoda
