/// @file fork_copy.hpp
/// @brief Fork's walk of the parent's pages (lab 6): the reference's speed path.
///
/// Lab 6 (labs/06-fork/README.md) has you write fork's copy of the user half, eager and then
/// copy-on-write, in kernel/proc/process.cpp. A walk page by page with the cursor (next_mapped(),
/// perms(), protect(), map()) is correct and earns every point, but costs about 700 guest
/// instructions a page: it meets the eager target of `./pagoda bench fork`, not the copy-on-write
/// one. The reference keeps here the walk that meets both (the handout's optional part); in a
/// student's tree the region below is empty, free for a walk of the student's own.
#pragma once

#include "lib/result.hpp"
#include "mm/pt/cursor.hpp"

namespace pagoda {

// LAB 6 BEGIN fork's walk a leaf table at a time, and what it makes of each page (share, copy)
// Fork visits every mapped page of every region of the parent once and writes the child's
// entry for it: the same frame (copy-on-write) or a copy (the eager baseline). Done page by
// page through the cursor (find, perms, protect, map), each page costs a walk step, a decode
// of its permissions, an encode of new ones and an invalidation record, about 700
// instructions: more than the rest of a copy-on-write fork together. copy_mappings() does the
// walk a leaf table at a time instead:
//
//     parent cursor: next_mapped() -> the first mapped page of a leaf table
//                    page_entry()  -> its entry; the next ones are the next pages'
//     child cursor:  reserve_page_entry() at the same address -> the child's leaf table
//                                                                (made once per table)
//     for each present entry of the run:  visit(page)     the caller's decision
//     then: the child's batch told of the writes (one barrier), the parent's of the run's
//           invalidation (the batch turns many pages into one flush of the space)
//
// The caller decides what each page becomes (ForkPage): share() maps the parent's frame in
// the child and takes write permission from both entries; map_copy(frame) maps a frame of
// the child's own with the parent's permissions. Which of the two it may choose is the parent
// cursor's type: through a Cursor (copy-on-write) the walk may narrow the parent's entries and
// tells the Cursor's batch; through a ReadCursor (the eager copy) it can only read them, needs
// no batch for the parent, and a share() there does not compile. Permissions are decoded and encoded only
// when an entry's attribute bits (everything but its address) differ from the last entry's:
// the format's with_perms() keeps the address and changes only attribute bits, so the entry
// without write permission is the old address with the remembered attributes.
//
// Large pages are refused (InvalidArgument): the user half maps 4 KiB pages only. On an error
// from visit() the walk stops: what it wrote stays written and consistent (every entry it
// wrote in the child is a whole mapping, every parent entry it narrowed is invalidated), so
// the caller undoes the child by freeing its user half.

namespace fork_detail {

/// The last attribute bits seen, and what they decode to.
template <ValidPageTableFormat F> struct AttributeMemo {
  static constexpr usize kLeaf = F::kLevels - 1;
  // No present entry has attribute bits 0 (presence is an attribute bit), so 0 means "none yet".
  static_assert(!F::is_present(F::kAddressMask, kLeaf), "presence must be an attribute bit");

  u64 attributes = 0;            ///< entry & ~kAddressMask of the last entry learned
  Perms perms;                   ///< F::entry_perms() of such an entry
  u64 read_only = 0;             ///< the attribute bits of the same entry without write permission
  bool narrow = false;           ///< perms.write: share() takes write permission away
  bool narrowed_global = false;  ///< a global entry lost write permission (its flush must say so)

  /// Learns the attributes of @p entry unless they are the ones already known.
  void learn(u64 entry) {
    const u64 bits = entry & ~F::kAddressMask;
    if (bits == attributes) return;
    attributes = bits;
    perms = F::entry_perms(entry, kLeaf);
    Perms narrower = perms;
    narrower.write = false;
    read_only = F::with_perms(entry, kLeaf, narrower) & ~F::kAddressMask;
    narrow = perms.write;
    narrowed_global = narrowed_global || (perms.write && perms.global);
  }
};

}  // namespace fork_detail

/// One mapped page of the parent, as copy_mappings() meets it. @p ParentEntry is what the walk
/// holds of the parent's entry: u64* when it may narrow it (a Cursor), const u64* when it only
/// reads it (a ReadCursor).
template <ValidPageTableFormat F, class ParentEntry = u64*> class ForkPage {
 public:
  /// True when share() may be called: the walk may write the parent's entries.
  static constexpr bool kMayNarrow = kIsSame<ParentEntry, u64*>;

  /// Its virtual address (the same in both roots).
  VirtAddr va() const { return va_; }
  /// The parent's frame.
  PhysAddr frame() const { return F::output_address(entry_, kLeaf); }
  /// The parent's permissions for it.
  const Perms& perms() const { return memo_.perms; }

  /// The child maps the parent's frame; a writable page becomes read-only in both roots
  /// (copy-on-write), a read-only one stays as it is. The caller holds the extra reference.
  // clang-format off
  void share()
    requires kMayNarrow
  {
    // clang-format on
    u64 entry = entry_;
    if (memo_.narrow) {
      entry = (entry & F::kAddressMask) | memo_.read_only;
      *parent_ = entry;
      narrowed_ = true;
    }
    *child_ = entry;
  }

  /// The child maps @p frame, the caller's copy, with the parent's permissions.
  void map_copy(PhysAddr frame) { *child_ = F::make_page_entry(frame, memo_.perms); }

  /// Made by copy_mappings() only: the page at @p va whose parent entry @p entry is at
  /// @p parent and whose child entry goes to @p child.
  ForkPage(VirtAddr va, u64 entry, ParentEntry parent, u64* child, const fork_detail::AttributeMemo<F>& memo,
           bool& narrowed)
      : va_(va), entry_(entry), parent_(parent), child_(child), memo_(memo), narrowed_(narrowed) {}
  ForkPage(const ForkPage&) = delete;
  ForkPage& operator=(const ForkPage&) = delete;

 private:
  static constexpr usize kLeaf = F::kLevels - 1;

  VirtAddr va_;
  u64 entry_;
  ParentEntry parent_;
  u64* child_;
  const fork_detail::AttributeMemo<F>& memo_;
  bool& narrowed_;
};

/// Calls @p visit(ForkPage<F, ...>&) -> Result<void> for every mapped page of [@p start, @p end)
/// (page aligned, in one half) in @p from's tree, after making the child's leaf table that
/// holds it in @p to's tree. The child must map nothing in the range (a fresh child: its
/// entries are written without being read). Each visit must write the child's entry (share()
/// or map_copy(); share() only when @p from is a Cursor) or fail. Errors: visit()'s, the
/// child's NoMemory for a table, InvalidArgument for a large page or a page of the child in the
/// way. Both cursors move; their batches flush when their owners end them.
// clang-format off
template <ValidPageTableFormat F, class Parent, class Visit>
  requires(kIsSame<Parent, ReadCursor<F>> || kIsSame<Parent, Cursor<F>>)
Result<void> copy_mappings(Parent& from, Cursor<F>& to, VirtAddr start, VirtAddr end, Visit visit) {
  // clang-format on
  using ParentEntry = decltype(from.page_entry());
  using Page = ForkPage<F, ParentEntry>;
  constexpr usize kLeaf = F::kLevels - 1;
  constexpr u64 kPage = F::kPageSize;
  constexpr u64 kTableSpan = F::entry_span(kLeaf - 1);  // what one leaf table maps
  fork_detail::AttributeMemo<F> memo;
  if (!(start < end)) return {};
  from.find(start);
  while (from.next_mapped(end)) {
    const ParentEntry parent = from.page_entry();
    if (parent == nullptr) return Error(Error::InvalidArgument, "a large page in the user half");
    const VirtAddr first = from.va();
    const VirtAddr table_end = first.align_down(kTableSpan).offset(kTableSpan);
    const VirtAddr stop = table_end <= first || end < table_end ? end : table_end;
    const usize pages = usize((stop.value() - first.value()) / kPage);
    to.find(first);
    if (to.mapped())
      return Error(Error::InvalidArgument, "the child already maps a page fork copies").at(first.value());
    u64* child = TRY(to.reserve_page_entry());
    bool narrowed = false;
    Result<void> done;
    const ParentEntry parent_end = parent + pages;
    u64* c = child;
    for (ParentEntry p = parent; p != parent_end; ++p, ++c) {
      const u64 entry = *p;
      if (!F::is_present(entry, kLeaf)) continue;
      memo.learn(entry);
      Page page(first.offset(u64(p - parent) * kPage), entry, p, c, memo, narrowed);
      if (Result<void> visited = visit(page); visited.is_error()) [[unlikely]] {
        done = visited.error();
        break;
      }
    }
    to.batch().wrote();
    if constexpr (Page::kMayNarrow) {
      if (narrowed) {
        from.batch().wrote();
        from.batch().invalidate_range(first, stop.value() - first.value(), memo.narrowed_global);
      }
    }
    if (done.is_error()) return done.error();
    if (stop == end) break;
    from.find(stop);
  }
  return {};
}
// LAB 6 SKELETON
// // Your walk may live here or in kernel/proc/process.cpp (labs/06-fork/README.md).
// LAB 6 END

}  // namespace pagoda
