// Temporary mappings (mm/tempmap/temp_map.hpp) over simulated physical memory and a simulated MMU, built
// twice: for x86_64 (kernel_host_tests) and AArch64 (kernel_host_tests_aarch64). The slot is
// written while a process's root is live, and every access goes through a walk of a root, so
// the lab's failure (the slot's entry written into a table the live root does not use) shows.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <type_traits>

#include "host_support.hpp"
#include "mm/space/address_space.hpp"
#include "mm/tempmap/temp_map.hpp"
#include "page_table_fakes.hpp"

#if defined(PAGODA_TEST_AARCH64)
#include "aarch64_hw_fake.hpp"
#else
#include "x86_hw_fake.hpp"
#endif

namespace pagoda {
namespace {

using F = arch::PageTableFormat;

static_assert(!std::is_copy_constructible_v<TempMap> && !std::is_copy_assignable_v<TempMap>);
static_assert(std::is_move_constructible_v<TempMap> && !std::is_move_assignable_v<TempMap>);

std::vector<std::string>& cpu_log() {
#if defined(PAGODA_TEST_AARCH64)
  return aarch64::hw::fake::cpu().log;
#else
  return x86::hw::fake::cpu().log;
#endif
}

void reset_cpu() {
#if defined(PAGODA_TEST_AARCH64)
  aarch64::hw::fake::cpu() = {};
#else
  x86::hw::fake::cpu() = {};
#endif
}

/// True when the log says the TLB entry of @p va was dropped (INVLPG; TLBI VA...).
bool invalidated(VirtAddr va) {
  const std::string x = test::hex(va.value());
  const auto& log = cpu_log();
  return std::any_of(log.begin(), log.end(), [&](const std::string& e) {
    return (e.rfind("invlpg ", 0) == 0 || e.rfind("tlbi va ", 0) == 0) && e.find(x) != std::string::npos;
  });
}

struct TempMapTest : ::testing::Test {
  test::FakeTableMemory<F::kEntriesPerTable> memory;
  AddressSpace kernel = AddressSpace::create_kernel(memory).release_value();
  TempMapArea area;
  /// Data frames (not tables): the RAM a temp map shows.
  std::map<u64, std::array<u8, kPageSize>> ram;

  void SetUp() override {
    reset_cpu();
    ASSERT_TRUE(kernel.prepare_kernel_half().ok());
    kernel.activate();  // as at boot (AArch64: TTBR1 holds the kernel root from now on)
    ASSERT_TRUE(area.init(kernel, 0).ok());
    TempMapArea::set_current(&area);
  }
  void TearDown() override {
    TempMapArea::set_current(nullptr);
    reset_cpu();  // nothing live: spaces may go
  }

  PhysAddr frame(u64 pa) {
    ram[pa].fill(0);
    return PhysAddr(pa);
  }

  /// The simulated MMU: the byte at @p va as the CPU sees it through @p live's root; fails the
  /// test (and returns nullptr) when that root does not map it writable for the kernel.
  u8* through(const AddressSpace& live, VirtAddr va) {
    const Walk w = live.query(va);
    EXPECT_TRUE(w.mapped()) << "not mapped in the live root: " << test::hex(va.value());
    if (!w.mapped()) return nullptr;
    EXPECT_TRUE(w.perms.write && !w.perms.execute && !w.perms.user) << "a temp map is rw- kernel NX";
    const u64 page = w.pa.align_down(kPageSize).value();
    auto it = ram.find(page);
    EXPECT_NE(it, ram.end()) << "the slot maps " << test::hex(page) << ", not a frame of the test";
    return it == ram.end() ? nullptr : it->second.data() + (w.pa.value() - page);
  }
};

TEST_F(TempMapTest, TheSlotIsTheSameEntryInEveryRootAndGoesAwayWithTheGuard) {
  AddressSpace a = AddressSpace::create_user(kernel).release_value();
  AddressSpace b = AddressSpace::create_user(kernel).release_value();
  a.activate();  // the lab's scenario: a process's root is live while the kernel maps a frame
  const PhysAddr f = frame(0x8000'0000);
  VirtAddr va;
  {
    TempMap map(f);
    va = map.address();
    EXPECT_EQ(va.value(), layout::kTempMapBase);
    EXPECT_EQ(map.frame(), f);
    for (const AddressSpace* s : {&a, &b, &kernel}) {
      const Walk w = s->query(va);
      ASSERT_TRUE(w.mapped());
      EXPECT_EQ(w.pa, f);
      EXPECT_FALSE(w.perms.user);
    }
    cpu_log().clear();
  }
  EXPECT_TRUE(invalidated(va)) << "the slot's translation must be dropped when the guard goes";
  for (const AddressSpace* s : {&a, &b, &kernel}) EXPECT_FALSE(s->query(va).mapped());
  EXPECT_EQ(area.depth(), 0u);
  kernel.activate();  // a must not be live when it goes
}

TEST_F(TempMapTest, DataWrittenWhileOneRootIsLiveIsReadBackThroughAnother) {
  AddressSpace a = AddressSpace::create_user(kernel).release_value();
  AddressSpace b = AddressSpace::create_user(kernel).release_value();
  const PhysAddr f = frame(0x1'2345'6000);  // far above any window
  a.activate();
  {
    TempMap map(f);
    for (usize i = 0; i < kPageSize; i += 8) {
      u8* p = through(a, map.address().offset(i));
      ASSERT_NE(p, nullptr);
      const u64 v = 0x9e3779b97f4a7c15ull * (i + 1);
      std::memcpy(p, &v, 8);
    }
  }
  b.activate();
  TempMap map(f);
  for (usize i = 0; i < kPageSize; i += 8) {
    u64 v;
    std::memcpy(&v, through(b, map.address().offset(i)), 8);
    ASSERT_EQ(v, 0x9e3779b97f4a7c15ull * (i + 1)) << "offset " << i;
  }
  map.reset();
  kernel.activate();
}

TEST_F(TempMapTest, NestedGuardsAreAStackOfDistinctSlots) {
  const PhysAddr f0 = frame(0x9000'0000), f1 = frame(0x9000'1000), f2 = frame(0x9000'2000);
  TempMap m0(f0);
  {
    TempMap m1(f1);
    {
      TempMap m2(f2);
      EXPECT_EQ(area.depth(), 3u);
      EXPECT_EQ(m2.address().value(), m0.address().value() + 2 * kPageSize);
      EXPECT_EQ(kernel.query(m1.address()).pa, f1);
      EXPECT_EQ(kernel.query(m2.address()).pa, f2);
    }
    EXPECT_EQ(area.depth(), 2u);
    TempMap again(f2);  // the freed slot is reused
    EXPECT_EQ(again.slot(), 2u);
  }
  EXPECT_EQ(area.depth(), 1u);
  EXPECT_EQ(kernel.query(m0.address()).pa, f0);
}

TEST_F(TempMapTest, AMovedGuardOwnsTheSlotAndTheOldOneIsReleased) {
  const PhysAddr f = frame(0xa000'0000);
  TempMap first(f);
  TempMap second(std::move(first));
  EXPECT_FALSE(first.live());
  EXPECT_EQ(second.frame(), f);
  EXPECT_EQ(area.depth(), 1u);
  try {
    (void)first.bytes();
    FAIL() << "a moved-from guard was usable";
  } catch (const host::HostPanic& e) {
    EXPECT_NE(std::string(e.what()).find("used after release"), std::string::npos) << e.what();
  }
}

TEST_F(TempMapTest, RunningOutOfSlotsIsNamed) {
  std::vector<TempMap> maps;
  maps.reserve(TempMapArea::kSlots);
  for (usize i = 0; i < TempMapArea::kSlots; ++i) maps.emplace_back(frame(0xb000'0000 + i * kPageSize));
  try {
    TempMap one_more(frame(0xc000'0000));
    FAIL() << "a ninth nested temp map was given a slot";
  } catch (const host::HostPanic& e) {
    EXPECT_NE(std::string(e.what()).find("out of temp-map slots"), std::string::npos) << e.what();
  }
  EXPECT_EQ(area.depth(), TempMapArea::kSlots);
  while (!maps.empty()) maps.pop_back();  // reverse order
  EXPECT_EQ(area.depth(), 0u);
}

TEST_F(TempMapTest, ReleasingOutOfOrderIsNamed) {
  TempMap lower(frame(0xd000'0000));
  TempMap upper(frame(0xd000'1000));
  try {
    lower.reset();
    FAIL() << "a guard was released while a later one was live";
  } catch (const host::HostPanic& e) {
    EXPECT_NE(std::string(e.what()).find("out of order"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(kernel.query(lower.address()).mapped()) << "a refused release must leave the slot mapped";
}

TEST_F(TempMapTest, UseAfterReleaseIsNamed) {
  TempMap map(frame(0xe000'0000));
  map.reset();
  EXPECT_EQ(area.depth(), 0u);
  for (int what = 0; what < 3; ++what) {
    try {
      if (what == 0) (void)map.bytes();
      if (what == 1) (void)map.address();
      if (what == 2) (void)map.frame();
      FAIL() << "a released guard was usable";
    } catch (const host::HostPanic& e) {
      EXPECT_NE(std::string(e.what()).find("used after release"), std::string::npos) << e.what();
    }
  }
  map.reset();  // twice is harmless
}

TEST_F(TempMapTest, TheSlotsLiveInTheSharedKernelHalfOnly) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  TempMapArea wrong;
  EXPECT_EQ(wrong.init(user, 0).error(), Error::InvalidArgument) << "slots in a process's own tables";
  EXPECT_EQ(wrong.init(kernel, TempMapArea::kMaxCpus).error(), Error::InvalidArgument);
  // A user space made after init() still sees the slots: they hang under the shared half.
  AddressSpace later = AddressSpace::create_user(kernel).release_value();
  TempMap map(frame(0xf000'0000));
  EXPECT_EQ(later.query(map.address()).pa.value(), 0xf000'0000u);
}

TEST_F(TempMapTest, ManyMapsLeakNoSlotNoTableAndNeverShowAStaleFrame) {
  AddressSpace a = AddressSpace::create_user(kernel).release_value();
  a.activate();
  const usize tables = memory.live_tables();
  for (u64 i = 0; i < 100'000; ++i) {
    const PhysAddr f(0x4'0000'0000 + (i % 64) * kPageSize);
    TempMap outer(f);
    TempMap inner(PhysAddr(f.value() + 0x100'0000));  // nested, as an interrupt would
    ASSERT_EQ(a.query(outer.address()).pa, f);
    ASSERT_EQ(a.query(inner.address()).pa.value(), f.value() + 0x100'0000);
  }
  EXPECT_EQ(area.depth(), 0u);
  EXPECT_EQ(area.maps(), 200'000u);
  EXPECT_EQ(memory.live_tables(), tables) << "a temp map must never allocate or free a table";
  EXPECT_FALSE(a.query(area.slot_address(0)).mapped());
  kernel.activate();
}

std::string describe(VirtAddr va, bool* known = nullptr) {
  char buffer[200];
  BufferSink sink(buffer, sizeof buffer);
  const bool k = describe_temp_map_address(sink, va);
  if (known) *known = k;
  return std::string(sink.view().data(), sink.view().size());
}

TEST_F(TempMapTest, FaultReportsNameTheSlotAndWhetherItIsLive) {
  EXPECT_NE(describe(area.slot_address(1).offset(8)).find("slot 1 of CPU 0: free"), std::string::npos);
  TempMap m0(frame(0x7000'0000));
  TempMap m1(frame(0x7000'1000));
  EXPECT_NE(describe(m1.address()).find("slot 1 of CPU 0: live, maps frame 0x70001000"), std::string::npos)
      << describe(m1.address());
  bool known = true;
  describe(VirtAddr(layout::kStackBase), &known);
  EXPECT_FALSE(known);
}

}  // namespace
}  // namespace pagoda
