/// @file page_table.hpp
/// @brief The arch-independent page-table layer: the format concept, where tables live, the
/// read-only walk of any root, and PageTable<F>, the one owner of one tree.
///
/// Everything here works on any format F that satisfies ValidPageTableFormat (the ISA's is
/// arch::PageTableFormat, chosen at compile time). It never touches a PTE bit or computes an
/// index itself: it walks levels 0 (the root) .. F::kLevels - 1 (the page level) and asks F.
/// Physical memory for tables comes from a TableMemory (the frame allocator and the kernel's
/// window in the kernel; fake memory in host tests).
///
///     PageTable<F>            root (level 0)
///                             +-------+    +-------+    +-------+    +-------+
///                             | L0    |--->| L1    |--->| L2    |--->| L3    |---> 4 KiB page
///                             +-------+    +-------+    +-------+    +-------+
///                                             |            +--> 2 MiB block (a leaf at L2)
///
/// The pieces, each in its own header:
///   - PageTable<F> (here): owns a root and the tables under the part of the tree it owns;
///     knows which tables may never be freed (the pinned kernel half). Move-only, made only by
///     create(): no second handle on a root can exist.
///   - Cursor<F> (mm/pt/cursor.hpp): stands on one virtual address of a tree, keeps its path, and
///     maps, unmaps, protects and splits there; range operations walk each table once.
///   - TableIterator<F> (mm/pt/cursor.hpp): every table frame of a tree, children first (teardown).
///   - ConsistencyBatch (mm/pt/consistency_batch.hpp): write barrier, TLB invalidations and table
///     frees, in that order, when it goes out of scope.
///   - AddressSpace (mm/space/address_space.hpp): what the rest of the kernel uses; owns the arch's
///     roots (arch::ArchAddressSpace) and offers map/unmap/protect/query over them.
#pragma once

#include "lib/result.hpp"
#include "mm/base/addr.hpp"
#include "mm/base/perms.hpp"
#include "mm/pt/table_memory.hpp"
#include "mm/pt/walk.hpp"

namespace pagoda {

/// What generic code needs to know about an ISA's page tables (see
/// `arch/<isa>/page_table_format.hpp`). Entries are u64 on every supported ISA.
// clang-format off
template <class F>
concept ValidPageTableFormat = requires(VirtAddr va, PhysAddr pa, u64 e, usize level, usize part, Perms perms,
                                        bool user, FormatSink& sink) {
  requires F::kLevels >= 2 && F::kLevels <= Walk::kMaxLevels;
  requires F::kEntriesPerTable > 0;
  requires F::kPageSize > 0 && (F::kPageSize & (F::kPageSize - 1)) == 0;  // one page size, a power of two
  requires F::kAddressMask != 0;                                         // one address mask
  requires SameAs<decltype(F::kBreakBeforeMake), const bool>;            // see Cursor::replace_live()
  { F::level_name(level) } -> SameAs<const char*>;
  { F::entry_span(level) } -> SameAs<u64>;
  { F::index(va, level) } -> SameAs<usize>;
  { F::is_canonical(va) } -> SameAs<bool>;
  { F::is_present(e, level) } -> SameAs<bool>;  // in use: valid to the MMU, or a held leaf
  { F::is_held(e, level) } -> SameAs<bool>;     // a leaf kept for the kernel, invalid to the MMU
  { F::is_leaf(e, level) } -> SameAs<bool>;
  { F::can_hold_block(level) } -> SameAs<bool>;
  { F::has_reserved_bits(e, level) } -> SameAs<bool>;
  { F::output_address(e, level) } -> SameAs<PhysAddr>;
  { F::make_table_entry(pa, level, user) } -> SameAs<u64>;  // user: may lead to user pages
  { F::make_page_entry(pa, perms) } -> SameAs<u64>;
  { F::make_block_entry(pa, level, perms) } -> SameAs<u64>;
  { F::split_block(e, level, part) } -> SameAs<u64>;
  { F::entry_perms(e, level) } -> SameAs<Perms>;
  { F::with_perms(e, level, perms) } -> SameAs<u64>;
  // Lab 7: a swapped-out page's entry (not present: the walk stops at it) and a leaf's
  // accessed and dirty state (the hardware's bits on x86_64, the kernel's on AArch64).
  { F::is_swap_entry(e, level) } -> SameAs<bool>;
  { F::make_swap_entry(e) } -> SameAs<u64>;
  { F::swap_slot(e) } -> SameAs<u64>;
  { F::is_accessed(e) } -> SameAs<bool>;
  { F::without_accessed(e) } -> SameAs<u64>;
  { F::is_dirty(e) } -> SameAs<bool>;
  { F::cleaned(e) } -> SameAs<u64>;
  F::write_barrier();
  F::describe_entry(sink, e, level);
};
// clang-format on

/// Two virtual addresses of one half of the address space, with no hole between: a range
/// [va, va + size) that a tree can map (size > 0, no wrap-around). On both ISAs Pagoda supports
/// the halves are told apart by bit 63 and the hole lies between them.
template <ValidPageTableFormat F> constexpr bool is_canonical_range(VirtAddr va, u64 size) {
  if (size == 0 || va.value() + (size - 1) < va.value()) return false;
  const VirtAddr last = va.offset(size - 1);
  return F::is_canonical(va) && F::is_canonical(last) && ((va.value() ^ last.value()) >> 63) == 0;
}

/// The whole walk of @p va through the tree at @p root: each level's index and entry, where it
/// stopped and why, and when mapped, the physical address and the effective permissions.
/// Read-only, and safe on any root, even a corrupt one (a table the kernel cannot reach stops
/// the walk): what fault reports use on the live roots.
template <ValidPageTableFormat F> Walk walk_tree(PhysAddr root, TableMemory& memory, VirtAddr va) {
  Walk w;
  w.va = va;
  w.root = root;
  w.describe_entry = &F::describe_entry;
  if (!F::is_canonical(va)) {
    w.stop = WalkStop::NonCanonical;
    return w;
  }
  Perms effective{.read = true, .write = true, .execute = true, .user = true};
  PhysAddr table = root;
  for (usize level = 0; level < F::kLevels; ++level) {
    const u64* entries = memory.table_entries(table);
    WalkLevel& l = w.levels[w.depth++];
    l = WalkLevel{F::level_name(level), level, F::index(va, level), table, 0};
    if (entries == nullptr) {
      w.stop = WalkStop::TableUnreachable;
      return w;
    }
    l.entry = entries[l.index];
    if (!F::is_present(l.entry, level)) {
      w.stop = WalkStop::NotPresent;
      return w;
    }
    if (F::has_reserved_bits(l.entry, level)) {
      w.stop = WalkStop::ReservedBits;
      return w;
    }
    const Perms p = F::entry_perms(l.entry, level);
    effective.read = effective.read && p.read;  // false: a held leaf (invalid to the MMU)
    effective.write = effective.write && p.write;
    effective.execute = effective.execute && p.execute;
    effective.user = effective.user && p.user;
    if (F::is_leaf(l.entry, level)) {
      effective.caching = p.caching;
      effective.global = p.global;
      w.stop = WalkStop::Mapped;
      w.page_size = F::entry_span(level);
      w.pa = F::output_address(l.entry, level).offset(va.value() & (w.page_size - 1));
      w.perms = effective;
      return w;
    }
    table = F::output_address(l.entry, level);
  }
  return w;  // unreachable: the last level's entries are leaves
}

template <ValidPageTableFormat F> class TableIterator;

/// One page-table tree in format F, and its single owner.
///
/// A tree owns its root and every table under the top-level entries [owned_first, owned_end)
/// of its Shape: destroying it frees exactly those (children before parents), then the root.
/// Top-level entries outside that range may point to tables someone else owns (on x86_64 a
/// process root's copies of the kernel half) and are never followed. The top-level tables
/// under entries [pinned_first, kEntriesPerTable) are pinned: an unmap never frees them, so
/// that every root sharing them stays valid.
///
/// The owner (an arch::ArchAddressSpace) must make sure that no TLB still holds a walk through
/// the tree before destroying it (x86: it is not the live root; AArch64: its ASID is flushed).
template <ValidPageTableFormat F> class PageTable {
 public:
  static constexpr usize kLeafLevel = F::kLevels - 1;

  /// Which top-level entries a tree owns and which of its top-level tables are pinned.
  struct Shape {
    usize owned_first = 0;
    usize owned_end = F::kEntriesPerTable;
    usize pinned_first = F::kEntriesPerTable;  ///< none pinned by default
    /// Top-level entries [0, user_end) lead to tables that may hold user pages: their table
    /// entries, at every level, allow user access (the leaf decides). Entries from user_end on
    /// are the kernel half: no table entry under them allows user access at any level (x86: US
    /// clear; AArch64: APTable forbids EL0), so no leaf mistake there can expose the kernel.
    usize user_end = F::kEntriesPerTable;
  };

  /// A new tree with an empty root.
  [[nodiscard]] static Result<PageTable> create(TableMemory& memory, Shape shape) {
    if (shape.owned_first > shape.owned_end || shape.owned_end > F::kEntriesPerTable) return Error::InvalidArgument;
    const PhysAddr root = TRY(memory.allocate_table());
    if (memory.table_entries(root) == nullptr) {
      memory.free_table(root);
      return Error(Error::InvalidArgument, "a new root is not reachable through TableMemory");
    }
    return PageTable(root, memory, shape);
  }
  [[nodiscard]] static Result<PageTable> create(TableMemory& memory) { return create(memory, Shape{}); }

  PageTable(PageTable&& other) : root_(other.root_), memory_(other.memory_), shape_(other.shape_) {
    other.root_ = PhysAddr();
    other.memory_ = nullptr;
  }
  PageTable(const PageTable&) = delete;
  PageTable& operator=(const PageTable&) = delete;
  PageTable& operator=(PageTable&&) = delete;

  /// Frees every table it owns, then the root (see the class comment for when that is safe).
  ~PageTable() {
    if (memory_ == nullptr) return;  // moved from
    free_owned_tables();
    clear_table(root_);
    memory_->free_table(root_);
  }

  /// False for a tree that was moved from (it owns nothing).
  bool valid() const { return memory_ != nullptr; }
  PhysAddr root() const { return root_; }
  TableMemory& memory() const { return *memory_; }
  const Shape& shape() const { return shape_; }

  /// The level of the highest table an unmap may free when it empties under @p va: 1 (the
  /// root is never freed), or 2 under a pinned top-level entry.
  usize lowest_freeable_level(VirtAddr va) const { return F::index(va, 0) >= shape_.pinned_first ? 2 : 1; }

  /// True when the tables on the path to @p va may lead to user pages (Shape::user_end): what
  /// every table entry made for @p va passes to F::make_table_entry().
  bool user_tables(VirtAddr va) const { return F::index(va, 0) < shape_.user_end; }

  /// The walk of @p va through this tree (walk_tree()).
  Walk query(VirtAddr va) const { return walk_tree<F>(root_, *memory_, va); }

  /// The root's entries (for the arch's sharing of a kernel half).
  u64* root_entries() const { return memory_->table_entries(root_); }

  /// Gives every empty top-level entry in [first, end) a fresh table, once, so that roots
  /// sharing those entries (x86_64 process roots copy the kernel half) see every mapping made
  /// under them later, in any root. Tables are linked with F::make_table_entry(table, 0, user),
  /// user only below Shape::user_end: a kernel-half entry never allows user access.
  /// NoMemory when a table cannot be allocated (the entries linked so far stay).
  [[nodiscard]] Result<void> populate_top_level(usize first, usize end) {
    if (first > end || end > F::kEntriesPerTable) return Error::InvalidArgument;
    // LAB 2 BEGIN give every top-level entry in [first, end) its table
    u64* top = root_entries();
    for (usize i = first; i < end; ++i) {
      if (F::is_present(top[i], 0)) continue;
      const PhysAddr table = TRY(memory_->allocate_table());
      top[i] = F::make_table_entry(table, 0, i < shape_.user_end);
    }
    return {};
    // LAB 2 SKELETON
    // return Error(Error::NotImplemented, "lab 2: write PageTable::populate_top_level() in kernel/mm/pt/page_table.hpp "
    //                                     "(labs/02-higher-half/README.md)");
    // LAB 2 END
  }

 private:
  PageTable(PhysAddr root, TableMemory& memory, Shape shape) : root_(root), memory_(&memory), shape_(shape) {}

  void clear_table(PhysAddr table) {
    if (u64* entries = memory_->table_entries(table))
      for (usize i = 0; i < F::kEntriesPerTable; ++i) entries[i] = 0;
  }

  /// Teardown: every table under the owned top-level entries, children first, each cleared
  /// before it is freed (so that a stale walk finds nothing), then those top-level entries.
  void free_owned_tables() {
    if (shape_.owned_first == shape_.owned_end) return;
    for (TableIterator<F> it(*this, shape_.owned_first, shape_.owned_end); !it.done(); it.next()) {
      clear_table(it.table());
      memory_->free_table(it.table());
    }
    u64* top = root_entries();
    for (usize i = shape_.owned_first; i < shape_.owned_end; ++i) top[i] = 0;
  }

  PhysAddr root_;
  TableMemory* memory_;
  Shape shape_;
};

}  // namespace pagoda

#include "mm/pt/table_iterator.hpp"  // TableIterator, used by ~PageTable
