#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "arch/x86_64/pvh.hpp"

namespace pagoda::x86 {
namespace {

/// Fake physical memory: a few byte blobs at chosen addresses; anything else is unreadable.
struct FakeMemory {
  std::map<u64, std::vector<u8>> blobs;

  void put(u64 pa, const void* data, usize size) {
    const auto* p = static_cast<const u8*>(data);
    blobs[pa] = std::vector<u8>(p, p + size);
  }
  static bool read(void* self, u64 pa, void* out, usize size) {
    for (const auto& [base, bytes] : static_cast<FakeMemory*>(self)->blobs)
      if (pa >= base && pa + size <= base + bytes.size()) {
        std::memcpy(out, bytes.data() + (pa - base), size);
        return true;
      }
    return false;
  }
};

struct [[gnu::packed]] StartInfo {
  u32 magic, version, flags, nr_modules;
  u64 modlist, cmdline, rsdp, memmap;
  u32 memmap_entries, reserved;
};
struct [[gnu::packed]] Entry {
  u64 addr, size;
  u32 type, reserved;
};

constexpr u64 kInfoPa = 0x6000, kMapPa = 0x7000, kCmdlinePa = 0x8000;

FakeMemory qemu_like(const std::string& cmdline, u32 version = 1) {
  FakeMemory mem;
  const Entry map[] = {{0x0, 0x9fc00, 1, 0},
                       {0x9fc00, 0x400, 2, 0},
                       {0xf0000, 0x10000, 2, 0},
                       {0x100000, 0x7f00000, 1, 0},
                       {0xfeffc000, 0x4000, 2, 0}};
  const StartInfo info{kPvhMagic, version, 0, 0, 0, kCmdlinePa, 0, kMapPa, 5, 0};
  mem.put(kInfoPa, &info, sizeof info);
  mem.put(kMapPa, map, sizeof map);
  mem.put(kCmdlinePa, cmdline.c_str(), cmdline.size() + 1);
  return mem;
}

TEST(Pvh, ParsesMemoryMapAndCmdline) {
  FakeMemory mem = qemu_like("token=abc test=pf");
  BootInfo boot;
  ASSERT_TRUE(pvh_parse(kInfoPa, FakeMemory::read, &mem, boot).ok());
  EXPECT_EQ(std::string(boot.cmdline().data(), boot.cmdline().size()), "token=abc test=pf");
  EXPECT_FALSE(boot.cmdline_truncated);
  ASSERT_EQ(boot.memory.size(), 5u);
  EXPECT_EQ(boot.memory.total(MemoryType::Usable), 0x9f000u + 0x7f00000u);
  EXPECT_EQ(boot.memory[4].type, MemoryType::Reserved);
}

TEST(Pvh, LongCmdlineIsTruncatedAndFlagged) {
  FakeMemory mem = qemu_like(std::string(2000, 'x'));
  BootInfo boot;
  ASSERT_TRUE(pvh_parse(kInfoPa, FakeMemory::read, &mem, boot).ok());
  EXPECT_TRUE(boot.cmdline_truncated);
  EXPECT_EQ(boot.cmdline().size(), BootInfo::kCmdlineMax - 1);
}

TEST(Pvh, RejectsBadMagicOldVersionAndUnreadableMemory) {
  BootInfo boot;
  FakeMemory mem = qemu_like("");
  EXPECT_EQ(pvh_parse(0x1234, FakeMemory::read, &mem, boot).error(), Error::InvalidArgument);

  FakeMemory old = qemu_like("", 0);
  EXPECT_EQ(pvh_parse(kInfoPa, FakeMemory::read, &old, boot).error(), Error::Unsupported);

  FakeMemory bad_magic = qemu_like("");
  u32 wrong = 0xdeadbeef;
  std::memcpy(bad_magic.blobs[kInfoPa].data(), &wrong, sizeof wrong);
  EXPECT_EQ(pvh_parse(kInfoPa, FakeMemory::read, &bad_magic, boot).error(), Error::InvalidArgument);

  FakeMemory no_map = qemu_like("");
  no_map.blobs.erase(kMapPa);
  EXPECT_EQ(pvh_parse(kInfoPa, FakeMemory::read, &no_map, boot).error(), Error::InvalidArgument);
}

TEST(Pvh, TooManyRegionsIsOverflow) {
  FakeMemory mem = qemu_like("");
  std::vector<Entry> many;
  for (u64 i = 0; i < MemoryMap::kMaxRegions + 1; ++i) many.push_back({i * 0x2000, 0x1000, 1, 0});
  mem.put(kMapPa, many.data(), many.size() * sizeof(Entry));
  StartInfo info{kPvhMagic, 1, 0, 0, 0, 0, 0, kMapPa, u32(many.size()), 0};
  mem.put(kInfoPa, &info, sizeof info);
  BootInfo boot;
  EXPECT_EQ(pvh_parse(kInfoPa, FakeMemory::read, &mem, boot).error(), Error::Overflow);
}

}  // namespace
}  // namespace pagoda::x86
