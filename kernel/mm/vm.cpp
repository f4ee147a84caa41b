/// @file vm.cpp
/// @brief The kernel's map: building it (init()), entering it (enter_kernel_space()), and which
/// address space is live. The window, the frames and the faults are in window.cpp, frames.cpp and
/// fault.cpp (their shared state: vm_parts.hpp).

#include "mm/vm.hpp"

#include "core/cpu.hpp"

#include "mm/vm_parts.hpp"

#include "core/arch.hpp"
#include "core/cmdline.hpp"
#include "core/lab.hpp"
#include "core/panic.hpp"
#include "mm/space/debug_roots.hpp"
#include "mm/base/layout.hpp"
#include "mm/space/mmu.hpp"
#include "mm/tempmap/temp_map.hpp"

// Section bounds from the linker script (arch/<isa>/kernel.ld): virtual addresses, except the
// *_phys ones; __kernel_virt_offset's address is the offset between the two.
extern "C" char __kernel_start[], __kernel_end[], __text_start[], __text_end[], __rodata_start[], __rodata_end[],
    __data_start[], __data_end[], __kernel_phys_start[], __kernel_phys_end[], __kernel_virt_offset[];
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
/// length in 64-bit words; one bit per frame from physical 0 (FrameAllocator::used_bitmap()); and
/// where the allocator's count of free frames is (a kernel address), for the audit of a failure.
struct FrameBitmapsExport {
  pagoda::u64 used;
  pagoda::u64 managed;
  pagoda::u64 words;
  pagoda::u64 free_count;
};
extern "C" constinit FrameBitmapsExport pagoda_frame_bitmaps = {};

namespace pagoda::vm {

bool g_ready = false;  ///< the kernel's own root is live (enter_kernel_space())
AddressSpace* g_kernel_space = nullptr;

namespace {

using Format = arch::PageTableFormat;

/// The kernel's address space lives here, built in place by init() and never destroyed.
alignas(AddressSpace) u8 g_kernel_space_storage[sizeof(AddressSpace)];
/// This CPU's temporary-mapping slots (mm/tempmap/temp_map.hpp).
constinit TempMapArea g_temp_maps[kMaxCpus];  ///< each CPU's own (lab 8)

/// The boot stub's root, named for the debugging tools (mm/space/debug_roots.hpp) from init() until
/// its frames are reclaimed (built in place: it must outlive init()'s frame).
alignas(debug::PublishedRoot) u8 g_boot_root_storage[sizeof(debug::PublishedRoot)];
debug::PublishedRoot* g_boot_root = nullptr;

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
  /// A table goes back to the allocator only when nothing in it is mapped any more (unmap frees
  /// the tables it left empty; a teardown clears each before freeing it): a table freed with a
  /// present entry takes the mappings under it away from whoever still uses them, and the
  /// allocator hands it out again. Panics naming it, at the free, before that happens.
  void free_table(PhysAddr table) override {
    if (const u64* entries = table_entries(table))
      for (usize i = 0; i < Format::kEntriesPerTable; ++i)
        if (Format::is_present(entries[i], Format::kLevels - 1))
          panic("vm: page table {:#x} is given back to the frame allocator while its entry {} ({:#x}) is still "
                "present: a table may be freed only once it is empty (an unmap frees only the tables it left with "
                "no present entry)",
                table.value(), i, entries[i]);
    g_frames.free(table);
  }
  u64* table_entries(PhysAddr table) override { return static_cast<u64*>(phys_to_ptr(table, kPageSize)); }
};

constinit KernelTableMemory g_table_memory;

}  // namespace

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

/// @p e, a failure of build_kernel_map(): an 'already exists' at an address of the physical
/// window noted with what it means there (map_ram() mapped window memory twice); else @p e.
Error window_overlap_noted(const Error& e) {
  if (!(e == Error::AlreadyExists) || !e.has_address || e.address < layout::kWindowBase ||
      e.address - layout::kWindowBase >= layout::kWindowSize)
    return e;
  return e.noted("a window address mapped twice: map_ram() must map each RAM piece once, from its own start (a 2 MiB "
                 "block whose start is rounded down below its piece's start covers pages already mapped)");
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

/// reachable_limit() (lab 2) bounds the physical memory phys_to_ptr() reaches: RAM the window
/// shows, from the window's physical base up. A limit at or below that base reaches no RAM at
/// all, and every frame the kernel asks for is refused: say so here, not as "out of memory".
void check_reachable_limit() {
  const u64 limit = reachable_limit().value();
  if (limit <= layout::kWindowPhysBase)
    panic("vm: reachable_limit() is {:#x}, at or below the physical base of the window ({:#x}): the window shows "
          "physical [{:#x}, {:#x}), so no RAM is reachable (a limit computed as the window's size, not its base plus "
          "its size?)",
          limit, layout::kWindowPhysBase, layout::kWindowPhysBase, layout::kWindowPhysBase + layout::kWindowSize);
}

}  // namespace

Result<void> init(const BootInfo& boot) {
  collect_ram(boot.memory);
  check_reachable_limit();
  configure_switch_checks(boot.cmdline());
  g_boot_root = construct_at(reinterpret_cast<debug::PublishedRoot*>(g_boot_root_storage),
                             arch::live_root_for(VirtAddr(layout::kKernelHalfBase)), debug::RootKind::Boot, "boot");
  const PhysRange image = image_phys();
  const usize words = 3 * FrameAllocator::words_for(usable_end(boot.memory));
  // The frame reference counts (lab 6) live right after the bitmaps, in the same reserved range.
  const usize ref_entries = FrameRefs::entries_for(PhysAddr(u64(words / 3) * FrameAllocator::kBitsPerWord * kPageSize));
  const PhysRange bitmaps = TRY(place_bitmaps(words * sizeof(u64) + ref_entries * sizeof(u16), image));
  auto* storage = static_cast<u64*>(phys_to_ptr(bitmaps.base, bitmaps.size));
  if (storage == nullptr) return Error::NoMemory;
  const PhysRange reserved[] = {{PhysAddr(0), layout::kLowMemoryEnd}, image, bitmaps};
  TRY(g_frames.init(boot.memory, Span<u64>(storage, words), Span<const PhysRange>(reserved, array_size(reserved))));
  g_frame_refs.init(Span<u16>(reinterpret_cast<u16*>(storage + words), ref_entries));
  g_frames.watch_refs(g_frame_refs.table());            // free() refuses a frame still shared
  ConsistencyBatch::set_frame_release(put_user_frame);  // user frames a batch unmapped, after its flush
  pagoda_frame_refs = {reinterpret_cast<u64>(storage + words), ref_entries};
  pagoda_frame_bitmaps = {reinterpret_cast<u64>(g_frames.used_bitmap().data()),
                          reinterpret_cast<u64>(g_frames.managed_bitmap().data()), g_frames.used_bitmap().size(),
                          reinterpret_cast<u64>(g_frames.free_count())};

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
  const Result<void> built = build_kernel_map(space, boot.memory);  // a lab skeleton returns before any switch
  if (built.is_error()) return window_overlap_noted(built.error());
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
/// the kernel's root is live (lab 4; its skeleton keeps user memory in the window, as lab 3);
/// the boot CPU's area, then one for each other CPU the kernel may bring up (lab 8).
void make_temp_maps() {
  const Result<void> temp = g_temp_maps[0].init(*g_kernel_space, 0);
  if (temp.is_error()) {
    if (temp.error() != Error::NotImplemented) panic("vm: no temp-map area: {}", temp.error());
    lab_todo(temp.error());
    return;
  }
  TempMapArea::set_current(&g_temp_maps[0]);
  // (one CPU online, labs 0-7: never used; an area init() refused leaves that CPU the boot CPU's)
  for (u32 cpu = 1; cpu < kMaxCpus; ++cpu)
    if (g_temp_maps[cpu].init(*g_kernel_space, cpu).ok()) TempMapArea::set_area_of(cpu, &g_temp_maps[cpu]);
}

/// The boot tables map the whole image, the guard page below boot_stack included: a stack that
/// ran into the guard, or was started at boot_stack's bottom, goes unnoticed until the kernel's
/// root, which leaves the guard out, is loaded. Named as what it is here, before the pre-switch
/// check can say only that the running stack is not mapped.
void check_stack_above_guard() {
  const u64 sp = reinterpret_cast<u64>(__builtin_frame_address(0));
  const u64 guard = reinterpret_cast<u64>(boot_stack_guard);
  if (sp - guard < kPageSize)
    panic("kernel stack overflow: the kernel runs on {:#x}, in the guard page below its own stack boot_stack [{:#x}, "
          "{:#x}), as it loads its root (which leaves the guard unmapped): the stack overflowed while the boot tables "
          "were live, or the stack pointer was set to boot_stack's bottom instead of its top",
          sp, reinterpret_cast<u64>(boot_stack_bottom), reinterpret_cast<u64>(boot_stack_top));
}

/// Loads the kernel's root (the pre-switch check first: AddressSpace::activate()). From here on
/// vm::ready() is true and devices are reached where the kernel's root maps them.
void activate_kernel_root() {
  check_stack_above_guard();
  g_kernel_space->activate();
  g_ready = true;
  make_temp_maps();
}

/// Gives the boot stub's page tables to the frame allocator: only once they are not live (and
/// no TLB entry made through them is used any more: loading a root flushes those). Panics, naming
/// the order, when a root the CPU translates through is one of them: the allocator would hand
/// out frames the MMU still walks (zeroed as page tables, they unmap the kernel under itself).
void reclaim_boot_tables() {
  const PhysRange tables = arch::boot_page_tables();
  const arch::LiveRoots live = arch::live_roots();
  for (usize i = 0; i < live.count; ++i)
    if (tables.base <= live.roots[i] && live.roots[i] < tables.end())
      panic("vm: the boot stub's tables [{:#x}, {:#x}) are given back to the frame allocator while they are still "
            "live ({} = {:#x} is one of them): the kernel's root was not loaded first (activate_kernel_root() "
            "before reclaim_boot_tables())",
            tables.base.value(), tables.end().value(), live.names[i], live.roots[i].value());
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

}  // namespace

// LAB 2 BEGIN leave the low half: the kernel's stack first, then the kernel's root
namespace {

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

AddressSpace& kernel_space() {
  PAGODA_ASSERT(g_ready);
  return *g_kernel_space;
}

namespace {
/// The space each CPU's current process runs in (nullptr: the kernel's).
PerCpu<AddressSpace*> g_current_space;
}  // namespace

AddressSpace* current_space() {
  if (!g_ready) return nullptr;
  AddressSpace* here = g_current_space.here();
  return here != nullptr ? here : g_kernel_space;
}

void set_current_space(AddressSpace* space) { g_current_space.here() = space; }

Walk walk_active(VirtAddr va) { return walk_tree<Format>(arch::live_root_for(va), g_table_memory, va); }

bool mapped_now(VirtAddr va) {
  if (g_kernel_space == nullptr) return true;
  const Walk w = walk_active(va);
  return w.mapped() && w.perms.read;  // a held leaf maps nothing the CPU can use
}

}  // namespace pagoda::vm
