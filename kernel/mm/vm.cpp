#include "mm/vm.hpp"

#include "core/panic.hpp"
#include "mm/layout.hpp"

// Section bounds from the linker script (arch/<isa>/kernel.ld).
extern "C" char __kernel_start[], __kernel_end[], __text_start[], __text_end[], __rodata_start[],
    __rodata_end[], __data_start[], __data_end[];

namespace pagoda::vm {
namespace {

constexpr u64 kPage = FrameAllocator::kFrameSize;

const BootInfo* g_boot = nullptr;
FrameAllocator g_frames;
bool g_ready = false;
PhysAddr g_kernel_root;

PhysRange range_of(const char* start, const char* end) {
  const u64 s = align_down(reinterpret_cast<u64>(start), kPage);
  return {PhysAddr(s), align_up(reinterpret_cast<u64>(end), kPage) - s};
}

/// Page tables live in frames from the allocator and are reached through phys_to_ptr().
class KernelTableMemory final : public TableMemory {
 public:
  Result<PhysAddr> allocate_table() override {
    const PhysAddr frame = TRY(g_frames.allocate());
    auto* entries = static_cast<u64*>(phys_to_ptr(frame, kPage));
    if (entries == nullptr) panic("frame {:#x} from the allocator is not reachable", frame.value());
    for (usize i = 0; i < kPage / sizeof(u64); ++i) entries[i] = 0;
    return frame;
  }
  void free_table(PhysAddr table) override { g_frames.free(table); }
  u64* table_entries(PhysAddr table) override { return static_cast<u64*>(phys_to_ptr(table, kPage)); }
};

constinit KernelTableMemory g_table_memory;

/// Bitmap storage for the allocator: the first fit in usable RAM above the first MiB that
/// does not overlap @p avoid.
Result<PhysRange> place_bitmaps(const MemoryMap& map, u64 bytes, PhysRange avoid) {
  bytes = align_up(bytes, kPage);
  for (const MemoryRegion& r : map) {
    if (r.type != MemoryType::Usable) continue;
    u64 lo = max(r.base.value(), layout::kLowMemoryEnd);
    if (lo < avoid.end().value() && avoid.base.value() < lo + bytes) lo = max(lo, avoid.end().value());
    if (lo + bytes <= r.end().value()) return PhysRange{PhysAddr(lo), bytes};
  }
  return Error::NoMemory;
}

/// Maps the usable RAM above the first MiB, minus [skip), read-write, no-execute.
Result<void> map_ram(KernelPageTable& table, const MemoryMap& map, PhysRange skip) {
  for (const MemoryRegion& r : map) {
    if (r.type != MemoryType::Usable) continue;
    const u64 lo = max(r.base.value(), layout::kLowMemoryEnd), hi = r.end().value();
    if (lo >= hi) continue;
    const u64 cut_lo = max(lo, skip.base.value()), cut_hi = min(hi, skip.end().value());
    if (cut_lo < cut_hi) {  // the region overlaps the skipped range: map around it
      if (lo < cut_lo) TRY(table.map_range(VirtAddr(lo), PhysAddr(lo), cut_lo - lo, kKernelData));
      if (cut_hi < hi) TRY(table.map_range(VirtAddr(cut_hi), PhysAddr(cut_hi), hi - cut_hi, kKernelData));
    } else {
      TRY(table.map_range(VirtAddr(lo), PhysAddr(lo), hi - lo, kKernelData));
    }
  }
  return {};
}

/// The kernel's identity map: the image with each section's permissions, RAM, devices.
Result<void> build_kernel_map(KernelPageTable& table, const MemoryMap& map) {
  // LAB 1 BEGIN map the kernel image with real permissions, then RAM and devices
  const PhysRange text = range_of(__text_start, __text_end);
  const PhysRange rodata = range_of(__rodata_start, __rodata_end);
  const PhysRange data = range_of(__data_start, __data_end);
  TRY(table.map_range(VirtAddr(text.base.value()), text.base, text.size, kKernelText));
  TRY(table.map_range(VirtAddr(rodata.base.value()), rodata.base, rodata.size, kKernelReadOnly));
  TRY(table.map_range(VirtAddr(data.base.value()), data.base, data.size, kKernelData));
  TRY(map_ram(table, map, range_of(__kernel_start, __kernel_end)));
  for (const PhysRange& d : arch::device_ranges())
    TRY(table.map_range(VirtAddr(d.base.value()), d.base, align_up(d.size, kPage), kKernelDevice));
  return {};
  // LAB 1 SKELETON
  // (void)table;
  // (void)map;
  // (void)map_ram;
  // return lab_not_done("lab 1: write build_kernel_map() in kernel/mm/vm.cpp (labs/01-identity-map/README.md)");
  // LAB 1 END
}

}  // namespace

void* phys_to_ptr(PhysAddr pa, usize size) {
  // Lab 1: the kernel reaches RAM through the identity map (the boot stub's, then its own),
  // and only RAM above the first MiB that the memory map calls usable.
  if (g_boot == nullptr || pa.value() < layout::kLowMemoryEnd || pa.value() + size < pa.value()) return nullptr;
  for (const MemoryRegion& r : g_boot->memory)
    if (r.type == MemoryType::Usable && r.base <= pa && pa.offset(size) <= r.end())
      return reinterpret_cast<void*>(pa.value());
  return nullptr;
}

Result<void> init(const BootInfo& boot) {
  g_boot = &boot;
  const PhysRange image = range_of(__kernel_start, __kernel_end);
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
