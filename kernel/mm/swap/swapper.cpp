// Swap: eviction, swap-in, the clock and fork's sharing of slots (see swapper.hpp).
#include "mm/swap/swapper.hpp"

#include "core/panic.hpp"

namespace pagoda {

// ---- Given ---------------------------------------------------------------------------------

void Swapper::write_slot(u64 slot, PhysAddr frame) {
  if (Result<void> written = device_.write(slot, frame); written.is_error())
    panic("swap: writing frame {:#x} to slot {} failed, and the entries that name the slot would get what it held "
          "before: {}",
          frame.value(), slot, written.error());
  ++counters_.writes;
}

Result<void> Swapper::read_slot(u64 slot, PhysAddr frame) {
  TRY_DURING(device_.read(slot, frame), "reading the page back from its swap slot", slot);
  ++counters_.reads;
  return {};
}

// ---- Part A: the mechanism -------------------------------------------------------------------

Result<void> Swapper::make_room(usize frames) {
  if (table_.cap() == 0 || table_.resident() + frames <= table_.cap()) return {};  // room enough
  // LAB 7 BEGIN evict the clock's victims until the frames asked for fit under the cap
  while (table_.resident() + frames > table_.cap()) {
    if (!has_disk())
      return Error(Error::NoMemory, "the resident user frames reached the cap (userframes=) and there is no swap disk");
    if (table_.resident() == 0)
      return Error(Error::NoMemory, "the cap on user frames (userframes=) is below what one step needs");
    const PhysAddr victim = TRY(choose_victim());
    TRY(evict_frame(victim));
  }
  return {};
  // LAB 7 SKELETON
  // (void)frames;
  // panic("lab 7: write Swapper::make_room() in kernel/mm/swap/swapper.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

Result<void> Swapper::evict_page(AddressSpace& space, VirtAddr va, bool keep) {
  if (!has_disk()) return Error(Error::Unsupported, "no swap disk");
  // LAB 7 BEGIN the evict test call: the frame mapped there, checked, then out (or written back and kept)
  const Walk walk = space.query(va);
  if (!walk.mapped() && walk.depth > 0 && Format::is_swap_entry(walk.last().entry, walk.last().level))
    return {};  // out already (the clock took it first)
  if (!walk.mapped() || walk.page_size != kPageSize) return Error(Error::NotFound, "no page mapped there");
  const PhysAddr frame = walk.pa.align_down(kPageSize);
  if (!table_.is_resident(frame)) return Error(Error::NotFound, "not a user frame of the frame table");
  if (table_.pinned(frame)) return Error(Error::InvalidArgument, "the frame is pinned");
  return keep ? clean_frame(frame) : evict_frame(frame);
  // LAB 7 SKELETON
  // (void)space;
  // (void)va;
  // (void)keep;
  // return Error(Error::NotImplemented, "lab 7: write Swapper::evict_page() in kernel/mm/swap/swapper.cpp "
  //                                     "(labs/07-swap/README.md)");
  // LAB 7 END
}

Result<bool> Swapper::take_mapping(const RmapNode& m, ConsistencyBatch& batch, u64 slot) {
  // LAB 7 BEGIN one mapping of the victim becomes a swap entry, its translation invalidated
  AddressSpace::Cursor c = m.space->cursor(batch, VirtAddr(m.va));
  const u64 old = TRY(c.replace_with_swap_entry(Format::make_swap_entry(slot)));
  batch.invalidate(VirtAddr(m.va), false);
  return Format::is_dirty(old);
  // LAB 7 SKELETON
  // (void)m;
  // (void)batch;
  // (void)slot;
  // panic("lab 7: write Swapper::take_mapping() in kernel/mm/swap/swapper.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

Result<void> Swapper::evict_frame(PhysAddr frame) {
  // LAB 7 BEGIN evict a frame: a slot, every mapping a swap entry (each root told), then the write, then the frame freed
  FrameEntry& e = table_.entry(frame);
  if (e.mappings == 0) return Error(Error::NotFound, "the frame is not resident");
  // The slot: the backing slot of a clean frame holds its bytes already (its one hold on the slot
  // passes to the first entry); else a free one.
  const bool backed = e.has_backing();
  const u64 slot = backed ? e.backing_slot() : TRY(slots_.take());
  e.clear_backing();
  bool dirty = !backed;
  bool first = true;
  for (const RmapNode* m = table_.first_mapping(frame); m != nullptr; m = table_.next_mapping(*m)) {
    if (!first) MUST(slots_.share(slot));  // one hold per entry
    first = false;
    // A batch of the space that maps the page: its flush, when it ends with this turn of the
    // loop, reaches that space's TLB entries (on AArch64: TLBI with that space's ASID).
    ConsistencyBatch batch = m->space->batch();
    dirty = MUST(take_mapping(*m, batch, slot)) || dirty;
  }
  // No root maps the frame now, and no TLB reaches it: its bytes may go to the disk.
  if (dirty) write_slot(slot, frame);
  else ++counters_.clean_evictions;
  const usize mappings = table_.forget_mappings(frame);
  for (usize i = 0; i < mappings; ++i) pool_.put(frame);
  ++counters_.evictions;
  return {};
  // LAB 7 SKELETON
  // (void)frame;
  // panic("lab 7: write Swapper::evict_frame() in kernel/mm/swap/swapper.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

Result<PhysAddr> Swapper::swap_in(AddressSpace& space, VirtAddr page, Perms perms) {
  // LAB 7 BEGIN bring a swapped-out page back: a frame, the slot read into it, then mapped; the entry's hold on the slot
  ConsistencyBatch batch = space.batch();
  AddressSpace::Cursor c = space.cursor(batch, page);
  if (!c.swapped()) return Error(Error::NotFound, "the page is not swapped out").at(page.value());
  const u64 slot = Format::swap_slot(c.entry());
  const PhysAddr frame = TRY(pool_.allocate());
  // The bytes first: the page becomes visible only once they are in the frame.
  if (Result<void> read = read_slot(slot, frame); read.is_error()) {
    pool_.put(frame);
    return read.error();
  }
  if (Result<void> mapped = c.map(frame, perms); mapped.is_error()) {
    pool_.put(frame);
    return mapped.error();
  }
  // The only holder: the slot still holds the frame's bytes, the frame keeps it as its backing
  // and is mapped clean (its first write marks it dirty). Another entry names it too (fork): this
  // entry's hold goes, the frame is a copy of its own.
  if (slots_.count(slot) == 1) {
    table_.entry(frame).set_backing(slot);
    u64* leaf = c.page_entry();
    *leaf = Format::cleaned(*leaf);
  } else {
    (void)slots_.drop(slot);
  }
  return frame;
  // LAB 7 SKELETON
  // (void)space;
  // (void)page;
  // (void)perms;
  // panic("lab 7: write Swapper::swap_in() in kernel/mm/swap/swapper.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

Result<void> Swapper::release(AddressSpace& space, VirtAddr start, VirtAddr end) {
  // LAB 7 BEGIN forget the swapped-out pages of a range: each entry cleared, its hold on the slot dropped
  ConsistencyBatch batch = space.batch();
  for (AddressSpace::Cursor c = space.cursor(batch, start); c.next_mapped_or_swapped(end);) {
    const VirtAddr next = c.range_end();  // before forget_swapped() may free the leaf's table
    if (c.swapped()) {
      const u64 slot = Format::swap_slot(c.entry());
      TRY(c.forget_swapped());
      (void)slots_.drop(slot);
    }
    if (next <= c.va() || next >= end) break;
    c.find(next);
  }
  return {};
  // LAB 7 SKELETON
  // (void)space;
  // (void)start;
  // (void)end;
  // panic("lab 7: write Swapper::release() in kernel/mm/swap/swapper.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

// ---- Part B: the policy -----------------------------------------------------------------------

bool Swapper::test_and_clear_accessed(PhysAddr frame) {
  // LAB 7 BEGIN every mapping's accessed state, read and cleared in its own root
  bool used = false;
  for (const RmapNode* m = table_.first_mapping(frame); m != nullptr; m = table_.next_mapping(*m)) {
    ConsistencyBatch batch = m->space->batch();
    AddressSpace::Cursor c = m->space->cursor(batch, VirtAddr(m->va));
    u64* leaf = c.page_entry();
    if (leaf == nullptr || !Format::is_accessed(*leaf)) continue;
    used = true;
    *leaf = Format::without_accessed(*leaf);
    // Until the TLB forgets it, the translation is used without the table being read again: the
    // mark would never come back.
    batch.wrote();
    batch.invalidate(VirtAddr(m->va), false);
  }
  return used;
  // LAB 7 SKELETON
  // (void)frame;
  // panic("lab 7: write Swapper::test_and_clear_accessed() in kernel/mm/swap/swapper.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

bool Swapper::accessed(PhysAddr frame) const {
  // LAB 7 BEGIN whether any mapping was used, every mapping's entry read in its own root, nothing changed
  for (const RmapNode* m = table_.first_mapping(frame); m != nullptr; m = table_.next_mapping(*m)) {
    const AddressSpace::ReadCursor c = m->space->read_cursor(VirtAddr(m->va));
    if (const u64* leaf = c.page_entry(); leaf != nullptr && Format::is_accessed(*leaf)) return true;
  }
  return false;
  // LAB 7 SKELETON
  // (void)frame;
  // panic("lab 7: write Swapper::accessed() in kernel/mm/swap/swapper.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

Result<PhysAddr> Swapper::choose_victim() {
  // LAB 7 BEGIN the clock: a clean unused frame first, then any unused one, used ones losing their mark as the hand passes
  const usize n = table_.size();
  for (usize turn = 0; turn < 4; ++turn) {
    const bool clean_only = turn % 2 == 0;
    for (usize step = 0; step < n; ++step) {
      const usize i = table_.hand();
      table_.set_hand(i + 1);
      const FrameEntry& e = table_.entry_at(i);
      if (e.mappings == 0 || e.pins > 0) continue;  // a kernel frame, a table, a free frame; or pinned
      const PhysAddr frame = table_.frame_at(i);
      // A clean turn only looks (a used or dirty frame stays as it is); the other one gives used
      // frames their second chance.
      if (clean_only ? accessed(frame) || needs_write(frame) : test_and_clear_accessed(frame)) continue;
      return frame;
    }
  }
  return Error(Error::NoMemory, "no user frame can be evicted: every resident frame is pinned");
  // LAB 7 SKELETON
  // panic("lab 7: write Swapper::choose_victim() in kernel/mm/swap/swapper.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

bool Swapper::needs_write(PhysAddr frame) const {
  // LAB 7 BEGIN not on the disk: no backing slot, or written through some mapping since
  if (!table_.entry(frame).has_backing()) return true;
  for (const RmapNode* m = table_.first_mapping(frame); m != nullptr; m = table_.next_mapping(*m)) {
    const AddressSpace::ReadCursor c = m->space->read_cursor(VirtAddr(m->va));
    if (const u64* leaf = c.page_entry(); leaf != nullptr && Format::is_dirty(*leaf)) return true;
  }
  return false;
  // LAB 7 SKELETON
  // (void)frame;
  // panic("lab 7: write Swapper::needs_write() in kernel/mm/swap/swapper.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

Result<void> Swapper::clean_frame(PhysAddr frame) {
  // LAB 7 BEGIN write a frame back and keep it clean: every mapping cleaned and invalidated first, then the write
  FrameEntry& e = table_.entry(frame);
  if (e.mappings == 0) return Error(Error::NotFound, "the frame is not resident");
  if (!needs_write(frame)) return {};
  const u64 slot = e.has_backing() ? e.backing_slot() : TRY(slots_.take());
  for (const RmapNode* m = table_.first_mapping(frame); m != nullptr; m = table_.next_mapping(*m)) {
    ConsistencyBatch batch = m->space->batch();
    AddressSpace::Cursor c = m->space->cursor(batch, VirtAddr(m->va));
    u64* leaf = c.page_entry();
    if (leaf == nullptr || !Format::is_dirty(*leaf)) continue;
    *leaf = Format::cleaned(*leaf);
    // A TLB entry that still says "dirty" (x86: D set; AArch64: writable) lets the next write
    // through without marking the entry: that write would be lost at the next eviction.
    batch.wrote();
    batch.invalidate(VirtAddr(m->va), false);
  }
  write_slot(slot, frame);
  e.set_backing(slot);
  ++counters_.cleanings;
  return {};
  // LAB 7 SKELETON
  // (void)frame;
  // panic("lab 7: write Swapper::clean_frame() in kernel/mm/swap/swapper.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

// ---- Part C: sharing ---------------------------------------------------------------------------

Result<void> Swapper::share_swapped(AddressSpace& from, AddressSpace& to, VirtAddr start, VirtAddr end) {
  // LAB 7 BEGIN fork: every swap entry of the parent copied into the child, one more holder of its slot
  ConsistencyBatch child_changes = to.batch();
  AddressSpace::Cursor child = to.cursor(child_changes, start);
  for (AddressSpace::ReadCursor parent = from.read_cursor(start); parent.next_mapped_or_swapped(end); parent.next()) {
    if (!parent.swapped()) continue;
    child.find(parent.va());
    u64* entry = TRY(child.reserve_page_entry());  // the child's table first: nothing to undo if it fails
    TRY(slots_.share(Format::swap_slot(parent.entry())));
    *entry = parent.entry();
    child_changes.wrote();
  }
  return {};
  // LAB 7 SKELETON
  // (void)from;
  // (void)to;
  // (void)start;
  // (void)end;
  // panic("lab 7: write Swapper::share_swapped() in kernel/mm/swap/swapper.cpp (labs/07-swap/README.md)");
  // LAB 7 END
}

}  // namespace pagoda
