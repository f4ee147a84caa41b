#include "mm/vm.hpp"

#include "core/panic.hpp"
#include "mm/layout.hpp"

// Section bounds from the linker script (arch/<isa>/kernel.ld): virtual addresses, except the
// *_phys ones; __kernel_virt_offset's address is the offset between the two.
extern "C" char __kernel_start[], __kernel_end[], __text_start[], __text_end[], __rodata_start[],
    __rodata_end[], __data_start[], __data_end[], __kernel_phys_start[], __kernel_phys_end[],
    __kernel_virt_offset[];

namespace pagoda::vm {
namespace {

constexpr u64 kPage = FrameAllocator::kFrameSize;

const BootInfo* g_boot = nullptr;
FrameAllocator g_frames;
bool g_ready = false;
PhysAddr g_kernel_root;

/// A part of the kernel image: where it is linked and where it was loaded.
struct ImagePart {
  VirtAddr va;
  PhysAddr pa;
  u64 size;
};

ImagePart image_part(const char* start, const char* end) {
  const u64 va = align_down(reinterpret_cast<u64>(start), kPage);
  const u64 size = align_up(reinterpret_cast<u64>(end), kPage) - va;
  return {VirtAddr(va), PhysAddr(va - reinterpret_cast<u64>(__kernel_virt_offset)), size};
}

/// The physical memory the kernel image occupies, boot stub included (never allocated).
PhysRange image_phys() {
  const u64 start = reinterpret_cast<u64>(__kernel_phys_start);
  return {PhysAddr(start), align_up(reinterpret_cast<u64>(__kernel_phys_end), kPage) - start};
}

/// The physical memory of the kernel proper, which the image mapping covers with the right
/// permissions (RAM mappings skip it; the boot stub before it is reclaimed RAM).
PhysRange linked_image_phys() {
  const ImagePart text = image_part(__text_start, __text_end);
  return {text.pa, align_up(reinterpret_cast<u64>(__kernel_phys_end), kPage) - text.pa.value()};
}

bool is_usable_ram(PhysAddr pa, usize size) {
  if (g_boot == nullptr || pa.value() < layout::kLowMemoryEnd || pa.value() + size < pa.value()) return false;
  for (const MemoryRegion& r : g_boot->memory)
    if (r.type == MemoryType::Usable && r.base <= pa && pa.offset(size) <= r.end()) return true;
  return false;
}

/// Page tables live in frames the kernel can reach, from the allocator, through phys_to_ptr().
class KernelTableMemory final : public TableMemory {
 public:
  Result<PhysAddr> allocate_table() override {
    const PhysAddr frame = TRY(g_frames.allocate_below(reachable_limit()));
    auto* entries = static_cast<u64*>(phys_to_ptr(frame, kPage));
    if (entries == nullptr) panic("frame {:#x} from the allocator is not reachable", frame.value());
    for (usize i = 0; i < kPage / sizeof(u64); ++i) entries[i] = 0;
    return frame;
  }
  void free_table(PhysAddr table) override { g_frames.free(table); }
  u64* table_entries(PhysAddr table) override { return static_cast<u64*>(phys_to_ptr(table, kPage)); }
};

constinit KernelTableMemory g_table_memory;

/// Bitmap storage for the allocator: the first fit in reachable usable RAM above the first
/// MiB that does not overlap @p avoid.
Result<PhysRange> place_bitmaps(const MemoryMap& map, u64 bytes, PhysRange avoid) {
  bytes = align_up(bytes, kPage);
  for (const MemoryRegion& r : map) {
    if (r.type != MemoryType::Usable) continue;
    u64 lo = max(r.base.value(), layout::kLowMemoryEnd);
    if (lo < avoid.end().value() && avoid.base.value() < lo + bytes) lo = max(lo, avoid.end().value());
    if (lo + bytes <= r.end().value() && lo + bytes <= reachable_limit().value()) return PhysRange{PhysAddr(lo), bytes};
  }
  return Error::NoMemory;
}

/// Calls @p map_part(base, size) for each piece of usable RAM in [kLowMemoryEnd, limit) that
/// lies outside @p skip.
template <class MapPart>
Result<void> for_each_ram_piece(const MemoryMap& map, PhysAddr limit, PhysRange skip, MapPart map_part) {
  for (const MemoryRegion& r : map) {
    if (r.type != MemoryType::Usable) continue;
    const u64 lo = max(r.base.value(), layout::kLowMemoryEnd), hi = min(r.end().value(), limit.value());
    if (lo >= hi) continue;
    const u64 cut_lo = max(lo, skip.base.value()), cut_hi = min(hi, skip.end().value());
    if (cut_lo < cut_hi) {  // the piece overlaps the skipped range: map around it
      if (lo < cut_lo) TRY(map_part(PhysAddr(lo), cut_lo - lo));
      if (cut_hi < hi) TRY(map_part(PhysAddr(cut_hi), hi - cut_hi));
    } else {
      TRY(map_part(PhysAddr(lo), hi - lo));
    }
  }
  return {};
}

}  // namespace

// ---- How the kernel reaches physical memory ------------------------------------------------
// LAB 2 BEGIN the physical window and the device area
PhysAddr reachable_limit() { return PhysAddr(layout::kWindowSize); }

void* phys_to_ptr(PhysAddr pa, usize size) {
  if (!is_usable_ram(pa, size) || pa.value() + size > layout::kWindowSize) return nullptr;
  return reinterpret_cast<void*>(layout::kWindowBase + pa.value());
}

VirtAddr device_virt(PhysAddr pa) { return VirtAddr(layout::kMmioBase + pa.value()); }

Result<void> map_ram(KernelPageTable& table, const MemoryMap& map, PhysRange skip) {
  return for_each_ram_piece(map, reachable_limit(), skip, [&](PhysAddr base, u64 size) {
    return table.map_range(VirtAddr(layout::kWindowBase + base.value()), base, size, kKernelData);
  });
}
// LAB 2 SKELETON
// // Lab 1's way: everything identity mapped, the kernel reaches RAM at its physical address.
// PhysAddr reachable_limit() { return PhysAddr(~u64{0}); }
//
// void* phys_to_ptr(PhysAddr pa, usize size) {
//   return is_usable_ram(pa, size) ? reinterpret_cast<void*>(pa.value()) : nullptr;
// }
//
// VirtAddr device_virt(PhysAddr pa) { return VirtAddr(pa.value()); }
//
// Result<void> map_ram(KernelPageTable& table, const MemoryMap& map, PhysRange skip) {
//   (void)lab_not_done("lab 2: replace the identity map by the physical window: reachable_limit(), "
//                      "phys_to_ptr(), device_virt() and map_ram() in kernel/mm/vm.cpp "
//                      "(labs/02-higher-half/README.md)");
//   return for_each_ram_piece(map, reachable_limit(), skip, [&](PhysAddr base, u64 size) {
//     return table.map_range(VirtAddr(base.value()), base, size, kKernelData);
//   });
// }
// LAB 2 END

Result<VirtAddr> try_phys_to_virt(PhysAddr pa) {
  void* p = phys_to_ptr(pa, 1);
  if (p == nullptr) return Error::InvalidArgument;
  return VirtAddr(reinterpret_cast<u64>(p));
}

VirtAddr phys_to_virt(PhysAddr pa) {
  const Result<VirtAddr> va = try_phys_to_virt(pa);
  if (va.is_error())
    panic("phys_to_virt: {} is outside the kernel's physical window (usable RAM in [{}, {}))", Hex{pa.value()},
          Hex{layout::kLowMemoryEnd}, Hex{reachable_limit().value()});
  return va.value();
}

Result<PhysAddr> try_virt_to_phys(VirtAddr va) {
  const u64 offset = va.value() - layout::kWindowBase;
  if (va.value() < layout::kWindowBase || offset >= reachable_limit().value()) return Error::InvalidArgument;
  const PhysAddr pa(offset);
  if (phys_to_ptr(pa, 1) != reinterpret_cast<void*>(va.value())) return Error::InvalidArgument;
  return pa;
}

PhysAddr virt_to_phys(VirtAddr va) {
  const Result<PhysAddr> pa = try_virt_to_phys(va);
  if (pa.is_error()) panic("virt_to_phys: {} is not an address in the kernel's physical window", Hex{va.value()});
  return pa.value();
}

void* device_ptr(PhysAddr pa) {
  // Before the kernel's own tables, the boot stub's identity map reaches devices.
  return reinterpret_cast<void*>(g_ready ? device_virt(pa).value() : pa.value());
}

namespace {

/// The kernel's map: the image with each section's permissions, RAM, devices.
Result<void> build_kernel_map(KernelPageTable& table, const MemoryMap& map) {
  // LAB 1 BEGIN map the kernel image with real permissions, then RAM and devices
  const ImagePart text = image_part(__text_start, __text_end);
  const ImagePart rodata = image_part(__rodata_start, __rodata_end);
  const ImagePart data = image_part(__data_start, __data_end);
  TRY(table.map_range(text.va, text.pa, text.size, kKernelText));
  TRY(table.map_range(rodata.va, rodata.pa, rodata.size, kKernelReadOnly));
  TRY(table.map_range(data.va, data.pa, data.size, kKernelData));
  TRY(map_ram(table, map, linked_image_phys()));
  for (const PhysRange& d : arch::device_ranges())
    TRY(table.map_range(device_virt(d.base), d.base, align_up(d.size, kPage), kKernelDevice));
  return {};
  // LAB 1 SKELETON
  // (void)table;
  // (void)map;
  // (void)image_part;
  // (void)linked_image_phys;
  // return lab_not_done("lab 1: write build_kernel_map() in kernel/mm/vm.cpp (labs/01-identity-map/README.md)");
  // LAB 1 END
}

}  // namespace

Result<void> init(const BootInfo& boot) {
  g_boot = &boot;
  const PhysRange image = image_phys();
  PhysAddr top;
  for (const MemoryRegion& r : boot.memory)
    if (r.type == MemoryType::Usable && r.end() > top) top = r.end();
  const usize words = 3 * FrameAllocator::words_for(top);
  const PhysRange bitmaps = TRY(place_bitmaps(boot.memory, words * sizeof(u64), image));
  auto* storage = static_cast<u64*>(phys_to_ptr(bitmaps.base, bitmaps.size));
  if (storage == nullptr) return Error::NoMemory;
  const PhysRange reserved[] = {{PhysAddr(0), layout::kLowMemoryEnd}, image, bitmaps};
  TRY(g_frames.init(boot.memory, Span<u64>(storage, words), Span<const PhysRange>(reserved, array_size(reserved))));

  print("vm: ");
  if (!arch::paging_controls_ok(console_sink())) panic("paging protections are off (see above)");
  println("");

  const usize before = g_frames.free_frames();
  KernelPageTable table = TRY(KernelPageTable::create(g_table_memory, arch::tlb()));
  TRY(table.prepare_kernel_half(VirtAddr(layout::kKernelHalfBase)));
  TRY(build_kernel_map(table, boot.memory));  // a lab skeleton returns before any switch
  const usize table_frames = before - g_frames.free_frames();

  arch::activate_root(table.root());
  g_kernel_root = table.root();
  const PhysRange boot_tables = arch::boot_page_tables();
  g_frames.release(boot_tables);
  g_ready = true;
  println("vm: kernel page table at {:#x} ({} frames of tables); boot tables reclaimed ({} KiB); "
          "{} of {} frames free", table.root().value(), table_frames, boot_tables.size / KiB,
          g_frames.free_frames(), g_frames.managed_frames());
  return {};
}

bool ready() { return g_ready; }

FrameAllocator& frames() { return g_frames; }

KernelPageTable kernel_table() {
  PAGODA_ASSERT(g_ready);
  return KernelPageTable(g_kernel_root, g_table_memory, arch::tlb());
}

Walk walk_active(VirtAddr va) {
  const KernelPageTable active(arch::active_root(), g_table_memory, arch::tlb());
  return active.query(va);
}

void report_fault(FormatSink& sink, VirtAddr va, Access access) {
  const Walk walk = walk_active(va);
  walk.format(sink);
  format_to(sink, "  reason: ");
  explain_fault(sink, walk, access);
  format_to(sink, "\n");
}

}  // namespace pagoda::vm
