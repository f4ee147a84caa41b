/// @file memmap.hpp
/// @brief The physical memory map handed over by the boot protocol, normalised.
///
/// Firmware maps can be unsorted, overlapping and unaligned. MemoryMap keeps a copy in the
/// kernel's own storage (so the firmware's memory may be reused) and normalise() turns it into
/// sorted, non-overlapping regions in which usable RAM is page aligned and never overlaps
/// anything reserved:
///
///     raw:        [usable 0x0-0x9fc00) [reserved 0x9fc00-0xa0000) [usable 0x100000-0x8000000)
///     normalised: [usable 0x0-0x9f000) [reserved 0x9f000-0xa0000) [usable 0x100000-0x8000000)
#pragma once

#include "lib/result.hpp"
#include "lib/string_view.hpp"
#include "lib/types.hpp"
#include "mm/base/addr.hpp"
#include "mm/base/page.hpp"

namespace pagoda {

/// What a region of physical memory is, in increasing order of how much it must be protected.
enum class MemoryType : u8 {
  Usable = 0,       ///< free RAM
  AcpiReclaimable,  ///< ACPI tables; reusable once they have been read
  AcpiNvs,          ///< firmware-owned across sleep states
  Reserved,         ///< not RAM, or not ours
  Bad,              ///< defective RAM
};

/// A printable name for a memory type.
const char* memory_type_name(MemoryType type);

/// One range of physical memory: [base, base + size).
struct MemoryRegion {
  PhysAddr base;
  u64 size = 0;
  MemoryType type = MemoryType::Reserved;

  PhysAddr end() const { return base.offset(size); }
};

/// A bounded table of memory regions.
class MemoryMap {
 public:
  /// Regions a boot map may hold; firmware maps on the machines we target have far fewer.
  static constexpr usize kMaxRegions = 64;
  /// Usable RAM is trimmed to this alignment.
  static constexpr u64 kPageSize = pagoda::kPageSize;

  /// Records a region as reported; an empty one is ignored. Fails with Overflow when full.
  [[nodiscard]] Result<void> add(PhysAddr base, u64 size, MemoryType type);

  /// Sorts, resolves overlaps in favour of the more protected type, merges neighbours of one
  /// type and page-aligns usable RAM inwards. Idempotent.
  void normalise();

  /// Total bytes of regions of @p type.
  u64 total(MemoryType type) const;

  usize size() const { return count_; }
  const MemoryRegion& operator[](usize i) const { return regions_[i]; }
  const MemoryRegion* begin() const { return regions_; }
  const MemoryRegion* end() const { return regions_ + count_; }

 private:
  MemoryRegion regions_[kMaxRegions];
  usize count_ = 0;
};

/// The one line a kernel given too little RAM stops with, on every ISA, formatted into
/// @p buffer: it names the RAM the boot map has (@p ram: the end of its highest usable region,
/// counted from @p ram_base, the ISA's first byte of RAM) and the least the kernel needs
/// (@p need bytes from @p ram_base, a lower bound) and why (@p why). Uses no kernel state:
/// AArch64's boot path prints it before .bss is cleared (arch/aarch64/start.cpp).
StringView too_little_memory(char* buffer, usize capacity, u64 ram, u64 need, StringView why);

/// The end of the highest usable region of @p map (a null address when it has none).
PhysAddr usable_end(const MemoryMap& map);

}  // namespace pagoda
