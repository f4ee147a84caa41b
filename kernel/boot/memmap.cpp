#include "boot/memmap.hpp"

#include "lib/format.hpp"

namespace pagoda {

const char* memory_type_name(MemoryType type) {
  switch (type) {
    case MemoryType::Usable: return "usable";
    case MemoryType::AcpiReclaimable: return "acpi-reclaimable";
    case MemoryType::AcpiNvs: return "acpi-nvs";
    case MemoryType::Reserved: return "reserved";
    case MemoryType::Bad: return "bad";
  }
  return "?";
}

Result<void> MemoryMap::add(PhysAddr base, u64 size, MemoryType type) {
  if (size == 0) return {};
  if (base.value() + size < base.value()) size = ~u64{0} - base.value();  // clip at the top
  if (count_ == kMaxRegions) return Error::Overflow;
  regions_[count_++] = MemoryRegion{base, size, type};
  return {};
}

void MemoryMap::normalise() {
  // Boundaries cut the address line into elementary intervals; each interval takes the most
  // protected type of the regions covering it. With at most kMaxRegions regions, the quadratic
  // passes below cost nothing next to a boot.
  u64 points[2 * kMaxRegions];
  usize npoints = 0;
  for (usize i = 0; i < count_; ++i) {
    points[npoints++] = regions_[i].base.value();
    points[npoints++] = regions_[i].end().value();
  }
  for (usize i = 1; i < npoints; ++i)  // insertion sort: tiny input
    for (usize j = i; j > 0 && points[j - 1] > points[j]; --j) {
      const u64 t = points[j];
      points[j] = points[j - 1];
      points[j - 1] = t;
    }

  MemoryRegion out[kMaxRegions];
  usize nout = 0;
  for (usize p = 0; p + 1 < npoints; ++p) {
    const u64 lo = points[p], hi = points[p + 1];
    if (lo == hi) continue;
    bool covered = false;
    MemoryType type = MemoryType::Usable;
    for (usize i = 0; i < count_; ++i) {
      const MemoryRegion& r = regions_[i];
      if (r.base.value() <= lo && hi <= r.end().value()) {
        if (!covered || r.type > type) type = r.type;
        covered = true;
      }
    }
    if (!covered) continue;
    if (nout > 0 && out[nout - 1].type == type && out[nout - 1].end().value() == lo) {
      out[nout - 1].size += hi - lo;
    } else if (nout < kMaxRegions) {  // a full table drops the intervals after it
      out[nout++] = MemoryRegion{PhysAddr(lo), hi - lo, type};
    }
  }

  // Usable RAM shrinks inwards to whole pages; what is cut off is simply not used.
  count_ = 0;
  for (usize i = 0; i < nout; ++i) {
    MemoryRegion r = out[i];
    if (r.type == MemoryType::Usable) {
      const PhysAddr lo = r.base.align_up(kPageSize);
      const PhysAddr hi = r.end().align_down(kPageSize);
      if (hi <= lo) continue;
      r = MemoryRegion{lo, hi - lo, MemoryType::Usable};
    }
    regions_[count_++] = r;
  }
}

u64 MemoryMap::total(MemoryType type) const {
  u64 sum = 0;
  for (const MemoryRegion& r : *this)
    if (r.type == type) sum += r.size;
  return sum;
}

StringView too_little_memory(char* buffer, usize capacity, u64 ram, u64 need, StringView why) {
  constexpr u64 kKiB = 1024;
  return format_buffer(buffer, capacity, "too little memory: {} KiB of RAM, the kernel needs at least {} KiB ({})",
                       ram / kKiB, (need + kKiB - 1) / kKiB, why);
}

PhysAddr usable_end(const MemoryMap& map) {
  PhysAddr end;
  for (const MemoryRegion& r : map)
    if (r.type == MemoryType::Usable && end < r.end()) end = r.end();
  return end;
}

}  // namespace pagoda
