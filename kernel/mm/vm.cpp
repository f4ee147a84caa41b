#include "mm/vm.hpp"

#include "core/arch.hpp"
#include "core/cmdline.hpp"
#include "core/lab.hpp"
#include "core/panic.hpp"
#include "lib/facts.hpp"
#include "lib/string.hpp"
#include "mm/space/debug_roots.hpp"
#include "mm/base/layout.hpp"
#include "mm/space/mmu.hpp"
#include "mm/window/temp_map.hpp"
#include "mm/space/user_regions.hpp"

// Section bounds from the linker script (arch/<isa>/kernel.ld): virtual addresses, except the
// *_phys ones; __kernel_virt_offset's address is the offset between the two.
extern "C" char __kernel_start[], __kernel_end[], __text_start[], __text_end[], __rodata_start[],
    __rodata_end[], __data_start[], __data_end[], __kernel_phys_start[], __kernel_phys_end[],
    __kernel_virt_offset[];
// The kernel's own stack (linked high, in .bss), defined by each boot stub (arch/<isa>/boot.S).
extern "C" char boot_stack_bottom[], boot_stack_top[], boot_stack_guard[];

/// Where the frame reference counts are (lab 6), for the grader and GDB: {the table's kernel
/// address, its entries}; each entry is a u16, the references beyond the first (frame_refs.hpp).
struct FrameRefsExport {
  pagoda::u64 table;
  pagoda::u64 entries;
};
extern "C" constinit FrameRefsExport pagoda_frame_refs = {};

/// Where the frame allocator's bitmaps are, for GDB's `frames` and `./pagoda run --memview`
/// (tools/gdb/pagoda_pt/frames.py): {used, managed} as kernel addresses in the window, and their
/// length in 64-bit words; one bit per frame from physical 0 (FrameAllocator::used_bitmap()).
struct FrameBitmapsExport {
  pagoda::u64 used;
  pagoda::u64 managed;
  pagoda::u64 words;
};
extern "C" constinit FrameBitmapsExport pagoda_frame_bitmaps = {};

namespace pagoda::vm {
namespace {

using Format = arch::PageTableFormat;

FrameAllocator g_frames;
// The grader reads the bitmap g_frames really uses (grade/pagoda_grade/processes.py, FrameBitmap).
PAGODA_FACT(frame_allocator_used_offset, FrameAllocator::used_bits_offset())
PAGODA_FACT(frame_allocator_words_offset, FrameAllocator::words_offset())
FrameRefs g_frame_refs;
bool g_ready = false;  ///< the kernel's own root is live (enter_kernel_space())

/// The kernel's address space lives here, built in place by init() and never destroyed.
alignas(AddressSpace) u8 g_kernel_space_storage[sizeof(AddressSpace)];
AddressSpace* g_kernel_space = nullptr;
/// This CPU's temporary-mapping slots (mm/window/temp_map.hpp).
constinit TempMapArea g_temp_maps;

/// The boot stub's root, named for the debugging tools (mm/space/debug_roots.hpp) from init() until
/// its frames are reclaimed (built in place: it must outlive init()'s frame).
alignas(debug::PublishedRoot) u8 g_boot_root_storage[sizeof(debug::PublishedRoot)];
debug::PublishedRoot* g_boot_root = nullptr;

/// Usable RAM at or above kLowMemoryEnd, merged and sorted: computed once from the boot map,
/// so that phys_to_ptr() does not scan the memory map on every access.
PhysRange g_ram[MemoryMap::kMaxRegions];
usize g_ram_count = 0;
usize g_ram_last = 0;  ///< the range the last lookup hit (most lookups hit it again)

void collect_ram(const MemoryMap& map) {
  g_ram_count = g_ram_last = 0;
  for (const MemoryRegion& r : map) {
    if (r.type != MemoryType::Usable || r.end().value() <= layout::kLowMemoryEnd) continue;
    const PhysAddr base(max(r.base.value(), layout::kLowMemoryEnd));
    if (g_ram_count > 0 && g_ram[g_ram_count - 1].end() == base) g_ram[g_ram_count - 1].size += r.end() - base;
    else g_ram[g_ram_count++] = {base, r.end() - base};
  }
}

/// True when [pa, pa + size) is usable RAM the kernel may touch (at or above kLowMemoryEnd).
bool is_usable_ram(PhysAddr pa, usize size) {
  if (pa.value() + size < pa.value()) return false;
  const auto inside = [&](const PhysRange& r) { return r.base <= pa && pa.offset(size) <= r.end(); };
  if (g_ram_last < g_ram_count && inside(g_ram[g_ram_last])) return true;
  for (usize i = 0; i < g_ram_count; ++i) {
    if (!inside(g_ram[i])) continue;
    g_ram_last = i;
    return true;
  }
  return false;
}

/// A part of the kernel image: where it is linked and where it was loaded.
struct ImagePart {
  VirtAddr va;
  PhysAddr pa;
  u64 size;
};

ImagePart image_part(const char* start, const char* end) {
  const u64 va = align_down(reinterpret_cast<u64>(start), kPageSize);
  const u64 size = align_up(reinterpret_cast<u64>(end), kPageSize) - va;
  return {VirtAddr(va), PhysAddr(va - reinterpret_cast<u64>(__kernel_virt_offset)), size};
}

/// The physical memory the kernel image occupies, boot stub included (never allocated).
PhysRange image_phys() {
  const u64 start = reinterpret_cast<u64>(__kernel_phys_start);
  return {PhysAddr(start), align_up(reinterpret_cast<u64>(__kernel_phys_end), kPageSize) - start};
}

/// The physical memory of the kernel proper, which the image mapping covers with the right
/// permissions (RAM mappings skip it; the boot stub before it is reclaimed RAM).
PhysRange linked_image_phys() {
  const ImagePart text = image_part(__text_start, __text_end);
  return {text.pa, align_up(reinterpret_cast<u64>(__kernel_phys_end), kPageSize) - text.pa.value()};
}

/// Page tables live in frames the kernel can reach, from the allocator, through phys_to_ptr().
class KernelTableMemory final : public TableMemory {
 public:
  Result<PhysAddr> allocate_table() override {
    const PhysAddr frame = TRY(g_frames.allocate_below(reachable_limit()));
    auto* entries = static_cast<u64*>(phys_to_ptr(frame, kPageSize));
    if (entries == nullptr) panic("frame {:#x} from the allocator is not reachable", frame.value());
    arch::zero_page(entries);  // every entry not present
    return frame;
  }
  void free_table(PhysAddr table) override { g_frames.free(table); }
  u64* table_entries(PhysAddr table) override { return static_cast<u64*>(phys_to_ptr(table, kPageSize)); }
};

constinit KernelTableMemory g_table_memory;

/// Bitmap storage for the allocator: the first fit in reachable usable RAM above the low
/// memory that does not overlap @p avoid.
Result<PhysRange> place_bitmaps(u64 bytes, PhysRange avoid) {
  bytes = align_up(bytes, kPageSize);
  for (usize i = 0; i < g_ram_count; ++i) {
    const PhysRange& r = g_ram[i];
    u64 lo = r.base.value();
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
PhysAddr reachable_limit() { return PhysAddr(layout::kWindowPhysBase + layout::kWindowSize); }

void* phys_to_ptr(PhysAddr pa, usize size) {
  if (!is_usable_ram(pa, size) || pa.value() < layout::kWindowPhysBase || pa.offset(size) > reachable_limit())
    return nullptr;
  return reinterpret_cast<void*>(layout::kWindowBase + (pa.value() - layout::kWindowPhysBase));
}

VirtAddr device_virt(PhysAddr pa) { return VirtAddr(layout::kMmioBase + pa.value()); }

Perms kernel_perms(Perms perms) {
  perms.global = true;  // the kernel half is the same in every address space
  return perms;
}

Result<void> map_ram(AddressSpace& space, const MemoryMap& map, PhysRange skip) {
  constexpr u64 kBlock = AddressSpace::kBlockSize;
  static_assert((layout::kWindowBase - layout::kWindowPhysBase) % kBlock == 0, "blocks need a block-aligned window");
  const Perms perms = kernel_perms(kKernelData);
  const auto window = [](u64 pa) { return VirtAddr(layout::kWindowBase + (pa - layout::kWindowPhysBase)); };
  return for_each_ram_piece(map, reachable_limit(), skip, [&](PhysAddr base, u64 size) -> Result<void> {
    // 4 KiB pages up to the first block boundary, blocks while a whole one fits, 4 KiB pages after
    const u64 end = base.value() + size;
    u64 pa = base.value();
    const u64 head_end = min(end, align_up(pa, kBlock));
    if (pa < head_end) TRY(space.map_range(window(pa), PhysAddr(pa), head_end - pa, perms));
    for (pa = head_end; pa + kBlock <= end; pa += kBlock) TRY(space.map_block(window(pa), PhysAddr(pa), kBlock, perms));
    if (pa < end) TRY(space.map_range(window(pa), PhysAddr(pa), end - pa, perms));
    return {};
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
// // Lab 1's identity map lies in the lower half, which every process will have its own of.
// Perms kernel_perms(Perms perms) { return perms; }
//
// Result<void> map_ram(AddressSpace& space, const MemoryMap& map, PhysRange skip) {
//   (void)lab_not_done("lab 2: replace the identity map by the physical window: reachable_limit(), "
//                      "phys_to_ptr(), device_virt() and map_ram() in kernel/mm/vm.cpp "
//                      "(labs/02-higher-half/README.md)");
//   return for_each_ram_piece(map, reachable_limit(), skip, [&](PhysAddr base, u64 size) {
//     return space.map_range(VirtAddr(base.value()), base, size, kKernelData);
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
          Hex{max(layout::kLowMemoryEnd, layout::kWindowPhysBase)}, Hex{reachable_limit().value()});
  return va.value();
}

Result<PhysAddr> try_virt_to_phys(VirtAddr va) {
  const u64 offset = va.value() - layout::kWindowBase;
  if (va.value() < layout::kWindowBase || offset >= reachable_limit().value() - layout::kWindowPhysBase)
    return Error::InvalidArgument;
  const PhysAddr pa(layout::kWindowPhysBase + offset);
  if (phys_to_ptr(pa, 1) != reinterpret_cast<void*>(va.value())) return Error::InvalidArgument;
  return pa;
}

PhysAddr virt_to_phys(VirtAddr va) {
  const Result<PhysAddr> pa = try_virt_to_phys(va);
  if (pa.is_error()) panic("virt_to_phys: {} is not an address in the kernel's physical window", Hex{va.value()});
  return pa.value();
}

void* device_ptr(PhysAddr pa) {
  // Before the kernel's own root is live, the boot stubs' device area (kMmioBase + physical,
  // arch/<isa>/boot.S) reaches the devices: never the identity, which the kernel leaves.
  return reinterpret_cast<void*>(g_ready ? device_virt(pa).value() : layout::kMmioBase + pa.value());
}

namespace {

/// The kernel's map: the image with each section's permissions, RAM, devices.
Result<void> build_kernel_map(AddressSpace& space, const MemoryMap& map) {
  // LAB 1 BEGIN map the kernel image with real permissions, then RAM and devices
  const ImagePart text = image_part(__text_start, __text_end);
  const ImagePart rodata = image_part(__rodata_start, __rodata_end);
  const ImagePart data = image_part(__data_start, __data_end);
  TRY(space.map_range(text.va, text.pa, text.size, kernel_perms(kKernelText)));
  TRY(space.map_range(rodata.va, rodata.pa, rodata.size, kernel_perms(kKernelReadOnly)));
  TRY(space.map_range(data.va, data.pa, data.size, kernel_perms(kKernelData)));
  TRY(map_ram(space, map, linked_image_phys()));
  for (const PhysRange& d : arch::device_ranges())
    TRY(space.map_range(device_virt(d.base), d.base, align_up(d.size, kPageSize), kernel_perms(kKernelDevice)));
  return {};
  // LAB 1 SKELETON
  // (void)space;
  // (void)map;
  // (void)image_part;
  // (void)linked_image_phys;
  // return Error(Error::NotImplemented, "lab 1: write build_kernel_map() in kernel/mm/vm.cpp "
  //                                     "(labs/01-identity-map/README.md)");
  // LAB 1 END
}

/// The boot option vm_check=on|off: whether AddressSpace::activate() checks a root before
/// loading it (mm/space/critical_ranges.hpp). Off, a lab can show what a bad switch does on its own.
void configure_switch_checks(StringView cmdline) {
  const CmdlineValue option = cmdline_get(cmdline, "vm_check");
  if (!option.found) return;
  if (option.value == "off") {
    AddressSpace::set_switch_checks(false);
    println("vm: vm_check=off: roots are loaded without checking that they map the stack, the code and the "
            "trap entry");
  } else if (option.value == "on") {
    AddressSpace::set_switch_checks(true);
  } else {
    println("vm: vm_check={}: not 'on' or 'off'; the pre-switch check stays {}", option.value,
            AddressSpace::switch_checks() ? "on" : "off");
  }
}

}  // namespace

Result<void> init(const BootInfo& boot) {
  collect_ram(boot.memory);
  configure_switch_checks(boot.cmdline());
  g_boot_root = construct_at(reinterpret_cast<debug::PublishedRoot*>(g_boot_root_storage),
                             arch::live_root_for(VirtAddr(layout::kKernelHalfBase)), debug::RootKind::Boot, "boot");
  const PhysRange image = image_phys();
  PhysAddr top;
  for (const MemoryRegion& r : boot.memory)
    if (r.type == MemoryType::Usable && r.end() > top) top = r.end();
  const usize words = 3 * FrameAllocator::words_for(top);
  // The frame reference counts (lab 6) live right after the bitmaps, in the same reserved range.
  const usize ref_entries = FrameRefs::entries_for(PhysAddr(u64(words / 3) * FrameAllocator::kBitsPerWord * kPageSize));
  const PhysRange bitmaps = TRY(place_bitmaps(words * sizeof(u64) + ref_entries * sizeof(u16), image));
  auto* storage = static_cast<u64*>(phys_to_ptr(bitmaps.base, bitmaps.size));
  if (storage == nullptr) return Error::NoMemory;
  const PhysRange reserved[] = {{PhysAddr(0), layout::kLowMemoryEnd}, image, bitmaps};
  TRY(g_frames.init(boot.memory, Span<u64>(storage, words), Span<const PhysRange>(reserved, array_size(reserved))));
  g_frame_refs.init(Span<u16>(reinterpret_cast<u16*>(storage + words), ref_entries));
  pagoda_frame_refs = {reinterpret_cast<u64>(storage + words), ref_entries};
  pagoda_frame_bitmaps = {reinterpret_cast<u64>(g_frames.used_bitmap().data()),
                          reinterpret_cast<u64>(g_frames.managed_bitmap().data()), g_frames.used_bitmap().size()};

  print("vm: ");
  if (!arch::paging_controls_ok(console_sink())) panic("paging protections are off (see above)");
  println("");

  const usize before = g_frames.free_frames();
  AddressSpace space = TRY(AddressSpace::create_kernel(g_table_memory));
  const Result<void> half = space.prepare_kernel_half();
  if (half.is_error()) {
    if (half.error() != Error::NotImplemented) return half.error();
    lab_todo(half.error());  // lab 2 not done: lab 1's kernel works without a prepared kernel half
  }
  TRY(build_kernel_map(space, boot.memory));  // a lab skeleton returns before any switch
  // The page below the kernel's own stack is its guard: never mapped, so that an overflow
  // faults there (and is reported as one) instead of writing over the data below.
  const VirtAddr guard(reinterpret_cast<u64>(boot_stack_guard));
  if (space.query(guard).mapped()) TRY(space.unmap_range(guard, kPageSize));
  g_kernel_space = construct_at(reinterpret_cast<AddressSpace*>(g_kernel_space_storage), move(space));
  println("vm: kernel page table at {:#x} ({} frames of tables)", g_kernel_space->root().value(),
          before - g_frames.free_frames());
  return {};
}

namespace {

// What enter_kernel_space() carries across the move to the kernel's stack.
KernelMain g_after_switch = nullptr;
const BootInfo* g_after_switch_boot = nullptr;
u64 g_boot_reclaimed = 0;  ///< bytes of the boot stub's memory given to the allocator

/// The top of the kernel's own stack, boot_stack: linked high, part of the image, mapped by the
/// boot tables and by the kernel's root alike.
uptr kernel_stack_top() { return reinterpret_cast<uptr>(boot_stack_top); }

/// The temp-map slots hang under the kernel half, which every root shares: made once, when
/// the kernel's root is live (lab 4; its skeleton keeps user memory in the window, as lab 3).
void make_temp_maps() {
  const Result<void> temp = g_temp_maps.init(*g_kernel_space, 0);
  if (temp.is_error()) {
    if (temp.error() != Error::NotImplemented) panic("vm: no temp-map area: {}", temp.error());
    lab_todo(temp.error());
    return;
  }
  TempMapArea::set_current(&g_temp_maps);
}

/// Loads the kernel's root (the pre-switch check first: AddressSpace::activate()). From here on
/// vm::ready() is true and devices are reached where the kernel's root maps them.
void activate_kernel_root() {
  g_kernel_space->activate();
  g_ready = true;
  make_temp_maps();
}

/// Gives the boot stub's page tables to the frame allocator: only once they are not live (and
/// no TLB entry made through them is used any more: loading a root flushes those).
void reclaim_boot_tables() {
  if (g_boot_root != nullptr) g_boot_root->withdraw();
  g_frames.release(arch::boot_page_tables());
  g_boot_reclaimed += arch::boot_page_tables().size;
}

/// Gives the boot stub's entry stack to the frame allocator: only once the CPU runs on another
/// stack, since the allocator hands its frames out again (zeroed, as page tables perhaps).
void reclaim_entry_stack() {
  g_frames.release(arch::boot_entry_stack());
  g_boot_reclaimed += arch::boot_entry_stack().size;
}

/// The rest of the kernel's life, on whichever stack it runs now.
[[noreturn]] void run_kernel() {
  println("vm: on the kernel's root, stack at {}; {} KiB of boot memory reclaimed; {} of {} frames free",
          Hex{reinterpret_cast<u64>(__builtin_frame_address(0))}, g_boot_reclaimed / KiB, g_frames.free_frames(),
          g_frames.managed_frames());
  g_after_switch(*g_after_switch_boot);
  panic("the kernel's main function returned");
}

// LAB 2 BEGIN leave the low half: the kernel's stack first, then the kernel's root
// Runs on the kernel's own stack (high): nothing the CPU uses lies in the low half any more.
void on_kernel_stack(void*) {
  // The boot tables map the image, so the kernel stack was usable before the switch; now the
  // kernel's root, which maps nothing low, replaces them: the identity is gone.
  activate_kernel_root();
  // Nothing uses the boot stub's memory any more: its tables are not live, and the CPU left
  // its entry stack. Both go back to the allocator.
  reclaim_boot_tables();
  reclaim_entry_stack();
  run_kernel();
}

}  // namespace

void enter_kernel_space(KernelMain next, const BootInfo& boot) {
  g_after_switch = next;
  g_after_switch_boot = &boot;
  // Still on the boot stub's low entry stack, reached through the boot tables' identity: move
  // to the kernel's stack while those tables still map both.
  arch::run_on_stack(kernel_stack_top(), on_kernel_stack, nullptr);
}
// LAB 2 SKELETON
// }  // namespace
//
// void enter_kernel_space(KernelMain next, const BootInfo& boot) {
//   g_after_switch = next;
//   g_after_switch_boot = &boot;
//   (void)lab_not_done("lab 2: leave the boot stub's low stack and tables for the kernel's own: "
//                      "enter_kernel_space() in kernel/mm/vm.cpp (labs/02-higher-half/README.md)");
//   // Lab 1's way: the kernel's root maps RAM at its physical address, the boot stub's entry
//   // stack included, so the kernel switches roots where it stands and never leaves that stack.
//   (void)kernel_stack_top;
//   (void)reclaim_entry_stack;
//   activate_kernel_root();
//   reclaim_boot_tables();
//   run_kernel();
// }
// LAB 2 END

bool ready() { return g_ready; }

namespace {

/// Lab 3's way to a frame, what the lab-4 skeleton keeps: the window, where every frame of lab 3
/// lies (its user memory came from below reachable_limit()). A frame above it has no kernel address.
[[maybe_unused]] u8* window_bytes(PhysAddr pa) {
  if (void* p = phys_to_ptr(pa, kPageSize)) return static_cast<u8*>(p);
  panic("lab 4: frame {:#x} lies beyond the kernel's window: write zero_frame(), write_frame(), copy_frame() and "
        "allocate_user_frame() in kernel/mm/vm.cpp (labs/04-temp-mappings/README.md)", pa.value());
}

}  // namespace

// LAB 4 BEGIN reach any frame: through the window when it shows the frame, else a temporary mapping; user memory from the top
void zero_frame(PhysAddr pa) {
  if (void* p = phys_to_ptr(pa, kPageSize)) {
    arch::zero_page(p);
    return;
  }
  TempMap map(pa);
  arch::zero_page(map.bytes());
}

void write_frame(PhysAddr pa, usize offset, const void* src, usize size) {
  PAGODA_ASSERT(offset <= kPageSize && size <= kPageSize - offset);
  if (auto* p = static_cast<u8*>(phys_to_ptr(pa, kPageSize))) {
    memcpy(p + offset, src, size);
    return;
  }
  TempMap map(pa);
  memcpy(map.bytes() + offset, src, size);
}

Result<PhysAddr> allocate_user_frame() {
  // Above the window once temporary mappings reach it: the window's frames stay for the tables.
  return TempMapArea::current() != nullptr ? g_frames.allocate_high() : g_frames.allocate_below(reachable_limit());
}

void copy_frame(PhysAddr to, PhysAddr from) {
  TempMap source(from);
  TempMap target(to);
  arch::copy_page(target.bytes(), source.bytes());  // the ISA's cheapest page copy (mm/space/mmu.hpp)
}
// LAB 4 SKELETON
// // Lab 3's way: every frame through the window (user memory comes from below it, too).
// void zero_frame(PhysAddr pa) { arch::zero_page(window_bytes(pa)); }
//
// void write_frame(PhysAddr pa, usize offset, const void* src, usize size) {
//   PAGODA_ASSERT(offset <= kPageSize && size <= kPageSize - offset);
//   memcpy(window_bytes(pa) + offset, src, size);
// }
//
// Result<PhysAddr> allocate_user_frame() { return g_frames.allocate_below(reachable_limit()); }
//
// void copy_frame(PhysAddr to, PhysAddr from) { arch::copy_page(window_bytes(to), window_bytes(from)); }
// LAB 4 END

FrameAllocator& frames() { return g_frames; }

FrameRefs& frame_refs() { return g_frame_refs; }

void put_user_frame(PhysAddr frame) {
  // LAB 6 BEGIN one mapping of a user frame is gone: drop its reference; the last one frees it
  if (g_frame_refs.drop(frame)) g_frames.free(frame);
  // LAB 6 SKELETON
  // g_frames.free(frame);  // labs 3-5: every user frame has one mapping
  // LAB 6 END
}

AddressSpace& kernel_space() {
  PAGODA_ASSERT(g_ready);
  return *g_kernel_space;
}

namespace {
AddressSpace* g_current_space = nullptr;
}  // namespace

AddressSpace* current_space() {
  if (!g_ready) return nullptr;
  return g_current_space != nullptr ? g_current_space : g_kernel_space;
}

void set_current_space(AddressSpace* space) { g_current_space = space; }

Walk walk_active(VirtAddr va) { return walk_tree<Format>(arch::live_root_for(va), g_table_memory, va); }

bool mapped_now(VirtAddr va) {
  if (g_kernel_space == nullptr) return true;
  const Walk w = walk_active(va);
  return w.mapped() && w.perms.read;  // a held leaf maps nothing the CPU can use
}

namespace {

/// Gives the page at @p page of region @p vma (page aligned, inside it) a frame, filled as the
/// region's kind says, and maps it in @p space with the region's page permissions
/// (page_perms_of()). An image page holds the file's bytes from vma.offset + (page - vma.start),
/// at most vma.file_size - (page - vma.start) of them, and zeros after them (the bss tail of the
/// last file page); a page past the file bytes, and a page of every other kind, is all zeros.
/// The frame is written before it is mapped, through the window or a temporary mapping
/// (zero_frame(), write_frame()), never through @p space, which need not be live. On failure
/// nothing stays allocated.
Result<void> populate(AddressSpace& space, const Vma& vma, u64 page) {
  // LAB 5 BEGIN bring in one page of a region: a zeroed frame, the file's bytes, then map it
  const PhysAddr frame = TRY(allocate_user_frame());
  zero_frame(frame);
  if (vma.kind == VmaKind::Image && page - vma.start < vma.file_size) {
    const u64 at = page - vma.start;
    const usize bytes = usize(min<u64>(kPageSize, vma.file_size - at));
    write_frame(frame, 0, static_cast<const u8*>(vma.source) + vma.offset + at, bytes);
  }
  const Result<void> mapped = space.map(VirtAddr(page), frame, page_perms_of(vma));
  if (mapped.is_error()) g_frames.free(frame);
  return mapped;
  // LAB 5 SKELETON
  // (void)space;
  // (void)vma;
  // (void)page;
  // return lab_not_done("lab 5: write populate() in kernel/mm/vm.cpp (labs/05-vmas/README.md)");
  // LAB 5 END
}

/// A Grow verdict for @p page: extends the grows-down region just above @p page (the stack)
/// down to it in @p regions, so that @p growth ([page, the stack's start), the stack's
/// permissions, kind and flags: decide_fault() made it) becomes part of that region. NoMemory
/// when the record cannot take it; nothing changes then.
Result<void> grow_stack(UserRegions& regions, const Vma& growth, u64 page) {
  // LAB 5 BEGIN grow the stack down to a page: the record first
  Vma part = growth;
  part.start = page;
  part.end = regions.vmas.overlapping(page, align_down(~u64{0}, kPageSize))[0].start;
  return regions.vmas.insert(part);  // it merges into the stack
  // LAB 5 SKELETON
  // (void)regions;
  // (void)growth;
  // (void)page;
  // return lab_not_done("lab 5: write grow_stack() in kernel/mm/vm.cpp (labs/05-vmas/README.md)");
  // LAB 5 END
}

/// Why the last allowed user fault was not resolved (explain_unresolved()). One CPU: the kill
/// report that reads it follows the fault that wrote it (every allowed fault that ends a process
/// writes it; the report checks the page).
struct Unresolved {
  enum class Why : u8 { None, Populate, Grow, Refault, Widen } why = Why::None;
  u64 page = 0;
  Access access{};
  Vma vma{};      ///< the region the verdict named
  Perms mapped{};  ///< Refault: the page's permissions
  Error error{Error::NotFound};  ///< Populate, Grow, Widen: what failed
};
Unresolved g_unresolved;

FaultDecision unresolved(Unresolved::Why why, u64 page, Access access, const Vma& vma,
                         Error error = Error(Error::NotFound), Perms mapped = {}) {
  g_unresolved = Unresolved{.why = why, .page = page, .access = access, .vma = vma, .mapped = mapped, .error = error};
  return FaultDecision::KillProcess;
}

/// A write fault at @p page, mapped read-only to @p frame in a region that allows writing
/// (lab 6): a frame shared copy-on-write gets a copy of its own, with the region's permissions
/// @p perms; a frame this mapping alone holds (count 1: the other sharers are gone) is taken
/// back as it is, only widened. (Never inlined: the lab-6 grader stops at its entry and return
/// to see what each fault did to the frame, its copy and their counts.)
[[gnu::noinline]] Result<void> copy_on_write(AddressSpace& space, VirtAddr page, PhysAddr frame, Perms perms) {
  // LAB 6 BEGIN the copy-on-write fault
  if (g_frame_refs.count(frame) <= 1) return space.protect(page, kPageSize, perms);
  const PhysAddr copy = TRY(allocate_user_frame());
  copy_frame(copy, frame);
  {
    ConsistencyBatch batch = space.batch();
    AddressSpace::Cursor c = space.cursor(batch, page);
    if (Result<void> moved = c.remap(copy, perms); moved.is_error()) {
      g_frames.free(copy);
      return moved.error();
    }
  }  // the batch flushes: no TLB entry reaches the shared frame through this root any more
  put_user_frame(frame);  // this mapping's reference (never the last: the count was above 1)
  return {};
  // LAB 6 SKELETON
  // (void)space;
  // (void)page;
  // (void)frame;
  // (void)perms;
  // return Error(Error::NotImplemented, "lab 6: write copy_on_write() in kernel/mm/vm.cpp (labs/06-fork/README.md)");
  // LAB 6 END
}

/// A fault at a user address of a space with a record (lab 5): what the record says.
FaultDecision resolve_user_fault(AddressSpace& space, UserRegions& regions, VirtAddr va, Access access) {
  using Why = Unresolved::Why;
  const FaultVerdict verdict = decide_fault(regions, va.value(), access);
  const u64 page = va.align_down(kPageSize).value();
  switch (verdict.action) {
    case FaultAction::Deny: return FaultDecision::KillProcess;
    case FaultAction::Grow:
      if (Result<void> grown = grow_stack(regions, verdict.vma, page); grown.is_error())
        return unresolved(Why::Grow, page, access, verdict.vma, grown.error());
      break;
    case FaultAction::Populate: break;
  }
  const Walk walk = space.query(VirtAddr(page));
  if (walk.mapped()) {
    // Mapped, yet the region allows the access: the entry is narrower than its region (a
    // change of permissions not yet applied, or lab 6's copy-on-write). Widen it once; a
    // second fault is not ours.
    if (walk.perms == page_perms_of(verdict.vma))
      return unresolved(Why::Refault, page, access, verdict.vma, Error(Error::NotFound), walk.perms);
    Result<void> widened = access.write && !walk.perms.write
                               ? copy_on_write(space, VirtAddr(page), walk.pa, page_perms_of(verdict.vma))
                               : space.protect(VirtAddr(page), kPageSize, page_perms_of(verdict.vma));
    return widened.ok() ? FaultDecision::Resolved : unresolved(Why::Widen, page, access, verdict.vma, widened.error());
  }
  const Result<void> brought = populate(space, verdict.vma, page);
  return brought.ok() ? FaultDecision::Resolved : unresolved(Why::Populate, page, access, verdict.vma, brought.error());
}

}  // namespace

FaultDecision handle_fault(AddressSpace* space, VirtAddr va, Access access) {
  // Lab 5: a user access (or a user copy, which the arch's trap code passes as one) to a space
  // with a record asks the record: a page of a region that allows the access is brought in (the
  // stack grows down first when the page lies just below it); anything else ends the process
  // (a user copy returns EFAULT through its fix-up instead). Lab 6 adds copy-on-write. Every
  // other fault is not resolved: a user access ends its process; the kernel's own fault is a
  // bug (touching user memory outside a checked copy included: the report says so, from the
  // walk).
  if (access.user && space != nullptr && space->regions() != nullptr)
    return resolve_user_fault(*space, *space->regions(), va, access);
  return access.user ? FaultDecision::KillProcess : FaultDecision::KernelBug;
}

bool rescue_report(FormatSink& sink, VirtAddr address) {
  if (g_kernel_space == nullptr) return false;
  const VirtAddr half(layout::kKernelHalfBase);
  const PhysAddr live = arch::live_root_for(half);
  if (address.value() < layout::kKernelHalfBase) {
    const bool root = align_down(address.value(), kPageSize) == live.value() ||
                      align_down(address.value(), kPageSize) == arch::live_root_for(address).value();
    format_to(sink, "it read {:#x}, a low address{}: the report reads page tables through phys_to_ptr(), which gave "
                    "the physical address itself instead of the window's (kWindowBase + physical: lab 2)",
              address.value(), root ? ", the live root's own physical address" : "");
    return true;
  }
  if (address.value() < layout::kWindowBase || address.value() >= layout::kWindowBase + layout::kWindowSize)
    return false;
  const PhysAddr kernel = g_kernel_space->query(half).root;
  if (live == kernel || kernel == PhysAddr()) return false;
  g_kernel_space->arch().activate();  // raw: no check, the old root may be the broken thing
  const u64* mine = static_cast<const u64*>(phys_to_ptr(live, kPageSize));
  const u64* theirs = static_cast<const u64*>(phys_to_ptr(kernel, kPageSize));
  if (mine == nullptr || theirs == nullptr) {
    format_to(sink, "the live root {:#x} is not a table in RAM", live.value());
    return true;
  }
  const usize first = Format::index(half, 0);
  usize differ = 0, at = 0, present = 0;
  for (usize i = first; i < Format::kEntriesPerTable; ++i) {
    present += Format::is_present(mine[i], 0) ? 1 : 0;
    if (Format::output_address(mine[i], 0) != Format::output_address(theirs[i], 0) ||
        Format::is_present(mine[i], 0) != Format::is_present(theirs[i], 0)) {
      if (differ++ == 0) at = i;
    }
  }
  if (differ == 0) {
    format_to(sink, "the live root {:#x} shares the kernel half, yet reading kernel memory through it faulted", live.value());
    return true;
  }
  format_to(sink, "the live root {:#x} does not share the kernel half: {} of its {} kernel-half top-level entries differ "
                  "from the kernel root's ({} entry {} is {:#x}, the kernel's {:#x}; {} present), so the kernel's own "
                  "memory (the physical window, through which it reads page tables) is not mapped there",
            live.value(), differ, Format::kEntriesPerTable - first, Format::level_name(0), at, mine[at], theirs[at],
            present);
  return true;
}

bool explain_unresolved(FormatSink& sink, VirtAddr va) {
  const Unresolved& u = g_unresolved;
  if (u.why == Unresolved::Why::None || u.page != va.align_down(kPageSize).value()) return false;
  const char* what = u.access.execute ? "an instruction fetch" : u.access.write ? "a write" : "a read";
  switch (u.why) {
    case Unresolved::Why::None: break;
    case Unresolved::Why::Refault:
      format_to(sink, "decide_fault() allowed {} in VMA ", what);
      u.vma.format(sink);
      format_to(sink, ", but the page is already mapped {}, as that VMA says, and the CPU refused the access there",
                u.mapped);
      return true;
    case Unresolved::Why::Grow:
      format_to(sink, "the stack could not grow down to the page ({}): ", u.error);
      break;
    case Unresolved::Why::Populate:
      if (u.error == Error::NoMemory) format_to(sink, "allowed by its VMA, but no frame could be given (out of memory): ");
      else format_to(sink, "allowed by its VMA, but populate() failed ({}): ", u.error);
      break;
    case Unresolved::Why::Widen:
      format_to(sink, "allowed by its VMA, but widening the page's entry failed ({}): ", u.error);
      break;
  }
  u.vma.format(sink);
  return true;
}

void report_fault(FormatSink& sink, VirtAddr va, Access access) {
  const Walk walk = walk_active(va);
  walk.format(sink);
  format_to(sink, "  reason: ");
  explain_fault(sink, walk, access);
  format_to(sink, "\n");
  if (va.value() >= layout::kTempMapBase && va.value() < layout::kStackBase) {
    format_to(sink, "  ");
    (void)describe_temp_map_address(sink, va);
    format_to(sink, "\n");
  }
}

}  // namespace pagoda::vm
