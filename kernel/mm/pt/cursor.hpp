/// @file cursor.hpp
/// @brief ReadCursor<F>: one position in one page-table tree, for queries; Cursor<F>: the same,
/// and every change made there.
///
/// A cursor stands on a virtual address and remembers the path of tables down to the entry that
/// decides it: the leaf that maps it, or the entry where the walk stops (not present). Moving
/// it (find, next_mapped) re-descends only from the level whose index changed, so a range
/// operation reads each table once instead of walking from the root for every page:
///
///     path for 0x4000'3000          then find(0x4000'4000): same PT, nothing re-read above it
///     level 0  root[0]  ----+
///     level 1  PDPT[1]  ----+--> kept
///     level 2  PD[0]    ----+
///     level 3  PT[3]    -> PT[4]   (the only entry read again)
///
/// A ReadCursor only reads: it has no way to change an entry, so it needs no batch. A Cursor is
/// a ReadCursor that also changes the tree; its changes go through a ConsistencyBatch
/// (mm/pt/consistency_batch.hpp), which issues the write barrier, the invalidations and the
/// frees of unlinked tables in that order when it goes out of scope. One cursor changes a tree
/// at a time (a second cursor's path would go stale).
///
/// Usually reached through AddressSpace (mm/space/address_space.hpp):
///
///     for (auto c = space.read_cursor(first); c.next_mapped(end); c.next())   // queries
///       ... c.va(), c.pa(), c.perms() ...
///
///     ConsistencyBatch batch = space.batch();                                 // changes
///     for (auto c = space.cursor(batch, first); c.next_mapped(end); c.next())
///       ... c.protect(...), c.unmap() ...
#pragma once

#include "lib/result.hpp"
#include "mm/pt/consistency_batch.hpp"
#include "mm/pt/page_table.hpp"

namespace pagoda {

/// A position in one tree that reads and moves, and never writes an entry: what a query, a
/// check or a count walks with. It has no batch because it has nothing to tell one.
template <ValidPageTableFormat F> class ReadCursor {
 public:
  static constexpr usize kLeafLevel = F::kLevels - 1;
  static constexpr u64 kPage = F::kPageSize;

  /// A cursor on @p tree at @p va.
  ReadCursor(const PageTable<F>& tree, VirtAddr va) : tree_(&tree) {
    table_[0] = tree.root();
    entries_[0] = tree.root_entries();
    va_ = va;
    if (F::is_canonical(va)) descend(0);
  }

  // ---- Where it stands --------------------------------------------------------------------

  /// The virtual address it stands on.
  VirtAddr va() const { return va_; }
  /// Why the walk of va() stopped (WalkStop::Mapped when it is mapped).
  WalkStop stop() const { return stop_; }
  bool mapped() const { return stop_ == WalkStop::Mapped; }
  /// The level of the entry that decides va(): the page level for a 4 KiB page, higher for a
  /// block or for a walk that stopped early.
  usize level() const { return depth_ - 1; }
  /// Bytes that entry covers (F::entry_span(level())).
  u64 span() const { return F::entry_span(level()); }
  /// The first address after the range that entry covers: where next() goes. 0 when the range
  /// ends at the top of the address space.
  VirtAddr range_end() const { return va_.align_down(span()).offset(span()); }
  /// The entry that decides va(), or 0 when there is none (unreachable table, non-canonical).
  u64 entry() const { return has_entry() ? entries_[level()][F::index(va_, level())] : 0; }
  /// The physical address va() translates to; only meaningful when mapped().
  PhysAddr pa() const { return F::output_address(entry(), level()).offset(va_.value() & (span() - 1)); }
  /// The effective permissions of va() (every level restricts); only meaningful when mapped().
  /// A held leaf (mapped for the kernel, invalid to the MMU) has read false: no access at all.
  Perms perms() const {
    if (!mapped()) return {};
    Perms p{.read = true, .write = true, .execute = true, .user = true};
    for (usize l = 0; l < depth_; ++l) {
      const Perms e = F::entry_perms(entries_[l][F::index(va_, l)], l);
      p.read = p.read && e.read;
      p.write = p.write && e.write;
      p.execute = p.execute && e.execute;
      p.user = p.user && e.user;
      p.caching = e.caching;
      p.global = e.global;
    }
    return p;
  }
  /// The full walk record of va() (for reports).
  Walk query() const { return tree_->query(va_); }
  /// The page-level entry that maps va() (mapped() at the page level), else nullptr; the entries
  /// after it, to the end of its table, are the next pages': for a walk that reads a whole table
  /// at a time (fork's eager copy, mm/space/fork_copy.hpp). Read only: Cursor::page_entry() is
  /// the one to write through.
  const u64* page_entry() const {
    return mapped() && level() == kLeafLevel ? &entries_[kLeafLevel][F::index(va_, kLeafLevel)] : nullptr;
  }
  /// True when va() is a swapped-out page (lab 7): its page-level entry is a swap entry, which
  /// the MMU does not use and the walk does not count as mapped; entry() is that swap entry.
  bool swapped() const {
    return stop_ == WalkStop::NotPresent && level() == kLeafLevel && F::is_swap_entry(entry(), kLeafLevel);
  }

  // ---- Moving -----------------------------------------------------------------------------

  /// Moves to @p va, re-reading the tables from the first level whose index changed.
  void find(VirtAddr va) {
    usize keep = 0;
    if (stop_ != WalkStop::NonCanonical && F::is_canonical(va))
      while (keep + 1 < depth_ && same_table(va_, va, keep + 1)) ++keep;
    va_ = va;
    if (!F::is_canonical(va)) {
      depth_ = 1;
      stop_ = WalkStop::NonCanonical;
      return;
    }
    descend(keep);
  }

  /// Moves to range_end(): the next page, or past a whole unmapped or block range.
  void next() { find(range_end()); }

  /// Moves to the first mapped address in [va(), @p end) and returns true, or to @p end and
  /// returns false. [va(), end) must lie in one half of the address space (end > va()). Skips
  /// unmapped ranges a whole entry at a time.
  bool next_mapped(VirtAddr end) { return next_where(end, false); }

  /// next_mapped() that also stops at a swapped-out page (swapped()): the walk of a range whose
  /// swap entries matter (exit gives their slots back, fork shares them; lab 7).
  bool next_mapped_or_swapped(VirtAddr end) { return next_where(end, true); }

 protected:
  /// Moves to the first address in [va(), @p end) that is mapped (or, with @p swap_entries,
  /// swapped out) and returns true, or to @p end and returns false.
  bool next_where(VirtAddr end, bool swap_entries) {
    while (va_ < end) {
      if (mapped() || (swap_entries && swapped())) return true;
      const VirtAddr next_va = range_end();
      if (next_va <= va_ || next_va >= end) break;  // wrapped at the top, or past the end
      find(next_va);
    }
    find(end);
    return false;
  }

  /// True when the entry at level() exists (its table is reachable and va() canonical).
  bool has_entry() const { return stop_ != WalkStop::NonCanonical && entries_[level()] != nullptr; }

  /// The entry for va() in the path's table at @p level (level < depth_).
  u64& slot(usize level) { return entries_[level][F::index(va_, level)]; }

  /// True when @p a and @p b go through the same table at @p level (>= 1): they agree on every
  /// index above it.
  static bool same_table(VirtAddr a, VirtAddr b, usize level) {
    const u64 above = F::entry_span(level - 1);
    return a.align_down(above) == b.align_down(above);
  }

  /// Walks from the table at @p level (on the path) down to the entry that decides va_.
  void descend(usize level) {
    for (;; ++level) {
      depth_ = level + 1;
      const u64* entries = entries_[level];
      if (entries == nullptr) {
        stop_ = WalkStop::TableUnreachable;
        return;
      }
      const u64 e = entries[F::index(va_, level)];
      if (!F::is_present(e, level)) {
        stop_ = WalkStop::NotPresent;
        return;
      }
      if (F::has_reserved_bits(e, level)) {
        stop_ = WalkStop::ReservedBits;
        return;
      }
      if (F::is_leaf(e, level)) {
        stop_ = WalkStop::Mapped;
        return;
      }
      table_[level + 1] = F::output_address(e, level);
      entries_[level + 1] = tree_->memory().table_entries(table_[level + 1]);
    }
  }

  const PageTable<F>* tree_;
  VirtAddr va_;
  PhysAddr table_[F::kLevels];  ///< the table read at each level of the path (table_[0]: root)
  u64* entries_[F::kLevels];    ///< its entries (nullptr: the kernel cannot reach it)
  usize depth_ = 1;             ///< levels [0, depth_) are on the path
  WalkStop stop_ = WalkStop::NonCanonical;
};

/// A ReadCursor that also changes the tree where it stands: map, unmap, protect, split, remap
/// and their ranges. Its changes go through a ConsistencyBatch.
template <ValidPageTableFormat F> class Cursor : public ReadCursor<F> {
  using Read = ReadCursor<F>;

 public:
  using Read::kLeafLevel;
  using Read::kPage;
  using Read::find;
  using Read::level;
  using Read::mapped;
  using Read::span;

  /// A cursor on @p tree at @p va; its changes go through @p batch.
  Cursor(PageTable<F>& tree, ConsistencyBatch& batch, VirtAddr va) : Read(tree, va), batch_(&batch) {}
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;

  /// The batch its changes go through.
  ConsistencyBatch& batch() const { return *batch_; }

  /// ReadCursor::page_entry(), to write through: for a range operation that works a whole table
  /// at a time (fork's copy-on-write, mm/space/fork_copy.hpp). Whoever writes through it keeps
  /// the batch told (wrote(), invalidate_range()) and leaves present entries present (the path
  /// stays valid).
  u64* page_entry() { return mapped() && level() == kLeafLevel ? &slot(kLeafLevel) : nullptr; }

  // ---- Changes at va() --------------------------------------------------------------------

  /// Maps the page at va() (page aligned) to @p pa with @p perms, creating the missing tables.
  /// InvalidArgument (misaligned, non-canonical, a table the kernel cannot reach or with
  /// reserved bits), AlreadyExists (something is mapped there, possibly by a block) or
  /// NoMemory (no frame for a table; nothing is left half-built).
  [[nodiscard]] Result<void> map(PhysAddr pa, Perms perms) { return map_at(kLeafLevel, pa, perms); }

  /// The page-level entry that decides va(), creating the missing tables above it, for an
  /// owner that writes that one entry itself and does its own barrier and invalidation (the
  /// temporary-mapping slots, mm/tempmap/temp_map.hpp). The table holding it is never freed by its
  /// owner's writes: only a cursor unmap frees tables, and no cursor changes such an entry.
  /// InvalidArgument when a block or a table the kernel cannot reach stands in the way.
  [[nodiscard]] Result<u64*> reserve_page_entry() {
    if (stop_ == WalkStop::Mapped && level() != kLeafLevel) return Error::InvalidArgument;
    if (stop_ != WalkStop::Mapped && stop_ != WalkStop::NotPresent) return Error::InvalidArgument;
    if (level() < kLeafLevel) TRY(make_path(kLeafLevel));
    return &slot(kLeafLevel);
  }

  /// Maps a block (a large page) of F::entry_span(@p level) bytes at va() to @p pa, both
  /// aligned to it; @p level must be one where F::can_hold_block(). AlreadyExists when
  /// anything (a page, a block or a table) is there.
  [[nodiscard]] Result<void> map_block(PhysAddr pa, usize level, Perms perms) {
    if (level >= kLeafLevel || !F::can_hold_block(level)) return Error::InvalidArgument;
    return map_at(level, pa, perms);
  }

  /// Unmaps the leaf at va(): a page, or a whole block when va() is its first address; frees
  /// the tables this leaves empty (never the root, nor a pinned table) and returns the
  /// physical address that was mapped. NotFound when nothing is mapped; Unsupported inside a
  /// block (split() it first).
  [[nodiscard]] Result<PhysAddr> unmap() {
    if (stop_ == WalkStop::NonCanonical || !va_.is_aligned(kPage)) return Error::InvalidArgument;
    if (!mapped()) return Error::NotFound;
    if (!va_.is_aligned(span())) return Error::Unsupported;
    // LAB 1 BEGIN clear the leaf, then free every table the unmap left empty
    const u64 old = slot(level());
    slot(level()) = 0;
    batch_->wrote();
    batch_->invalidate_range(va_, span(), F::entry_perms(old, level()).global);
    const PhysAddr pa = F::output_address(old, level());
    stop_ = WalkStop::NotPresent;
    while (level() >= tree_->lowest_freeable_level(va_) && table_is_empty(level())) unlink_table(level() - 1);
    return pa;
    // LAB 1 SKELETON
    // return Error(Error::NotImplemented, "lab 1: write the end of Cursor::unmap() in kernel/mm/pt/cursor.hpp "
    //                                     "(labs/01-identity-map/README.md)");
    // LAB 1 END
  }

  /// Rewrites the permissions of the leaf at va() (the whole block for a block), keeping
  /// everything else of the entry: the address, accessed, dirty, and global. NotFound when
  /// nothing is mapped.
  [[nodiscard]] Result<void> protect(Perms perms) {
    if (!mapped()) return stop_ == WalkStop::NotPresent ? Error::NotFound : Error::InvalidArgument;
    // LAB 1 BEGIN rewrite the leaf's permissions, keeping the rest, and invalidate what the TLB may hold
    u64& e = slot(level());
    const u64 updated = F::with_perms(e, level(), perms);
    if (updated == e) return {};
    e = updated;
    batch_->wrote();
    batch_->invalidate_range(va_.align_down(span()), span(), F::entry_perms(updated, level()).global);
    return {};
    // LAB 1 SKELETON
    // (void)perms;
    // return Error(Error::NotImplemented, "lab 1: write Cursor::protect() in kernel/mm/pt/cursor.hpp "
    //                                     "(labs/01-identity-map/README.md)");
    // LAB 1 END
  }

  /// Replaces the page mapped at va() (a 4 KiB leaf) by @p swap_entry (F::make_swap_entry(),
  /// lab 7) and returns the leaf it replaced: its frame, its accessed and dirty state. The batch
  /// is told of the write (its barrier); which TLB must forget the page is the caller's to say
  /// (batch().invalidate()): this cursor's batch reaches the TLB entries of its own space only.
  /// The leaf's table stays (a swap entry keeps it in use). NotFound when nothing is mapped,
  /// Unsupported for a block, InvalidArgument for an entry that is not a swap entry.
  [[nodiscard]] Result<u64> replace_with_swap_entry(u64 swap_entry) {
    if (!F::is_swap_entry(swap_entry, kLeafLevel)) return Error(Error::InvalidArgument, "not a swap entry");
    if (!mapped()) return Error::NotFound;
    if (level() != kLeafLevel) return Error::Unsupported;
    // LAB 7 BEGIN the leaf becomes the swap entry; the batch told of the write; the path stops there now
    const u64 old = slot(kLeafLevel);
    slot(kLeafLevel) = swap_entry;
    batch_->wrote();
    stop_ = WalkStop::NotPresent;
    return old;
    // LAB 7 SKELETON
    // return Error(Error::NotImplemented, "lab 7: write Cursor::replace_with_swap_entry() in kernel/mm/pt/cursor.hpp "
    //                                     "(labs/07-swap/README.md)");
    // LAB 7 END
  }

  /// Clears the swap entry at va() (swapped()) and frees the tables that leaves empty, as
  /// unmap() does (lab 7: the page is gone, its slot is the caller's to give back). NotFound when
  /// va() is not swapped out.
  [[nodiscard]] Result<void> forget_swapped() {
    if (!this->swapped()) return Error::NotFound;
    // LAB 7 BEGIN clear the swap entry, then free the tables that leaves empty (never the root, nor a pinned table)
    slot(kLeafLevel) = 0;
    batch_->wrote();
    for (usize at = level(); at >= tree_->lowest_freeable_level(va_) && table_is_empty(at); at = level())
      unlink_table(at - 1);
    return {};
    // LAB 7 SKELETON
    // return Error(Error::NotImplemented, "lab 7: write Cursor::forget_swapped() in kernel/mm/pt/cursor.hpp "
    //                                     "(labs/07-swap/README.md)");
    // LAB 7 END
  }

  /// Splits the block at va() into a table of entries one level down that map the same memory
  /// with the same attributes (4 KiB pages under a 2 MiB block). InvalidArgument when va() is
  /// not in a block; NoMemory when no table can be allocated (nothing changed).
  [[nodiscard]] Result<void> split() {
    if (!mapped() || level() == kLeafLevel) return Error::InvalidArgument;
    const usize at = level();
    const u64 block = slot(at);
    const PhysAddr table = TRY(tree_->memory().allocate_table());
    u64* entries = tree_->memory().table_entries(table);
    for (usize i = 0; i < F::kEntriesPerTable; ++i) entries[i] = F::split_block(block, at, i);
    replace_live(at, F::make_table_entry(table, at, tree_->user_tables(va_)), va_.align_down(span()), span(),
                 F::entry_perms(block, at).global);
    enter(table);
    descend(at + 1);
    return {};
  }

  /// Makes the mapped page at va() map @p pa with @p perms instead (copy-on-write's break, lab
  /// 6), through an invalid entry first when the format needs break-before-make. The old page
  /// is the caller's; it may be freed once the batch has flushed.
  [[nodiscard]] Result<void> remap(PhysAddr pa, Perms perms) {
    if (!va_.is_aligned(kPage) || !pa.is_aligned(kPage)) return Error::InvalidArgument;
    if (!mapped()) return Error::NotFound;
    if (level() != kLeafLevel) return Error::Unsupported;
    replace_live(level(), F::make_page_entry(pa, perms), va_, kPage, F::entry_perms(slot(level()), level()).global);
    return {};
  }

  // ---- Range operations from va(); the cursor moves --------------------------------------

  /// Maps [va(), va() + size) to [pa, pa + size) page by page; on failure unmaps what it
  /// mapped and stands at the start again.
  [[nodiscard]] Result<void> map_range(PhysAddr pa, u64 size, Perms perms) {
    if (!va_.is_aligned(kPage) || !pa.is_aligned(kPage) || !is_aligned(size, kPage) ||
        !is_canonical_range<F>(va_, size))
      return Error::InvalidArgument;
    const VirtAddr start = va_;
    for (u64 off = 0; off < size; off += kPage) {
      if (off > 0) find(start.offset(off));
      const Result<void> r = map(pa.offset(off), perms);
      if (r.is_error()) {
        for (u64 back = 0; back < off; back += kPage) {
          find(start.offset(back));
          (void)unmap();
        }
        find(start);
        return r.error();
      }
    }
    return {};
  }

  /// Unmaps every page of [va(), va() + size) (whole blocks when the range covers them); fails
  /// (NotFound) at the first page not mapped, leaving the pages before it unmapped, and
  /// Unsupported at a block the range covers only in part (split it first).
  [[nodiscard]] Result<void> unmap_range(u64 size) {
    if (!va_.is_aligned(kPage) || !is_aligned(size, kPage) || !is_canonical_range<F>(va_, size))
      return Error::InvalidArgument;
    for (u64 left = size;;) {
      const u64 step = mapped() ? span() : kPage;  // measured before the unmap changes the path
      if (step > left) return Error::Unsupported;
      TRY(unmap());
      left -= step;
      if (left == 0) return {};
      find(va_.offset(step));
    }
  }

  /// Changes the permissions of every page of [va(), va() + size) (see protect()). All must be
  /// mapped (NotFound otherwise) and blocks wholly inside the range (Unsupported otherwise);
  /// nothing is changed unless everything can be.
  [[nodiscard]] Result<void> protect_range(u64 size, Perms perms) {
    if (!va_.is_aligned(kPage) || !is_aligned(size, kPage) || !is_canonical_range<F>(va_, size))
      return Error::InvalidArgument;
    const VirtAddr start = va_;
    for (int pass = 0; pass < 2; ++pass) {  // check everything, then change everything
      find(start);
      for (u64 left = size;;) {
        if (!mapped()) return Error::NotFound;
        if (level() != kLeafLevel && (!va_.is_aligned(span()) || span() > left)) return Error::Unsupported;
        if (pass == 1) TRY(protect(perms));
        left -= span();
        if (left == 0) break;
        find(va_.offset(span()));
      }
    }
    return {};
  }

 private:
  using Read::depth_;
  using Read::descend;
  using Read::entries_;
  using Read::slot;
  using Read::stop_;
  using Read::table_;
  using Read::tree_;
  using Read::va_;

  /// The entry at level() now points to the new table @p table: the path goes one level down,
  /// where nothing is present yet. (TableMemory hands out tables the kernel can reach.)
  void enter(PhysAddr table) {
    table_[depth_] = table;
    entries_[depth_] = tree_->memory().table_entries(table);
    ++depth_;
    stop_ = entries_[depth_ - 1] == nullptr ? WalkStop::TableUnreachable : WalkStop::NotPresent;
  }

  /// Clears the entry at @p level, which points to the table one level down on the path, and
  /// hands that table to the batch (freed after the invalidations). The path ends at @p level.
  void unlink_table(usize level) {
    slot(level) = 0;
    batch_->wrote();
    batch_->free_table(table_[level + 1], va_);
    depth_ = level + 1;
    stop_ = WalkStop::NotPresent;
  }

  /// True when the path's table at @p level has no entry in use: none present, none a swap
  /// entry (a swapped-out page still needs its table, lab 7).
  bool table_is_empty(usize level) const {
    const u64* entries = entries_[level];
    for (usize i = 0; i < F::kEntriesPerTable; ++i)
      if (F::is_present(entries[i], level) || F::is_swap_entry(entries[i], level)) return false;
    return true;
  }

  /// Creates the missing tables from level() (where the walk stopped: not present) down to
  /// the table at @p target, so that the entry at @p target can be written. On failure the
  /// tables it created are unlinked again (freed with the batch): nothing is left half-built.
  Result<void> make_path(usize target) {
    // LAB 1 BEGIN walk down from where the walk stopped, allocating and linking the missing tables
    const usize stopped = level();
    while (level() < target) {
      const Result<PhysAddr> table = tree_->memory().allocate_table();
      if (table.is_error()) {
        while (level() > stopped) unlink_table(level() - 1);
        return table.error();
      }
      slot(level()) = F::make_table_entry(table.value(), level(), tree_->user_tables(va_));
      batch_->wrote();
      enter(table.value());
    }
    return {};
    // LAB 1 SKELETON
    // (void)target;
    // return Error(Error::NotImplemented, "lab 1: write Cursor::make_path() in kernel/mm/pt/cursor.hpp "
    //                                     "(labs/01-identity-map/README.md)");
    // LAB 1 END
  }

  /// Writes @p entry at @p level where va() is mapped now ([base, base + size)): directly and
  /// invalidated with the batch, or, when the format requires it, break-before-make.
  void replace_live(usize level, u64 entry, VirtAddr base, u64 size, bool global) {
    if constexpr (F::kBreakBeforeMake) {
      batch_->break_before_make(slot(level), entry, base, size, global);
    } else {
      slot(level) = entry;
      batch_->wrote();
      batch_->invalidate_range(base, size, global);
    }
  }

  Result<void> map_at(usize level, PhysAddr pa, Perms perms) {
    const u64 size = F::entry_span(level);
    if (!va_.is_aligned(size) || !pa.is_aligned(size)) return Error::InvalidArgument;
    // The address goes with the error: its callers often do not know which page of a range it was.
    if (stop_ == WalkStop::Mapped) return Error(Error::AlreadyExists, "the page is already mapped").at(va_.value());
    if (stop_ != WalkStop::NotPresent)
      return Error(Error::InvalidArgument, "a table on the way is not usable").at(va_.value());
    if (this->level() > level)  // a table is where the block would go
      return Error(Error::AlreadyExists, "a table is where the block would go").at(va_.value());
    if (this->level() < level) TRY(make_path(level));
    slot(level) = level == kLeafLevel ? F::make_page_entry(pa, perms) : F::make_block_entry(pa, level, perms);
    batch_->wrote();
    stop_ = WalkStop::Mapped;
    return {};
  }

  ConsistencyBatch* batch_;
};

}  // namespace pagoda
