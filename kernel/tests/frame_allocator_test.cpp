#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "host_support.hpp"
#include "mm/frame_allocator.hpp"

namespace pagoda {
namespace {

constexpr u64 kFrame = FrameAllocator::kFrameSize;

// 0-1 MiB usable (excluded by a reservation), a hole, then 1-2 MiB usable, 3-4 MiB usable.
MemoryMap test_map() {
  MemoryMap map;
  EXPECT_TRUE(map.add(PhysAddr(0), 0x9f000, MemoryType::Usable).ok());
  EXPECT_TRUE(map.add(PhysAddr(0xf0000), 0x10000, MemoryType::Reserved).ok());
  EXPECT_TRUE(map.add(PhysAddr(1 * MiB), 1 * MiB, MemoryType::Usable).ok());
  EXPECT_TRUE(map.add(PhysAddr(3 * MiB), 1 * MiB, MemoryType::Usable).ok());
  map.normalise();
  return map;
}

struct Fixture : ::testing::Test {
  MemoryMap map = test_map();
  std::vector<u64> bits = std::vector<u64>(3 * FrameAllocator::words_for(PhysAddr(4 * MiB)));
  // Reserved: the first MiB, and a pretend kernel image at [1 MiB, 1 MiB + 64 KiB).
  const PhysRange reserved[2] = {{PhysAddr(0), 1 * MiB}, {PhysAddr(1 * MiB), 64 * KiB}};
  FrameAllocator frames;

  void SetUp() override {
    ASSERT_TRUE(frames.init(map, Span<u64>(bits.data(), bits.size()), Span<const PhysRange>(reserved, 2)).ok());
  }
};

TEST_F(Fixture, CountsOnlyUnreservedUsableFrames) {
  EXPECT_EQ(frames.managed_frames(), (2 * MiB - 64 * KiB) / kFrame);
  EXPECT_EQ(frames.free_frames(), frames.managed_frames());
}

TEST_F(Fixture, AllocateHighTakesTheHighestFreeFrameFirst) {
  const PhysAddr top = frames.allocate_high().release_value();
  EXPECT_EQ(top.value(), 4 * MiB - kFrame);
  EXPECT_EQ(frames.allocate_high().release_value().value(), 4 * MiB - 2 * kFrame);
  frames.free(top);
  EXPECT_EQ(frames.allocate_high().release_value(), top) << "a freed high frame is taken again first";
  const usize total = frames.free_frames();
  std::set<u64> seen;
  for (usize i = 0; i < total; ++i) seen.insert(frames.allocate_high().release_value().value());
  EXPECT_EQ(seen.size(), total);
  EXPECT_EQ(*seen.begin(), 1 * MiB + 64 * KiB) << "the last frame given is the lowest";
  EXPECT_EQ(frames.allocate_high().error(), Error::NoMemory);
}

TEST_F(Fixture, NeverHandsOutReservedOrHoleFramesAndRunsOutCleanly) {
  std::set<u64> seen;
  const usize total = frames.free_frames();
  for (usize i = 0; i < total; ++i) {
    const Result<PhysAddr> r = frames.allocate();
    ASSERT_TRUE(r.ok());
    const u64 pa = r.value().value();
    EXPECT_EQ(pa % kFrame, 0u);
    const bool in_ram = (pa >= 1 * MiB + 64 * KiB && pa < 2 * MiB) || (pa >= 3 * MiB && pa < 4 * MiB);
    EXPECT_TRUE(in_ram) << std::hex << pa;
    EXPECT_TRUE(seen.insert(pa).second) << "handed out twice: " << std::hex << pa;
  }
  EXPECT_EQ(frames.free_frames(), 0u);
  const Result<PhysAddr> none = frames.allocate();
  ASSERT_TRUE(none.is_error());
  EXPECT_EQ(none.error(), Error::NoMemory);
  for (u64 pa : seen) frames.free(PhysAddr(pa));
  EXPECT_EQ(frames.free_frames(), total);
}

// The limit is honoured to the frame, also inside a bitmap word: every frame below it can be had,
// none at or above it.
TEST_F(Fixture, AllocateBelowHonoursItsLimitToTheFrame) {
  const PhysAddr limit(1 * MiB + 64 * KiB + 5 * kFrame);  // 5 usable frames below, mid-word
  std::set<u64> got;
  for (;;) {
    const Result<PhysAddr> r = frames.allocate_below(limit);
    if (r.is_error()) {
      EXPECT_EQ(r.error(), Error::NoMemory);
      break;
    }
    EXPECT_LT(r.value().value(), limit.value());
    ASSERT_TRUE(got.insert(r.value().value()).second);
  }
  EXPECT_EQ(got.size(), 5u);
}

// Next fit: after frames are given back, the search goes on after the last frame found, and
// comes back to the freed ones only when it wraps around.
TEST_F(Fixture, NextFitGoesOnAfterTheLastFrameFound) {
  std::vector<u64> got;
  for (int i = 0; i < 200; ++i) got.push_back(frames.allocate().value().value());
  for (int i = 0; i < 64; ++i) frames.free(PhysAddr(got[i]));
  const u64 next = frames.allocate().value().value();
  EXPECT_GT(next, got.back());
  std::set<u64> rest;
  while (frames.free_frames() > 0) rest.insert(frames.allocate().value().value());
  for (int i = 0; i < 64; ++i) EXPECT_TRUE(rest.count(got[i])) << "a freed frame is found again after the wrap";
}

TEST_F(Fixture, BadFreesPanicWithTheReason) {
  const PhysAddr f = frames.allocate().value();
  frames.free(f);
  EXPECT_EQ(frames.check_free(f), FreeCheck::DoubleFree);
  try {
    frames.free(f);
    FAIL() << "double free did not panic";
  } catch (const host::HostPanic& e) {
    EXPECT_NE(std::string(e.what()).find("double free"), std::string::npos) << e.what();
  }
  EXPECT_EQ(frames.check_free(PhysAddr(3 * MiB + 17 * kFrame)), FreeCheck::NeverAllocated);
  EXPECT_THROW(frames.free(PhysAddr(3 * MiB + 17 * kFrame)), host::HostPanic);
  EXPECT_EQ(frames.check_free(PhysAddr(1 * MiB)), FreeCheck::NotManaged);      // the "kernel image"
  EXPECT_EQ(frames.check_free(PhysAddr(2 * MiB + kFrame)), FreeCheck::NotManaged);  // a hole
  EXPECT_EQ(frames.check_free(PhysAddr(64 * MiB)), FreeCheck::NotManaged);     // beyond RAM
  EXPECT_EQ(frames.check_free(f.offset(8)), FreeCheck::Misaligned);
  EXPECT_EQ(frames.free_frames(), frames.managed_frames());  // nothing changed by the bad frees
}

TEST_F(Fixture, ReleaseHandsBackReservedRamButNotHoles) {
  const usize before = frames.free_frames();
  frames.release({PhysAddr(1 * MiB), 64 * KiB});        // the "boot tables"
  EXPECT_EQ(frames.free_frames(), before + 64 * KiB / kFrame);
  frames.release({PhysAddr(2 * MiB), 1 * MiB});         // a hole: nothing to hand back
  EXPECT_EQ(frames.free_frames(), before + 64 * KiB / kFrame);
  frames.release({PhysAddr(1 * MiB), 64 * KiB});        // twice: no effect
  EXPECT_EQ(frames.free_frames(), before + 64 * KiB / kFrame);
}

TEST(FrameAllocator, RejectsTooSmallBitmapStorage) {
  MemoryMap map = test_map();
  std::vector<u64> bits(2);
  FrameAllocator frames;
  const Result<void> r = frames.init(map, Span<u64>(bits.data(), bits.size()), {});
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), Error::InvalidArgument);
}

}  // namespace
}  // namespace pagoda
