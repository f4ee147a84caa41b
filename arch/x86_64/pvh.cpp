#include "arch/x86_64/pvh.hpp"

namespace pagoda::x86 {
namespace {

struct [[gnu::packed]] StartInfo {
  u32 magic;
  u32 version;
  u32 flags;
  u32 nr_modules;
  u64 modlist_paddr;
  u64 cmdline_paddr;
  u64 rsdp_paddr;
  u64 memmap_paddr;
  u32 memmap_entries;
  u32 reserved;
};
static_assert(sizeof(StartInfo) == 56);

struct [[gnu::packed]] MemmapEntry {
  u64 addr;
  u64 size;
  u32 type;
  u32 reserved;
};
static_assert(sizeof(MemmapEntry) == 24);

constexpr u32 kFirstVersionWithMemmap = 1;

enum PvhMemoryType : u32 { kRam = 1, kReserved = 2, kAcpi = 3, kNvs = 4, kUnusable = 5 };

MemoryType to_memory_type(u32 type) {
  switch (type) {
    case kRam: return MemoryType::Usable;
    case kAcpi: return MemoryType::AcpiReclaimable;
    case kNvs: return MemoryType::AcpiNvs;
    case kUnusable: return MemoryType::Bad;
    default: return MemoryType::Reserved;  // kReserved and anything unknown
  }
}

}  // namespace

Result<void> pvh_parse(u64 start_info_pa, PhysReader read, void* context, BootInfo& out) {
  StartInfo info;
  if (!read(context, start_info_pa, &info, sizeof info)) return Error::InvalidArgument;
  if (info.magic != kPvhMagic) return Error::InvalidArgument;
  if (info.version < kFirstVersionWithMemmap || info.memmap_paddr == 0) return Error::Unsupported;

  out.memory = MemoryMap{};
  for (u32 i = 0; i < info.memmap_entries; ++i) {
    MemmapEntry e;
    if (!read(context, info.memmap_paddr + u64(i) * sizeof e, &e, sizeof e)) return Error::InvalidArgument;
    TRY(out.memory.add(PhysAddr(e.addr), e.size, to_memory_type(e.type)));
  }
  out.memory.normalise();

  // The command line is read a byte at a time up to its NUL or our capacity plus one (so that
  // a longer line is seen as truncated).
  char line[BootInfo::kCmdlineMax + 1];
  usize len = 0;
  if (info.cmdline_paddr != 0) {
    while (len < sizeof line) {
      char c;
      if (!read(context, info.cmdline_paddr + len, &c, 1)) return Error::InvalidArgument;
      if (c == '\0') break;
      line[len++] = c;
    }
  }
  out.set_cmdline(StringView(line, len));
  return {};
}

}  // namespace pagoda::x86
