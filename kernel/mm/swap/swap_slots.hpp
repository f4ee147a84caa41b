/// @file swap_slots.hpp
/// @brief The swap slot map (lab 7): which page-sized slots of the swap disk hold a page, and
/// for how many holders.
///
/// An evicted page's bytes go to one slot of the swap disk (slot s is disk bytes
/// [s * kPageSize, (s + 1) * kPageSize), dev/swap_disk.hpp). A slot's count is the number of
/// holders, each one a reason its bytes must stay:
///
///   - a swap entry that names it (a page of some process, swapped out); fork copies the entry
///     into the child, so one slot has two holders until one of them brings the page back, or
///     ends;
///   - a resident frame that was read from it and has stayed clean since (the frame table's
///     backing slot): evicting that frame again needs no write, the slot still holds its bytes.
///
///     count[s]   what it means
///     --------   -----------------------------------------------------------------------
///       0        free: take() may hand it out, nothing on the disk there matters
///       1        one holder: an entry, or a clean frame's backing
///       k        k holders: entries fork shared, and at most one clean frame's backing
///
/// The last holder to let go frees the slot (drop() says so). A slot freed while an entry still
/// names it is the bug this map exists to prevent: the next eviction writes another page there,
/// and the process that still names it gets those bytes when it faults.
///
/// The counts are one u16 per slot in memory the kernel sets aside at boot (mm/swap.cpp), and
/// published with the rest of the swap state for the grader and GDB (pagoda_swap_state): that
/// array is the contract, kept by take(), share() and drop(). How a free slot is found (next fit
/// from a hand, first fit, a bitmap, a free stack) and whatever state that needs are yours: the
/// private members in the LAB 7 region below; nothing outside reads them.
#pragma once

#include "core/panic.hpp"
#include "lib/result.hpp"
#include "lib/types.hpp"

namespace pagoda {

class SwapSlots {
 public:
  /// Most holders one slot may have (a share() past it is Overflow).
  static constexpr u32 kMaxCount = 0xffff;

  /// Uses @p counts (one entry per slot; overwritten with zeros) as the map: counts.size()
  /// slots, all free.
  void init(Span<u16> counts) {
    counts_ = counts.data();
    size_ = counts.size();
    used_ = 0;
    for (u64 s = 0; s < size_; ++s) counts_[s] = 0;
    // LAB 7 BEGIN your own state of the slot map, every slot free
    hand_ = 0;
    // LAB 7 SKELETON
    // LAB 7 END
  }

  /// How many slots the map has (the disk's size in pages).
  u64 size() const { return size_; }
  /// The holders of @p slot (0: free; 0 too for a slot past the map).
  u32 count(u64 slot) const { return slot < size_ ? counts_[slot] : 0; }
  /// Slots with at least one holder (take() and drop() keep it).
  u64 in_use() const { return used_; }
  /// The counts, for the published state.
  Span<const u16> table() const { return {counts_, size_}; }

  /// A free slot, now held once (count 1); which free one is yours (the reference: next fit, the
  /// first free one at or after a hand, wrapping around, so that a slot just freed is not the next
  /// one handed out). NoMemory when every slot is held: the swap disk is full.
  [[nodiscard]] Result<u64> take() {
    // LAB 7 BEGIN a free slot, now held once; the disk is full when there is none
    for (u64 i = 0; i < size_; ++i) {
      const u64 s = (hand_ + i) % size_;
      if (counts_[s] != 0) continue;
      counts_[s] = 1;
      ++used_;
      hand_ = (s + 1) % size_;
      return s;
    }
    return Error(Error::NoMemory, "the swap disk is full: every slot holds a page");
    // LAB 7 SKELETON
    // panic("lab 7: write SwapSlots::take() in kernel/mm/swap/swap_slots.hpp (labs/07-swap/README.md)");
    // LAB 7 END
  }

  /// One more holder of @p slot, which must be held already (fork copies a swap entry; a
  /// swapped-in frame keeps the slot as its backing). InvalidArgument for a free slot or one
  /// past the map; Overflow at kMaxCount holders (nothing changes then).
  [[nodiscard]] Result<void> share(u64 slot) {
    // LAB 7 BEGIN one more holder of a slot that is held
    if (slot >= size_ || counts_[slot] == 0) return Error(Error::InvalidArgument, "sharing a swap slot nothing holds");
    if (counts_[slot] == kMaxCount) return Error(Error::Overflow, "too many holders of one swap slot");
    ++counts_[slot];
    return {};
    // LAB 7 SKELETON
    // (void)slot;
    // panic("lab 7: write SwapSlots::share() in kernel/mm/swap/swap_slots.hpp (labs/07-swap/README.md)");
    // LAB 7 END
  }

  /// One holder of @p slot lets go: true when it was the last (the slot is free now, and its
  /// bytes mean nothing any more). Dropping a free slot is a kernel bug: one holder let go
  /// twice, or never held it. It panics there, at the producer, rather than freeing a slot a
  /// second time and leaving an entry naming a slot another page will be written to.
  [[nodiscard]] bool drop(u64 slot) {
    if (slot >= size_) panic("SwapSlots::drop: slot {} is past the map ({} slots)", slot, size_);
    if (counts_[slot] == 0)
      panic("SwapSlots::drop: slot {} is free already: a holder let go of it twice (or never held it)", slot);
    // LAB 7 BEGIN one holder fewer; the last one frees the slot
    if (--counts_[slot] != 0) return false;
    --used_;
    return true;
    // LAB 7 SKELETON
    // panic("lab 7: write SwapSlots::drop() in kernel/mm/swap/swap_slots.hpp (labs/07-swap/README.md)");
    // LAB 7 END
  }

 private:
  u16* counts_ = nullptr;  ///< the published holder counts (the contract)
  u64 size_ = 0;
  u64 used_ = 0;
  // LAB 7 BEGIN your slot map's own state (how take() finds a free slot), and its helpers
  u64 hand_ = 0;  ///< where the next take() starts looking (next fit)
  // LAB 7 SKELETON
  // // (yours: none yet)
  // LAB 7 END
};

}  // namespace pagoda
