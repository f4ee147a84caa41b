// FrameRefs (mm/phys/frame_refs.hpp): the reference counts of user frames shared copy-on-write, with
// the frame allocator they sit beside: a frame goes back exactly when its last mapping goes.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "host_support.hpp"
#include "mm/phys/frame_allocator.hpp"
#include "mm/phys/frame_refs.hpp"

namespace pagoda {
namespace {

constexpr u64 kFrame = kPageSize;

struct FrameRefsTest : ::testing::Test {
  MemoryMap map;
  std::vector<u64> bits;
  std::vector<u16> extra;
  FrameAllocator frames;
  FrameRefs refs;

  void SetUp() override {
    ASSERT_TRUE(map.add(PhysAddr(1 * MiB), 1 * MiB, MemoryType::Usable).ok());
    map.normalise();
    bits.resize(3 * FrameAllocator::words_for(PhysAddr(2 * MiB)));
    ASSERT_TRUE(frames.init(map, Span<u64>(bits.data(), bits.size()), {}).ok());
    extra.assign(FrameRefs::entries_for(frames.limit()), 0xabcd);  // init() must clear it
    refs.init(Span<u16>(extra.data(), extra.size()));
  }

  /// What an unmap does (vm::put_user_frame): drop, and free with the last mapping.
  void put(PhysAddr f) {
    if (refs.drop(f)) frames.free(f);
  }
};

TEST_F(FrameRefsTest, FreshFrameHasOneMappingAndNoTableWrite) {
  const PhysAddr f = frames.allocate().value();
  EXPECT_EQ(refs.count(f), 1u);
  EXPECT_EQ(refs.shared_frames(), 0u);
  for (u16 e : extra) EXPECT_EQ(e, 0);
}

TEST_F(FrameRefsTest, FreedExactlyWhenTheLastMappingGoes) {
  const usize free_before = frames.free_frames();
  const PhysAddr f = frames.allocate().value();
  ASSERT_TRUE(refs.share(f).ok());  // fork: parent and child
  ASSERT_TRUE(refs.share(f).ok());  // a second fork: three roots
  EXPECT_EQ(refs.count(f), 3u);
  EXPECT_EQ(refs.shared_frames(), 1u);
  put(f);
  EXPECT_EQ(frames.check_free(f), FreeCheck::Ok) << "still allocated with two mappings left";
  put(f);
  EXPECT_EQ(refs.count(f), 1u);
  EXPECT_EQ(refs.shared_frames(), 0u);
  EXPECT_EQ(frames.free_frames(), free_before - 1);
  put(f);
  EXPECT_EQ(frames.check_free(f), FreeCheck::DoubleFree) << "the last mapping frees it";
  EXPECT_EQ(frames.free_frames(), free_before);
  EXPECT_EQ(extra[f.value() / kFrame], 0) << "a free frame has no extra references";
}

TEST_F(FrameRefsTest, BadFramesAreRefused) {
  EXPECT_EQ(refs.share(PhysAddr(1 * MiB + 8)).error(), Error::InvalidArgument);
  EXPECT_EQ(refs.share(PhysAddr(64 * MiB)).error(), Error::InvalidArgument);
  EXPECT_EQ(refs.count(PhysAddr(64 * MiB)), 0u);
  EXPECT_TRUE(refs.drop(PhysAddr(64 * MiB))) << "a frame outside the table has one mapping";
}

TEST_F(FrameRefsTest, OverflowLeavesTheCountUnchanged) {
  const PhysAddr f = frames.allocate().value();
  for (u32 i = 1; i < FrameRefs::kMaxCount; ++i) ASSERT_TRUE(refs.share(f).ok()) << i;
  EXPECT_EQ(refs.count(f), FrameRefs::kMaxCount);
  const Result<void> r = refs.share(f);
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), Error::Overflow);
  EXPECT_EQ(refs.count(f), FrameRefs::kMaxCount) << "the 16-bit entry did not wrap";
}

// A model: random shares and drops over a few frames, against a std::vector of counts; every
// frame ends free and the allocator's count comes back to where it started.
TEST_F(FrameRefsTest, RandomSharesAndDropsAgreeWithAModel) {
  std::mt19937_64 rng(0x6f726b);
  const usize free_before = frames.free_frames();
  std::vector<PhysAddr> live;
  std::vector<u32> model;
  for (int step = 0; step < 20000; ++step) {
    const u32 op = u32(rng() % 3);
    if (op == 0 || live.empty()) {
      const Result<PhysAddr> f = frames.allocate();
      if (f.is_error()) continue;
      live.push_back(f.value());
      model.push_back(1);
    } else {
      const usize i = usize(rng() % live.size());
      if (op == 1) {
        ASSERT_TRUE(refs.share(live[i]).ok());
        ++model[i];
      } else {
        put(live[i]);
        if (--model[i] == 0) {
          EXPECT_EQ(frames.check_free(live[i]), FreeCheck::DoubleFree);
          live.erase(live.begin() + long(i));
          model.erase(model.begin() + long(i));
          continue;
        }
      }
      ASSERT_EQ(refs.count(live[i]), model[i]);
    }
  }
  usize shared = 0;
  for (u32 m : model) shared += m > 1;
  EXPECT_EQ(refs.shared_frames(), shared);
  while (!live.empty()) {
    put(live.back());
    if (--model.back() == 0) {
      live.pop_back();
      model.pop_back();
    }
  }
  EXPECT_EQ(frames.free_frames(), free_before);
  EXPECT_EQ(refs.shared_frames(), 0u);
}

}  // namespace
}  // namespace pagoda
