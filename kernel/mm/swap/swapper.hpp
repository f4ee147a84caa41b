/// @file swapper.hpp
/// @brief Swap (lab 7): pages out to a disk and back on demand, the clock that picks which, and
/// the bookkeeping that lets several roots share a frame or a slot.
///
/// A user page is in one of three states, and its page-table entry says which:
///
///     resident     entry present, maps frame F      F in the frame table: its reverse map
///                                                   lists this (space, va); F's backing slot,
///                                                   if any, still holds F's bytes (F is clean)
///     swapped out  swap entry naming slot S         S's count includes this entry
///     not yet      no entry (0)                     the region says what it becomes (lab 5)
///
/// Eviction of a frame F (evict_frame(), when the resident frames reach the cap, or the evict
/// test call):
///
///     1. a slot: F's backing slot when F has one (its bytes are there already), else a free one
///     2. every mapping of F (its reverse map): the entry becomes a swap entry naming the slot,
///        and THAT root's TLB forgets the page (a batch of the space that maps it: on AArch64 its
///        ASID; the live root's would leave the victim's translation cached)
///     3. only now, no root able to reach F: F's bytes to the slot, unless F is clean and backed
///     4. F's mappings forgotten, each mapping's reference to F dropped: F is free
///
/// A fault on a swap entry (swap_in()) reads the slot into a new frame before the frame is mapped
/// (with the region's permissions), and lets go of the entry's hold on the slot: kept as the
/// frame's backing when the entry was the slot's only holder (the page is clean: mapped so that
/// its first write marks it dirty), dropped otherwise.
///
/// The clock (choose_victim()) goes over the frame table in frame order from just past its previous
/// victim (the table's hand, in the reference; the grader keeps the victim, not the hand), in turns,
/// a frame that is not resident, or pinned, always passed by. A *clean* turn takes the first
/// frame that is unused (none of its mappings used since the hand last cleared them) and clean
/// (its bytes on the disk already: evicting it costs no write), and changes nothing. If a whole
/// clean turn finds none, a *clearing* turn takes the first unused frame, dirty or not, and each
/// used frame it passes loses its mark (every mapping's accessed state cleared and invalidated in
/// its own root: its second chance). Clean, clearing, clean, clearing: four turns at most, since
/// after a clearing turn every frame is unused; only a table of pinned frames leaves none.
///
/// The swapper knows the disk and the user frames only through the two tables of functions it
/// is given (SwapDevice, UserFramePool): the kernel's (mm/swap.cpp) are the swap disk and vm's
/// user frames, the host tests' fakes over simulated memory.
#pragma once

#include "core/stop.hpp"
#include "mm/space/address_space.hpp"
#include "mm/swap/frame_table.hpp"
#include "mm/swap/swap_slots.hpp"

namespace pagoda {

/// The disk pages go to: slot s is one page of it. Each call waits for the device.
struct SwapDevice {
  Result<void> (*read)(u64 slot, PhysAddr frame) = nullptr;   ///< slot -> frame
  Result<void> (*write)(u64 slot, PhysAddr frame) = nullptr;  ///< frame -> slot
};

/// Where user frames come from and go back to.
struct UserFramePool {
  Result<PhysAddr> (*allocate)() = nullptr;  ///< a frame for user memory (contents undefined)
  void (*put)(PhysAddr frame) = nullptr;     ///< one mapping of @p frame is gone: frees it at the last
};

/// What the swapper has done since boot: its own counts (the grader witnesses the disk itself).
struct SwapCounters {
  u64 evictions = 0;        ///< frames evicted
  u64 writes = 0;           ///< slots written (evictions and clean_frame())
  u64 reads = 0;            ///< slots read (swap-ins)
  u64 clean_evictions = 0;  ///< evictions that wrote nothing (the backing slot held the bytes)
  u64 cleanings = 0;        ///< clean_frame() calls that wrote the frame back
};

class Swapper {
 public:
  using Format = AddressSpace::Format;

  constexpr Swapper(FrameTable& table, SwapSlots& slots) : table_(table), slots_(slots) {}
  Swapper(const Swapper&) = delete;
  Swapper& operator=(const Swapper&) = delete;

  /// Gives the swapper its disk (none: SwapDevice{}) and its user frames.
  void attach(SwapDevice device, UserFramePool pool) {
    device_ = device;
    pool_ = pool;
  }
  /// True when pages can go out: a disk with slots is attached.
  bool has_disk() const { return device_.write != nullptr && slots_.size() > 0; }

  FrameTable& table() { return table_; }
  SwapSlots& slots() { return slots_; }
  const SwapCounters& counters() const { return counters_; }

  // ---- Yours (labs/07-swap/README.md) ----------------------------------------------------

  /// Part A: evicts frames (choose_victim(), evict_frame()) until @p frames more fit under the
  /// cap. Nothing to do without a cap. NoMemory when the cap is reached and nothing can go out:
  /// no disk, the disk full, every resident frame pinned.
  [[nodiscard, PAGODA_STOP(make_room)]] Result<void> make_room(usize frames);

  /// Part A: the evict test call: the page mapped at @p va in @p space goes out now, with every
  /// other mapping of its frame (evict_frame()); with @p keep, it is only written back and stays
  /// (clean_frame()). Nothing to do for a page out already. NotFound when no user frame the
  /// table knows is mapped there, InvalidArgument for a pinned frame, Unsupported without a disk.
  [[nodiscard, PAGODA_STOP(evict_page)]] Result<void> evict_page(AddressSpace& space, VirtAddr va, bool keep);

  /// Part A: evicts the resident frame @p frame (steps 1-4 above). Afterwards no root maps it,
  /// every entry that did names one slot holding its bytes (the slot's count is the number of
  /// those entries), and the frame is free. NoMemory when a slot is needed and the disk is full
  /// (nothing changed). (Never inlined: the grader stops at its entry and return.)
  [[nodiscard, PAGODA_STOP(evict_frame)]] Result<void> evict_frame(PhysAddr frame);

  /// Part A: brings back the page at @p page of @p space, whose entry is a swap entry: a new
  /// frame, the slot read into it, the page mapped with @p perms (its region's); the entry's
  /// hold on the slot becomes the frame's backing when it was the slot's only holder (the page
  /// mapped clean), else it is dropped. Returns the frame. NotFound when the page is not
  /// swapped out; the pool's or the disk's error (nothing changed, the entry stays). (Never
  /// inlined: a grader's stop.)
  [[nodiscard, PAGODA_STOP(swap_in)]] Result<PhysAddr> swap_in(AddressSpace& space, VirtAddr page, Perms perms);

  /// Part A: forgets every swapped-out page of [@p start, @p end) in @p space (exit, exec,
  /// munmap): each entry cleared (with the tables that leaves empty), its hold on its slot
  /// dropped. Resident pages are left alone (they are unmapped after, as before lab 7).
  [[nodiscard]] Result<void> release(AddressSpace& space, VirtAddr start, VirtAddr end);

  /// Part B: the clock's victim (see above); the hand stops just past it. NoMemory when every
  /// resident frame is pinned (or none is resident). (Never inlined: the grader recomputes the
  /// victim from RAM at its entry and compares at its return.)
  [[nodiscard, PAGODA_STOP(choose_victim)]] Result<PhysAddr> choose_victim();

  /// Part B: writes the resident frame @p frame back and keeps it, clean: every mapping's dirty
  /// state cleared, each invalidated in its own root (so that the next write through any of
  /// them marks it dirty again), then the bytes to its backing slot (a new one when it has
  /// none). Nothing written when it is clean already. NoMemory when the disk is full.
  [[nodiscard, PAGODA_STOP(clean_frame)]] Result<void> clean_frame(PhysAddr frame);

  /// Part C: fork's share of swapped-out pages: every swap entry of @p from in [@p start, @p end)
  /// copied into @p to (which maps nothing there yet), one more holder of its slot each.
  [[nodiscard]] Result<void> share_swapped(AddressSpace& from, AddressSpace& to, VirtAddr start, VirtAddr end);

 private:
  /// Part A: mapping @p m of the frame being evicted becomes a swap entry for @p slot, and the
  /// page's translation is invalidated through @p batch (a batch of m.space: the TLB of the root
  /// that maps it). True when the entry it replaced was dirty.
  [[nodiscard]] Result<bool> take_mapping(const RmapNode& m, ConsistencyBatch& batch, u64 slot);

  /// Part B: whether any mapping of @p frame was used since the last call; each mapping's
  /// accessed state cleared and invalidated in its own root.
  bool test_and_clear_accessed(PhysAddr frame);
  /// Part B: the same question, every mapping read in its own root, nothing changed.
  bool accessed(PhysAddr frame) const;

  /// Whether the frame's bytes are not on the disk: it has no backing slot, or a mapping says
  /// it was written through since (part B).
  bool needs_write(PhysAddr frame) const;

  /// The device, wrapped (never inlined: the grader's stops at every write and read). An I/O
  /// error while writing a victim leaves its holders naming a slot that does not hold it: the
  /// kernel stops there (panic) instead of handing out those bytes later.
  [[gnu::noinline]] void write_slot(u64 slot, PhysAddr frame);
  [[nodiscard]] [[gnu::noinline]] Result<void> read_slot(u64 slot, PhysAddr frame);

  FrameTable& table_;
  SwapSlots& slots_;
  SwapDevice device_;
  UserFramePool pool_;
  SwapCounters counters_;
};

}  // namespace pagoda
