/// @file swap.cpp
/// @brief Lab 7's given half: the kernel's frame table, slot map and swapper, made at boot; the
/// reverse map kept where user mappings are made and unmade; the pins of user copies; and the
/// swap state published for the grader and GDB.
///
/// Swap is off unless the boot asks for it: `userframes=N` (a cap on resident user frames, so
/// that pressure comes when a test wants it) or a swap disk (dev/swap_disk.hpp). Off, every hook
/// below returns at once and the kernel is the one of lab 6. On, the hooks are called from given
/// code only (the fault path, fork's copy_user_half(), free_user_half() and release_pages(),
/// the loader's stack page), never from a lab's solution region: a student's labs 5 and 6 need
/// not know of them.
///
///     where                          what the hook does
///     fault: a page brought in       record the mapping (reverse map); pin it for a user copy
///     fault: copy-on-write break     move the mapping from the shared frame to the copy
///     fault: a swap entry            make room, swap_in(), record the mapping
///     fault: before a frame is taken make room under the cap (evict by the clock)
///     fork (after the copy)          share the parent's swap entries; record the child's pages
///     exit, exec, munmap, brk        give back the range's slots; forget its pages' mappings
///                                    (before lab 3's free_user_pages() unmaps them)

#include "mm/vm.hpp"

#include "mm/vm_parts.hpp"
#include "core/lab.hpp"
#include "core/panic.hpp"
#include "lib/facts.hpp"
#include "mm/base/layout.hpp"

/// Where lab 7's swap state is, for the grader and GDB (tools read it at this symbol, check the
/// magic, the version and the size, and follow the addresses; all little-endian):
///
///     offset  size  field
///     0       8     magic        "PGSWAP" and two NULs
///     8       4     version      kSwapStateVersion
///     12      4     size         sizeof(SwapStateExport)
///     16      8     frame_cap    resident user frames allowed (0: no cap)
///     24      8     frames       kernel address of the frame table's entries (0: swap is off)
///     32      8     first_frame  the frame number of entry 0
///     40      8     frame_count  entries (FrameEntry, entry_size bytes each)
///     48      8     nodes        kernel address of the reverse map's nodes
///     56      8     node_count   nodes (RmapNode, node_size bytes each)
///     64      8     slots        kernel address of the slot map (one u16 count per slot)
///     72      8     slot_count   slots (0: no swap disk)
///     80      8     resident     kernel address of the count of resident frames (u64)
///     88      8     counters     kernel address of the swapper's counters (SwapCounters: u64s)
///     96      8     entry_size   sizeof(FrameEntry)
///     104     8     node_size    sizeof(RmapNode)
///
/// This is the whole registry lab 7 exports: what each slot's holders count, each frame's backing
/// slot and pins, and the mappings recorded (every node whose space is not null is one: its frame,
/// root and va; how the nodes are found, linked or ordered is not published). The clock's state,
/// the slot map's search state and the reverse map's links are the student's design, never read.
/// The fields read are PAGODA_FACTs (frame_entry_*, rmap_node_*, swap_counter_*); the bits of a
/// swap entry are the format's (swap_entry_bit, ...: mm/base/facts.cpp).
struct SwapStateExport {
  char magic[8];
  pagoda::u32 version;
  pagoda::u32 size;
  pagoda::u64 frame_cap;
  pagoda::u64 frames;
  pagoda::u64 first_frame;
  pagoda::u64 frame_count;
  pagoda::u64 nodes;
  pagoda::u64 node_count;
  pagoda::u64 slots;
  pagoda::u64 slot_count;
  pagoda::u64 resident;
  pagoda::u64 counters;
  pagoda::u64 entry_size;
  pagoda::u64 node_size;
};
static_assert(sizeof(SwapStateExport) == 112);
inline constexpr pagoda::u32 kSwapStateVersion = 2;

extern "C" constinit SwapStateExport pagoda_swap_state = {{'P', 'G', 'S', 'W', 'A', 'P', '\0', '\0'},
                                                          kSwapStateVersion,
                                                          sizeof(SwapStateExport),
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          sizeof(pagoda::FrameEntry),
                                                          sizeof(pagoda::RmapNode)};

namespace pagoda::vm {
namespace {

using Format = arch::PageTableFormat;

// The fields the tools read of each part (pagoda_swap_state says where the parts are).
PAGODA_FACT(frame_entry_backing, offsetof(FrameEntry, backing))
PAGODA_FACT(frame_entry_pins, offsetof(FrameEntry, pins))
PAGODA_FACT(rmap_node_space, offsetof(RmapNode, space))
PAGODA_FACT(rmap_node_root, offsetof(RmapNode, root))
PAGODA_FACT(rmap_node_va, offsetof(RmapNode, va))
PAGODA_FACT(rmap_node_frame, offsetof(RmapNode, frame))
PAGODA_FACT(swap_counter_evictions, offsetof(SwapCounters, evictions))
PAGODA_FACT(swap_counter_writes, offsetof(SwapCounters, writes))
PAGODA_FACT(swap_counter_reads, offsetof(SwapCounters, reads))
PAGODA_FACT(swap_counter_clean_evictions, offsetof(SwapCounters, clean_evictions))
PAGODA_FACT(swap_counter_cleanings, offsetof(SwapCounters, cleanings))
PAGODA_FACT(swap_state_version, kSwapStateVersion)
/// The smallest cap `userframes=` accepts: one instruction may need its code, its stack, a data
/// page and a page a system call copies to, all resident at once.
constexpr usize kMinFrameCap = 16;
PAGODA_FACT(swap_min_frame_cap, kMinFrameCap)
/// Frames a user copy keeps pinned at most (the pages its faults brought in, in order).
constexpr usize kCopyPins = 8;
PAGODA_FACT(swap_copy_pins, kCopyPins)

constinit FrameTable g_table;
constinit SwapSlots g_slots;
[[clang::no_destroy]] constinit Swapper g_swapper(g_table, g_slots);

/// Reverse-map nodes for a cap: room for each resident frame mapped by several roots (fork).
usize nodes_for(usize cap) { return cap == 0 ? 16384 : min<usize>(max<usize>(cap * 8, 1024), 65536); }

/// @p bytes of zeroed kernel memory in the window that nothing ever frees (the swap tables live
/// as long as the kernel).
Result<void*> take_storage(usize bytes) {
  const usize frames = usize(align_up(bytes, kPageSize) / kPageSize);
  const PhysAddr first = TRY(g_frames.allocate_contiguous_below(frames, reachable_limit()));
  void* at = phys_to_ptr(first, frames * kPageSize);
  if (at == nullptr) return Error(Error::NoMemory, "the swap tables are not in the kernel's window");
  for (usize i = 0; i < frames; ++i) zero_frame(first.offset(i * kPageSize));
  return at;
}

/// The frames a user copy pinned (UserCopyPins): the pages its faults brought in.
struct CopyPins {
  bool open = false;
  usize count = 0;
  FramePin pins[kCopyPins];
};
[[clang::no_destroy]] constinit CopyPins g_copy_pins;

/// The mapping of @p frame at @p page of @p space is gone (or moving to another frame): the
/// reverse map forgets it; with the frame's last mapping its backing slot is let go too (the
/// frame is about to be freed, and nothing else holds the slot).
[[maybe_unused]] void forget_mapping(PhysAddr frame, AddressSpace& space, VirtAddr page) {
  // LAB 7 BEGIN forget one mapping; the frame's last one lets go of its backing slot
  if (!g_table.tracks(frame) || !g_table.note_unmapped(frame, space, page)) return;
  FrameEntry& e = g_table.entry(frame);
  if (e.mappings == 0 && e.has_backing()) {
    (void)g_slots.drop(e.backing_slot());
    e.clear_backing();
  }
  // LAB 7 SKELETON
  // (void)frame;
  // (void)space;
  // (void)page;
  // LAB 7 END
}

}  // namespace

Result<void> init_swap(usize cap, SwapDevice disk, u64 slots) {
  if (cap == 0 && slots == 0) return {};  // swap stays off: the kernel of lab 6
  if (cap != 0 && cap < kMinFrameCap)
    return Error(Error::InvalidArgument, "userframes= below the smallest cap (16 frames)");
  if (slots > u64(~u32{0}) - 1) slots = u64(~u32{0}) - 1;  // a backing slot is kept as a u32 + 1
  if (slots > Format::kSwapSlots) slots = Format::kSwapSlots;
  const u64 first = layout::kWindowPhysBase / kPageSize;
  const usize frames = usize(g_frames.limit().value() / kPageSize - first);
  const usize nodes = nodes_for(cap);
  auto* entries = static_cast<FrameEntry*>(TRY(take_storage(frames * sizeof(FrameEntry))));
  auto* node_storage = static_cast<RmapNode*>(TRY(take_storage(nodes * sizeof(RmapNode))));
  u16* counts = slots == 0 ? nullptr : static_cast<u16*>(TRY(take_storage(usize(slots) * sizeof(u16))));
  g_table.init(Span<FrameEntry>(entries, frames), first, Span<RmapNode>(node_storage, nodes), cap);
  // exec moves the space it loaded into the process: the reverse map follows it.
  AddressSpace::set_move_observer([](const AddressSpace& from, AddressSpace& to) { g_table.space_moved(from, to); });
  g_slots.init(Span<u16>(counts, usize(slots)));
  g_swapper.attach(slots == 0 ? SwapDevice{} : disk, UserFramePool{&allocate_user_frame, &put_user_frame});
  SwapStateExport& s = pagoda_swap_state;
  s.frame_cap = cap;
  s.frames = reinterpret_cast<u64>(entries);
  s.first_frame = first;
  s.frame_count = frames;
  s.nodes = reinterpret_cast<u64>(node_storage);
  s.node_count = nodes;
  s.slots = reinterpret_cast<u64>(counts);
  s.slot_count = slots;
  s.resident = reinterpret_cast<u64>(g_table.resident_count());
  s.counters = reinterpret_cast<u64>(&g_swapper.counters());
  if (cap == 0) print("swap: no cap on user frames");
  else print("swap: at most {} resident user frames", cap);
  println(", {} swap slots ({} KiB of disk), {} reverse-map nodes", slots, slots * kPageSize / KiB, nodes);
  return {};
}

bool swap_enabled() { return g_table.enabled(); }

Swapper& swapper() { return g_swapper; }

Result<void> make_user_room(usize frames) {
  if (!swap_enabled()) return {};
  return g_swapper.make_room(frames);
}

bool evict_for_memory() {
  if (!swap_enabled()) return false;
  // LAB 7 BEGIN the frame allocator ran out: one victim of the clock out, when there is a disk
  if (!g_swapper.has_disk() || g_table.resident() == 0) return false;
  const Result<PhysAddr> victim = g_swapper.choose_victim();
  return victim.ok() && g_swapper.evict_frame(victim.value()).ok();
  // LAB 7 SKELETON
  // (void)lab_not_done("lab 7: write evict_for_memory() in kernel/mm/swap.cpp (labs/07-swap/README.md)");
  // return false;
  // LAB 7 END
}

bool can_record_mapping() { return !swap_enabled() || g_table.free_nodes() > 0; }

Result<void> note_user_page(AddressSpace& space, VirtAddr page) {
  if (!swap_enabled()) return {};
  // LAB 7 BEGIN the reverse map learns of a page just mapped to a user frame of its own
  const Walk walk = space.query(page);
  if (!walk.mapped()) return {};
  const PhysAddr frame = walk.pa.align_down(kPageSize);
  if (!g_table.tracks(frame)) return {};
  return g_table.note_mapped(frame, space, space.root(), page);
  // LAB 7 SKELETON
  // (void)space;
  // (void)page;
  // return lab_not_done("lab 7: write note_user_page() in kernel/mm/swap.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

void note_user_page_moved(AddressSpace& space, VirtAddr page, PhysAddr old) {
  if (!swap_enabled()) return;
  // LAB 7 BEGIN a copy-on-write break: the mapping moves from the shared frame to the copy
  const Walk walk = space.query(page);
  if (walk.mapped() && walk.pa.align_down(kPageSize) == old) return;  // taken back as it was: the same mapping
  forget_mapping(old, space, page);
  // A node was given back just now: recording the copy cannot run out of them.
  if (walk.mapped()) MUST(note_user_page(space, page));
  // LAB 7 SKELETON
  // (void)page;
  // (void)old;
  // panic("lab 7: write note_user_page_moved() in kernel/mm/swap.cpp (labs/07-swap/README.md): a copy-on-write "
  //       "fault in {:#x}, and the reverse map must follow its page to the copy", space.root().value());
  // LAB 7 END
}

Result<void> forget_user_pages(AddressSpace& space, VirtAddr start, VirtAddr end) {
  if (!swap_enabled() || !(start < end)) return {};
  // LAB 7 BEGIN a range about to be unmapped: its slots given back, its pages' mappings forgotten
  if (g_slots.in_use() > 0) TRY(g_swapper.release(space, start, end));
  if (g_table.resident() == 0) return {};
  for (AddressSpace::ReadCursor c = space.read_cursor(start); c.next_mapped(end); c.next())
    if (c.level() == Format::kLevels - 1) forget_mapping(c.pa().align_down(kPageSize), space, c.va());
  return {};
  // LAB 7 SKELETON
  // (void)space;
  // return lab_not_done("lab 7: write forget_user_pages() in kernel/mm/swap.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

Result<void> note_forked(AddressSpace& from, const VmaSet& vmas, AddressSpace& to) {
  if (!swap_enabled()) return {};
  // LAB 7 BEGIN fork: the parent's swap entries shared into the child, the child's pages recorded
  for (const Vma& vma : vmas) {
    const VirtAddr start(vma.start), end(vma.end);
    if (g_slots.in_use() > 0) TRY(g_swapper.share_swapped(from, to, start, end));
    for (AddressSpace::ReadCursor c = to.read_cursor(start); c.next_mapped(end); c.next()) {
      const PhysAddr frame = c.pa().align_down(kPageSize);
      if (c.level() == Format::kLevels - 1 && g_table.tracks(frame))
        TRY(g_table.note_mapped(frame, to, to.root(), c.va()));
    }
  }
  return {};
  // LAB 7 SKELETON
  // (void)from;
  // (void)vmas;
  // (void)to;
  // return lab_not_done("lab 7: write note_forked() in kernel/mm/swap.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

Result<void> evict_user_page(AddressSpace& space, VirtAddr va, bool keep) {
  if (!swap_enabled()) return Error(Error::Unsupported, "swap is off");
  return g_swapper.evict_page(space, va, keep);
}

FramePin pin_user_frame(PhysAddr frame) { return swap_enabled() ? FramePin(g_table, frame) : FramePin(); }

void pin_for_copy(PhysAddr frame) {
  CopyPins& p = g_copy_pins;
  if (!p.open || p.count == kCopyPins || !g_table.tracks(frame)) return;
  p.pins[p.count++] = FramePin(g_table, frame);
}

UserCopyPins::UserCopyPins() {
  if (!swap_enabled()) return;
  if (g_copy_pins.open) panic("a user copy began inside another (UserCopyPins nested)");
  g_copy_pins.open = true;
}

UserCopyPins::~UserCopyPins() {
  if (!g_copy_pins.open) return;
  for (usize i = 0; i < g_copy_pins.count; ++i) g_copy_pins.pins[i] = FramePin();
  g_copy_pins.count = 0;
  g_copy_pins.open = false;
}

}  // namespace pagoda::vm
