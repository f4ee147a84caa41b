#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "host_support.hpp"
#include "mm/phys/frame_allocator.hpp"

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

// allocate_high() starts at a hint (the highest word that may hold a free frame): it must still
// give the highest free frame every time, never a used one, and find frames freed below and
// above the hint, and frames released later, again.
TEST_F(Fixture, AllocateHighHintNeverReturnsAUsedFrameAndFindsFreesBelowAndAbove) {
  // Fill the top 2 words (128 frames) and a few more, mixing in allocate_below(), which takes
  // low frames and must not confuse the hint.
  std::set<u64> used;
  for (int i = 0; i < 140; ++i) {
    const PhysAddr f = frames.allocate_high().release_value();
    EXPECT_TRUE(used.insert(f.value()).second) << "handed out twice: " << std::hex << f.value();
    EXPECT_EQ(f.value(), 4 * MiB - (i + 1) * kFrame) << "not the highest free frame";
    if (i % 16 == 0) EXPECT_TRUE(used.insert(frames.allocate().release_value().value()).second);
  }
  // A free far below the hint's word (in the 1-2 MiB range) and one just below: both found again
  // once everything above them is taken, in order, highest first.
  const u64 low = 1 * MiB + 64 * KiB + 70 * kFrame;
  ASSERT_TRUE(used.count(low) == 0);
  const PhysAddr a = frames.allocate_high().release_value();  // 4 MiB - 141 frames
  frames.free(a);
  EXPECT_EQ(frames.allocate_high().release_value(), a) << "a free at the hint's word is found again";
  // A free above the hint (the very top frame) raises it: found next, not the next lower one.
  frames.free(PhysAddr(4 * MiB - kFrame));
  EXPECT_EQ(frames.allocate_high().release_value().value(), 4 * MiB - kFrame) << "a free above the hint";
  frames.free(PhysAddr(4 * MiB - 64 * kFrame));
  frames.free(PhysAddr(4 * MiB - 65 * kFrame));
  EXPECT_EQ(frames.allocate_high().release_value().value(), 4 * MiB - 64 * kFrame);
  EXPECT_EQ(frames.allocate_high().release_value().value(), 4 * MiB - 65 * kFrame);
  // Drain the rest: every frame exactly once, none used, strictly descending.
  const usize left = frames.free_frames();
  u64 previous = ~u64{0};
  for (usize i = 0; i < left; ++i) {
    const u64 f = frames.allocate_high().release_value().value();
    EXPECT_LT(f, previous) << "not descending: the hint skipped a free frame";
    EXPECT_TRUE(used.insert(f).second) << "handed out a used frame: " << std::hex << f;
    previous = f;
  }
  EXPECT_EQ(frames.allocate_high().error(), Error::NoMemory);
  // Out of memory drops the hint to the bottom; a free anywhere (here: high) raises it again.
  frames.free(PhysAddr(3 * MiB + 5 * kFrame));
  EXPECT_EQ(frames.allocate_high().release_value().value(), 3 * MiB + 5 * kFrame);
  frames.free(PhysAddr(low));
  EXPECT_EQ(frames.allocate_high().release_value().value(), low);
}

// release() hands frames to the allocator above the hint: allocate_high() must see them.
TEST_F(Fixture, AllocateHighFindsFramesReleasedAboveTheHint) {
  for (usize n = frames.free_frames(); n > 0; --n) (void)frames.allocate_high().release_value();
  EXPECT_EQ(frames.allocate_high().error(), Error::NoMemory);
  frames.release(PhysRange{PhysAddr(1 * MiB), 2 * kFrame});  // the pretend image's first frames
  EXPECT_EQ(frames.allocate_high().release_value().value(), 1 * MiB + kFrame);
  EXPECT_EQ(frames.allocate_high().release_value().value(), 1 * MiB);
}

// The first run of @p count free frames below @p limit, found bit by bit from the allocator's
// own bitmaps: what allocate_contiguous_below() must return (0: none).
u64 first_free_run(const FrameAllocator& frames, usize count, u64 limit) {
  const Span<const u64> managed = frames.managed_bitmap(), used = frames.used_bitmap();
  u64 run = 0;
  for (u64 f = 0; f < managed.size() * 64 && f < limit / kFrame; ++f) {
    const bool free = ((managed[f / 64] >> (f % 64)) & 1) && !((used[f / 64] >> (f % 64)) & 1);
    run = free ? run + 1 : 0;
    if (run == count) return (f + 1 - count) * kFrame;
  }
  return 0;
}

// allocate_contiguous_below() skips whole words (none free, or all free while the run is still
// short): it must find exactly the first run the bit-by-bit search finds, for runs shorter and
// longer than a word, across word boundaries, under limits inside a word.
TEST_F(Fixture, AllocateContiguousFindsTheFirstRunLikeABitByBitSearch) {
  // Holes of assorted sizes: in every other stretch of 150 frames about one frame in 7 stays
  // used; the stretches between are wholly free (whole free words among them).
  std::vector<u64> taken;
  u64 seed = 12345;
  for (usize n = frames.free_frames(); n > 0; --n) {
    const PhysAddr f = frames.allocate().release_value();
    taken.push_back(f.value());
  }
  for (usize i = 0; i < taken.size(); ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    if ((i / 150) % 2 == 1 || (seed >> 33) % 7 != 0) frames.free(PhysAddr(taken[i]));
  }
  for (usize count : {1u, 2u, 3u, 17u, 63u, 64u, 65u, 100u, 127u, 128u, 129u, 150u, 151u, 300u}) {
    for (u64 limit : {u64{4 * MiB}, u64{3 * MiB + 40 * kFrame}, u64{2 * MiB}, u64{1 * MiB + 200 * kFrame}}) {
      const u64 expected = first_free_run(frames, count, limit);
      const Result<PhysAddr> got = frames.allocate_contiguous_below(count, PhysAddr(limit));
      if (expected == 0) {
        EXPECT_TRUE(got.is_error()) << count << " frames below " << std::hex << limit;
        continue;
      }
      ASSERT_TRUE(got.ok()) << count << " frames below " << std::hex << limit;
      EXPECT_EQ(got.value().value(), expected) << count << " frames below " << std::hex << limit;
      for (usize i = 0; i < count; ++i) frames.free(got.value().offset(i * kFrame));
    }
  }
}

// RAM far above physical 0 (AArch64's starts at 1 GiB): thousands of words with no managed
// frame lie below it, and the run is still found right at its start.
TEST(FrameAllocatorHighRam, AllocateContiguousFindsRunsInRamThatStartsHigh) {
  MemoryMap map;
  ASSERT_TRUE(map.add(PhysAddr(1024 * MiB), 4 * MiB, MemoryType::Usable).ok());
  map.normalise();
  std::vector<u64> bits(3 * FrameAllocator::words_for(PhysAddr(1028 * MiB)));
  FrameAllocator frames;
  ASSERT_TRUE(frames.init(map, Span<u64>(bits.data(), bits.size()), {}).ok());
  EXPECT_EQ(frames.allocate_contiguous_below(3, PhysAddr(1028 * MiB)).release_value().value(), 1024 * MiB);
  EXPECT_EQ(frames.allocate_contiguous_below(200, PhysAddr(1028 * MiB)).release_value().value(),
            1024 * MiB + 3 * kFrame);
  EXPECT_EQ(frames.allocate_contiguous_below(1, PhysAddr(1024 * MiB)).error(), Error::NoMemory);
  EXPECT_EQ(frames.allocate_contiguous_below(1024, PhysAddr(1028 * MiB)).error(), Error::NoMemory)
      << "only 1024 - 203 frames are left";
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
  EXPECT_EQ(frames.check_free(PhysAddr(1 * MiB)), FreeCheck::NotManaged);           // the "kernel image"
  EXPECT_EQ(frames.check_free(PhysAddr(2 * MiB + kFrame)), FreeCheck::NotManaged);  // a hole
  EXPECT_EQ(frames.check_free(PhysAddr(64 * MiB)), FreeCheck::NotManaged);          // beyond RAM
  EXPECT_EQ(frames.check_free(f.offset(8)), FreeCheck::Misaligned);
  EXPECT_EQ(frames.free_frames(), frames.managed_frames());  // nothing changed by the bad frees
}

TEST_F(Fixture, ReleaseHandsBackReservedRamButNotHoles) {
  const usize before = frames.free_frames();
  frames.release({PhysAddr(1 * MiB), 64 * KiB});  // the "boot tables"
  EXPECT_EQ(frames.free_frames(), before + 64 * KiB / kFrame);
  frames.release({PhysAddr(2 * MiB), 1 * MiB});  // a hole: nothing to hand back
  EXPECT_EQ(frames.free_frames(), before + 64 * KiB / kFrame);
  frames.release({PhysAddr(1 * MiB), 64 * KiB});  // twice: no effect
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
