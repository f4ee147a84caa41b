#include <gtest/gtest.h>

#include <string>

#include "boot/memmap.hpp"

namespace pagoda {
namespace {

struct R {
  u64 base, size;
  MemoryType type;
};

void expect_regions(const MemoryMap& map, std::initializer_list<R> want) {
  ASSERT_EQ(map.size(), want.size());
  usize i = 0;
  for (const R& r : want) {
    EXPECT_EQ(map[i].base.value(), r.base) << "region " << i;
    EXPECT_EQ(map[i].size, r.size) << "region " << i;
    EXPECT_EQ(map[i].type, r.type) << "region " << i;
    ++i;
  }
}

TEST(MemoryMap, QemuLikeMapIsSortedAndPageAligned) {
  MemoryMap map;
  ASSERT_TRUE(map.add(PhysAddr(0x100000), 0x7f00000, MemoryType::Usable).ok());
  ASSERT_TRUE(map.add(PhysAddr(0x0), 0x9fc00, MemoryType::Usable).ok());
  ASSERT_TRUE(map.add(PhysAddr(0x9fc00), 0x400, MemoryType::Reserved).ok());
  ASSERT_TRUE(map.add(PhysAddr(0xf0000), 0x10000, MemoryType::Reserved).ok());
  map.normalise();
  expect_regions(map, {{0x0, 0x9f000, MemoryType::Usable},
                       {0x9fc00, 0x400, MemoryType::Reserved},
                       {0xf0000, 0x10000, MemoryType::Reserved},
                       {0x100000, 0x7f00000, MemoryType::Usable}});
  EXPECT_EQ(map.total(MemoryType::Usable), 0x9f000u + 0x7f00000u);
}

TEST(MemoryMap, OverlapGoesToTheMoreProtectedType) {
  MemoryMap map;
  ASSERT_TRUE(map.add(PhysAddr(0x0), 0x10000, MemoryType::Usable).ok());
  ASSERT_TRUE(map.add(PhysAddr(0x4000), 0x2000, MemoryType::AcpiNvs).ok());
  ASSERT_TRUE(map.add(PhysAddr(0x5000), 0x2000, MemoryType::Bad).ok());
  map.normalise();
  expect_regions(map, {{0x0, 0x4000, MemoryType::Usable},
                       {0x4000, 0x1000, MemoryType::AcpiNvs},
                       {0x5000, 0x2000, MemoryType::Bad},
                       {0x7000, 0x9000, MemoryType::Usable}});
}

TEST(MemoryMap, AdjacentSameTypeMergesAndDuplicatesCollapse) {
  MemoryMap map;
  ASSERT_TRUE(map.add(PhysAddr(0x0), 0x1000, MemoryType::Usable).ok());
  ASSERT_TRUE(map.add(PhysAddr(0x1000), 0x1000, MemoryType::Usable).ok());
  ASSERT_TRUE(map.add(PhysAddr(0x0), 0x2000, MemoryType::Usable).ok());
  map.normalise();
  expect_regions(map, {{0x0, 0x2000, MemoryType::Usable}});
  map.normalise();  // idempotent
  expect_regions(map, {{0x0, 0x2000, MemoryType::Usable}});
}

TEST(MemoryMap, UsableShrinksInwardsAndTinyRegionsVanish) {
  MemoryMap map;
  ASSERT_TRUE(map.add(PhysAddr(0x1001), 0x2fff, MemoryType::Usable).ok());  // [0x1001, 0x4000)
  ASSERT_TRUE(map.add(PhysAddr(0x10010), 0x100, MemoryType::Usable).ok());  // less than a page
  ASSERT_TRUE(map.add(PhysAddr(0x20000), 0, MemoryType::Usable).ok());      // empty: ignored
  map.normalise();
  expect_regions(map, {{0x2000, 0x2000, MemoryType::Usable}});
}

TEST(MemoryMap, RegionReachingTheTopOfMemoryIsClipped) {
  MemoryMap map;
  ASSERT_TRUE(map.add(PhysAddr(~u64{0} - 0xfff), 0x10000, MemoryType::Reserved).ok());
  map.normalise();
  ASSERT_EQ(map.size(), 1u);
  EXPECT_EQ(map[0].end().value(), ~u64{0});
}

TEST(MemoryMap, FullTableIsAnError) {
  MemoryMap map;
  for (usize i = 0; i < MemoryMap::kMaxRegions; ++i)
    ASSERT_TRUE(map.add(PhysAddr(i * 0x2000), 0x1000, MemoryType::Usable).ok());
  const Result<void> r = map.add(PhysAddr(0x1000000), 0x1000, MemoryType::Usable);
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), Error::Overflow);
}

TEST(MemoryMap, UsableEndIsTheEndOfTheHighestUsableRegion) {
  MemoryMap map;
  EXPECT_EQ(usable_end(map), PhysAddr());
  ASSERT_TRUE(map.add(PhysAddr(0x4000'0000), 0x30'0000, MemoryType::Usable).ok());
  ASSERT_TRUE(map.add(PhysAddr(0x4000'0000), 0x10'0000, MemoryType::Reserved).ok());
  ASSERT_TRUE(map.add(PhysAddr(0x5000'0000), 0x1000, MemoryType::Reserved).ok());  // above: not RAM
  map.normalise();
  EXPECT_EQ(usable_end(map), PhysAddr(0x4030'0000));
}

TEST(MemoryMap, TooLittleMemorySaysWhatItHasAndWhatItNeedsInKiB) {
  char line[160];
  EXPECT_EQ(std::string(too_little_memory(line, sizeof line, 3 << 20, 3252224 + 1, "its image ends there").data()),
            "too little memory: 3072 KiB of RAM, the kernel needs at least 3177 KiB (its image ends there)");
  char tiny[12];  // cut to fit, NUL-terminated
  EXPECT_EQ(std::string(too_little_memory(tiny, sizeof tiny, 1, 2, "x").data()), "too little ");
}

}  // namespace
}  // namespace pagoda
