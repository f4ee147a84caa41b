// Lab 8 on the host: the CPUs of an address space (its mask, kept by AddressSpace::activate), the
// shootdowns x86_64's invalidations ask for (a user page to the mask, the kernel half to every
// CPU, past kShootdownPages pages every translation), and the order of a batch: its frames go
// back only after every CPU that may cache the space dropped them. The host plays one CPU at a
// time (host::g_cpu) and sees each shootdown (host::g_shootdown), which here drops the pages from
// fake TLBs of the other CPUs.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "core/shootdown.hpp"
#include "host_support.hpp"
#include "mm/base/layout.hpp"
#include "mm/space/address_space.hpp"
#include "page_table_fakes.hpp"
#include "x86_hw_fake.hpp"

namespace pagoda {
namespace {

using F = arch::PageTableFormat;
constexpr u32 kCpu1 = u32{1} << 1;
constexpr Perms kUserData{.write = true, .user = true};

struct Sent {
  u32 targets;
  std::vector<uptr> pages;  ///< empty when count is kShootdownAll
  bool all;
};

/// Each CPU's TLB, as the set of pages it may translate; what the frames released saw.
struct Machine {
  std::set<uptr> tlb[2];
  std::vector<Sent> sent;
  std::vector<std::string> events;
};
Machine* g_machine = nullptr;

struct ShootdownTest : ::testing::Test {
  test::FakeTableMemory<F::kEntriesPerTable> memory;
  AddressSpace kernel = AddressSpace::create_kernel(memory).release_value();
  Machine machine;

  void SetUp() override {
    x86::hw::fake::cpu() = {};
    ASSERT_TRUE(kernel.prepare_kernel_half().ok());
    g_machine = &machine;
    host::g_cpu = 0;
    host::g_shootdown = [](u32 targets, const uptr* pages, usize count) {
      Machine& m = *g_machine;
      Sent s{targets, {}, count == kShootdownAll};
      if (!s.all) s.pages.assign(pages, pages + count);
      m.sent.push_back(s);
      for (u32 cpu = 1; cpu < 2; ++cpu) {
        if ((targets >> cpu & 1) == 0) continue;
        if (s.all) m.tlb[cpu].clear();
        for (uptr p : s.pages) m.tlb[cpu].erase(p);
      }
      m.events.push_back("shootdown");
    };
    ConsistencyBatch::set_frame_release([](PhysAddr frame) {
      g_machine->events.push_back("release " + test::hex(frame.value()) +
                                  (g_machine->tlb[1].empty() ? "" : " while CPU 1 still translates a page"));
    });
  }
  void TearDown() override {
    host::g_shootdown = nullptr;
    host::g_cpu = 0;
    g_machine = nullptr;
    x86::hw::fake::cpu().cr3 = PhysAddr();
  }
};

TEST_F(ShootdownTest, ActivateJoinsTheMaskAndARealSwitchLeavesIt) {
  AddressSpace a = AddressSpace::create_user(kernel).release_value();
  AddressSpace b = AddressSpace::create_user(kernel).release_value();
  EXPECT_EQ(a.arch().cpus(), 0u) << "a space that never ran is in no CPU's TLB";
  host::g_cpu = 1;
  a.activate();
  EXPECT_EQ(a.arch().cpus(), kCpu1) << "CPU 1 loaded a's root without joining a's mask";
  b.activate();
  EXPECT_EQ(b.arch().cpus(), kCpu1);
  EXPECT_EQ(a.arch().cpus(), 0u) << "x86_64: loading b's root (a CR3 write) dropped a's translations on CPU 1, "
                                    "which must leave a's mask";
  kernel.activate();  // (nothing live when the spaces go)
}

TEST_F(ShootdownTest, AUserPageGoesToTheMaskAndTheKernelHalfToEveryCpu) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  const VirtAddr va(0x40'0000);
  ASSERT_TRUE(user.map(va, PhysAddr(0x124000), kUserData).ok());
  ASSERT_TRUE(user.unmap(va).ok());
  for (const Sent& s : machine.sent) EXPECT_EQ(s.targets & ~u32{1}, 0u) << "a space no CPU ran: no one to tell";
  user.arch().add_cpu(1);
  machine.sent.clear();
  ASSERT_TRUE(user.map(va, PhysAddr(0x124000), kUserData).ok());
  ASSERT_TRUE(user.unmap(va).ok());
  ASSERT_EQ(machine.sent.size(), 1u) << "one unmap of a page of a space CPU 1 runs: one shootdown";
  EXPECT_EQ(machine.sent[0].targets & kCpu1, kCpu1);
  EXPECT_EQ(machine.sent[0].pages, std::vector<uptr>{va.value()});
  const VirtAddr high(layout::kStackBase + 0x5000);
  ASSERT_TRUE(kernel.map(high, PhysAddr(0x123000), kKernelData).ok());
  machine.sent.clear();
  ASSERT_TRUE(kernel.unmap(high).ok());
  ASSERT_EQ(machine.sent.size(), 1u);
  EXPECT_EQ(machine.sent[0].targets, ~u32{0}) << "the kernel half is in every root: every CPU must drop it";
}

TEST_F(ShootdownTest, OneShootdownPerBatchAndPastTheLimitEveryTranslation) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  user.arch().add_cpu(1);
  const VirtAddr va(0x40'0000);
  ASSERT_TRUE(user.map_range(va, PhysAddr(0x200000), 4 * kPageSize, kUserData).ok());
  ASSERT_TRUE(user.unmap_range(va, 4 * kPageSize).ok());
  ASSERT_EQ(machine.sent.size(), 1u) << "4 pages in one batch: one request";
  EXPECT_EQ(machine.sent[0].pages.size(), 4u);
  machine.sent.clear();
  const u64 n = kShootdownPages + 1;
  ASSERT_TRUE(user.map_range(va, PhysAddr(0x200000), n * kPageSize, kUserData).ok());
  ASSERT_TRUE(user.unmap_range(va, n * kPageSize).ok());
  ASSERT_EQ(machine.sent.size(), 1u);
  EXPECT_TRUE(machine.sent[0].all) << "past kShootdownPages pages one request asks for every translation";
  machine.sent.clear();
  const u64 many = ConsistencyBatch::kMaxPages + 8;  // the batch flushes the whole space instead
  ASSERT_TRUE(user.map_range(va, PhysAddr(0x200000), many * kPageSize, kUserData).ok());
  ASSERT_TRUE(user.unmap_range(va, many * kPageSize).ok());
  ASSERT_EQ(machine.sent.size(), 1u) << "a batch that flushed the whole space must tell CPU 1 too";
  EXPECT_TRUE(machine.sent[0].all);
  EXPECT_EQ(machine.sent[0].targets & kCpu1, kCpu1);
}

TEST_F(ShootdownTest, FramesGoBackOnlyAfterEveryCpuDroppedThem) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  const VirtAddr va(0x40'0000);
  const PhysAddr frame(0x124000);
  ASSERT_TRUE(user.map(va, frame, kUserData).ok());
  host::g_cpu = 1;
  user.activate();  // CPU 1 runs the space, and caches the page
  machine.tlb[1].insert(va.value());
  host::g_cpu = 0;
  {
    ConsistencyBatch batch = user.batch();
    AddressSpace::Cursor c = user.cursor(batch, va);
    batch.release_frame(c.unmap().value());
  }
  EXPECT_EQ(machine.events, (std::vector<std::string>{"shootdown", "release " + test::hex(frame.value())}))
      << "the frame went back before CPU 1 dropped its translation (release_after_acks: tlb_.finish() first)";
  host::g_cpu = 1;
  kernel.activate();
}

TEST_F(ShootdownTest, IdleKeepsTheLastRootMissesNoChangeAndLetsItGoBeforeItDies) {
  host::g_cpus_online = 2;
  host::g_local_flushes[1] = 0;
  {
    AddressSpace a = AddressSpace::create_user(kernel).release_value();
    const VirtAddr va(0x40'0000);
    ASSERT_TRUE(a.map(va.offset(kPageSize), PhysAddr(0x125000), kUserData).ok());  // (keeps va's tables)
    host::g_cpu = 1;
    a.activate();
    kernel.activate();  // CPU 1 idles
    EXPECT_EQ(x86::hw::fake::cpu().cr3, a.root()) << "the switch to idle loaded a root: no lazy TLB";
    EXPECT_EQ(a.arch().cpus(), kCpu1) << "CPU 1, idle in a's root, must stay in a's mask";
    EXPECT_EQ(a.arch().lazy(), kCpu1);
    host::g_cpu = 0;
    machine.sent.clear();
    ASSERT_TRUE(a.map(va, PhysAddr(0x124000), kUserData).ok());
    ASSERT_TRUE(a.unmap(va).ok());
    for (const Sent& sent : machine.sent)
      EXPECT_EQ(sent.targets & kCpu1, 0u) << "an idle CPU is left alone (no table was freed: the neighbour keeps it)";
    EXPECT_EQ(a.arch().missed(), kCpu1) << "and told what it missed";
    host::g_cpu = 1;
    a.activate();  // back into the kept root
    EXPECT_EQ(host::g_local_flushes[1], 1u) << "the switch back in did not drop what CPU 1 missed";
    EXPECT_EQ(a.arch().lazy() | a.arch().missed(), 0u);
    kernel.activate();  // idle again, in a's root, as CPU 0 destroys a
    host::g_cpu = 0;
    ASSERT_TRUE(a.unmap(va.offset(kPageSize)).ok());
  }
  EXPECT_EQ(x86::hw::fake::cpu().cr3, kernel.root()) << "a died while CPU 1 idled in its root, which it still holds";
  host::g_cpus_online = 1;
  host::g_cpu = 0;
}

TEST_F(ShootdownTest, ATableGoesBackOnlyAfterEveryCpuWithTheRootDroppedItsWalksTheLazyOnesToo) {
  host::g_cpus_online = 2;
  {
    AddressSpace a = AddressSpace::create_user(kernel).release_value();
    const VirtAddr va(0x40'0000);
    ASSERT_TRUE(a.map(va, PhysAddr(0x124000), kUserData).ok());  // (its page tables made)
    host::g_cpu = 1;
    a.activate();
    kernel.activate();  // CPU 1 idles lazily, a's root still loaded: it may walk a's tables
    host::g_cpu = 0;
    const usize before = memory.live_tables();
    usize live_at_shootdown = 0;
    const auto record = host::g_shootdown;
    host::g_shootdown = [&](u32 targets, const uptr* pages, usize count) {
      live_at_shootdown = memory.live_tables();
      record(targets, pages, count);
    };
    machine.sent.clear();
    ASSERT_TRUE(a.unmap(va).ok());  // the last page under its tables: they go
    host::g_shootdown = record;
    ASSERT_LT(memory.live_tables(), before) << "the unmap of the only page freed no table";
    ASSERT_EQ(machine.sent.size(), 1u) << "a batch that frees a table of a space CPU 1 holds sends one shootdown";
    EXPECT_EQ(machine.sent[0].targets & kCpu1, kCpu1)
        << "CPU 1, idle in a's root, was left alone although a table of a went back: it may walk through it";
    EXPECT_EQ(live_at_shootdown, before) << "the tables went back before the shootdown returned";
    host::g_cpu = 1;
    a.activate();
    kernel.activate();
    host::g_cpu = 0;
  }
  host::g_cpus_online = 1;
  host::g_cpu = 0;
}

}  // namespace
}  // namespace pagoda
