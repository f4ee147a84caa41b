/// @file page_table.hpp
/// @brief The arch-independent page-table layer: map, unmap, protect and query one root.
///
/// PageTable<F> works on any format F that satisfies the ValidPageTableFormat concept below (the
/// ISA's is arch::PageTableFormat, chosen at compile time). It never touches a PTE bit or
/// computes an index itself: it walks levels 0 (the root) .. F::kLevels - 1 (the 4 KiB leaf)
/// and asks F. Physical memory for tables comes from a TableMemory (the frame allocator and the
/// kernel's view of physical memory in the kernel; fake memory in host tests), and TLB
/// invalidation goes through a TlbFlushBatch, flushed when it goes out of scope.
///
///     PageTable<F>            root (level 0)
///       map(va, pa, perms)    +-------+    +-------+    +-------+    +-------+
///                             | L0    |--->| L1    |--->| L2    |--->| L3    |---> 4 KiB page
///                             +-------+    +-------+    +-------+    +-------+
///     intermediate tables are allocated on demand by map() and freed by unmap() when empty.
#pragma once

#include "core/lab.hpp"
#include "lib/result.hpp"
#include "mm/addr.hpp"
#include "mm/perms.hpp"
#include "mm/walk.hpp"

namespace pagoda {

/// What generic code needs to know about an ISA's page tables (see
/// `arch/<isa>/include/arch_impl/page_table_format.hpp`).
template <class F>
concept ValidPageTableFormat = requires(VirtAddr va, PhysAddr pa, u64 e, usize level, Perms perms, FormatSink& sink) {
  requires F::kLevels >= 2 && F::kLevels <= Walk::kMaxLevels;
  requires F::kEntriesPerTable > 0;
  requires F::kPageSize > 0;
  { F::level_name(level) } -> SameAs<const char*>;
  { F::entry_span(level) } -> SameAs<u64>;
  { F::index(va, level) } -> SameAs<usize>;
  { F::is_canonical(va) } -> SameAs<bool>;
  { F::is_present(e, level) } -> SameAs<bool>;
  { F::is_leaf(e, level) } -> SameAs<bool>;
  { F::has_reserved_bits(e, level) } -> SameAs<bool>;
  { F::output_address(e, level) } -> SameAs<PhysAddr>;
  { F::make_table_entry(pa, level) } -> SameAs<u64>;
  { F::make_page_entry(pa, perms) } -> SameAs<u64>;
  { F::entry_perms(e, level) } -> SameAs<Perms>;
  F::describe_entry(sink, e, level);
};

/// Where page tables live: allocation of zeroed table frames and access to their entries.
class TableMemory {
 public:
  /// A zeroed frame for a new table.
  [[nodiscard]] virtual Result<PhysAddr> allocate_table() = 0;
  /// Returns a table frame that no longer has any present entry.
  virtual void free_table(PhysAddr table) = 0;
  /// The entries of the table at @p table, or nullptr when the kernel cannot reach it.
  virtual u64* table_entries(PhysAddr table) = 0;

 protected:
  ~TableMemory() = default;
};

/// The ISA's TLB maintenance.
class TlbInvalidator {
 public:
  virtual void invalidate_page(VirtAddr va) = 0;
  virtual void invalidate_all() = 0;

 protected:
  ~TlbInvalidator() = default;
};

/// Collects the pages whose translations changed and invalidates them when it goes out of
/// scope: one flush per batch instead of one per call site, and none forgotten. Past
/// kMaxPages pages, one full flush is cheaper than many single ones.
class [[nodiscard]] TlbFlushBatch {
 public:
  static constexpr usize kMaxPages = 32;

  explicit TlbFlushBatch(TlbInvalidator& tlb) : tlb_(tlb) {}
  TlbFlushBatch(const TlbFlushBatch&) = delete;
  TlbFlushBatch& operator=(const TlbFlushBatch&) = delete;
  ~TlbFlushBatch() { flush(); }

  void add(VirtAddr va) {
    if (count_ < kMaxPages) pages_[count_++] = va;
    else overflow_ = true;
  }

  /// Invalidates now what was collected (the destructor calls this).
  void flush() {
    if (overflow_) tlb_.invalidate_all();
    else
      for (usize i = 0; i < count_; ++i) tlb_.invalidate_page(pages_[i]);
    count_ = 0;
    overflow_ = false;
  }

 private:
  TlbInvalidator& tlb_;
  VirtAddr pages_[kMaxPages];
  usize count_ = 0;
  bool overflow_ = false;
};

/// One page-table tree (one root) in format F.
template <ValidPageTableFormat F> class PageTable {
 public:
  static constexpr usize kLeafLevel = F::kLevels - 1;
  static constexpr u64 kPageSize = F::kPageSize;

  PageTable(PhysAddr root, TableMemory& memory, TlbInvalidator& tlb) : root_(root), memory_(&memory), tlb_(&tlb) {}

  /// A new, empty tree.
  [[nodiscard]] static Result<PageTable> create(TableMemory& memory, TlbInvalidator& tlb) {
    const PhysAddr root = TRY(memory.allocate_table());
    return PageTable(root, memory, tlb);
  }

  PhysAddr root() const { return root_; }

  /// Maps the 4 KiB page at @p va to @p pa. Fails with InvalidArgument (misaligned or
  /// non-canonical), AlreadyExists (something is mapped there, possibly by a large page) or
  /// NoMemory (no frame for a table; nothing is left half-built).
  [[nodiscard]] Result<void> map(VirtAddr va, PhysAddr pa, Perms perms) {
    if (!va.is_aligned(kPageSize) || !pa.is_aligned(kPageSize) || !F::is_canonical(va))
      return Error::InvalidArgument;
    u64* leaf = TRY(ensure_leaf_slot(va));
    if (F::is_present(*leaf, kLeafLevel)) return Error::AlreadyExists;
    *leaf = F::make_page_entry(pa, perms);
    return {};
  }

  /// Maps [va, va + size) to [pa, pa + size) page by page; on failure unmaps what it mapped.
  [[nodiscard]] Result<void> map_range(VirtAddr va, PhysAddr pa, u64 size, Perms perms) {
    if (!is_aligned(size, kPageSize)) return Error::InvalidArgument;
    for (u64 off = 0; off < size; off += kPageSize) {
      const Result<void> r = map(va.offset(off), pa.offset(off), perms);
      if (r.is_error()) {
        if (off > 0) (void)unmap_range(va, off);
        return r.error();
      }
    }
    return {};
  }

  /// Unmaps the 4 KiB page at @p va, frees tables left empty, and returns the physical page
  /// that was mapped. NotFound when nothing is mapped there; Unsupported inside a large page.
  [[nodiscard]] Result<PhysAddr> unmap(VirtAddr va) {
    TlbFlushBatch batch(*tlb_);
    return unmap_page(va, batch);
  }

  /// Unmaps every page of [va, va + size); fails (NotFound) at the first page not mapped,
  /// leaving the pages before it unmapped.
  [[nodiscard]] Result<void> unmap_range(VirtAddr va, u64 size) {
    if (!va.is_aligned(kPageSize) || !is_aligned(size, kPageSize)) return Error::InvalidArgument;
    TlbFlushBatch batch(*tlb_);
    for (u64 off = 0; off < size; off += kPageSize) TRY(unmap_page(va.offset(off), batch));
    return {};
  }

  /// Changes the permissions of every page of [va, va + size); all must be mapped with 4 KiB
  /// pages (NotFound otherwise, and nothing is changed).
  [[nodiscard]] Result<void> protect(VirtAddr va, u64 size, Perms perms) {
    if (!va.is_aligned(kPageSize) || !is_aligned(size, kPageSize)) return Error::InvalidArgument;
    for (u64 off = 0; off < size; off += kPageSize) {
      const Walk w = query(va.offset(off));
      if (!w.mapped()) return Error::NotFound;
      if (w.depth != F::kLevels) return Error::Unsupported;
    }
    TlbFlushBatch batch(*tlb_);
    for (u64 off = 0; off < size; off += kPageSize) {
      u64* leaf = leaf_slot(va.offset(off));
      *leaf = F::make_page_entry(F::output_address(*leaf, kLeafLevel), perms);
      batch.add(va.offset(off));
    }
    return {};
  }

  /// Allocates, once, a table for every top-level entry from @p from to the end of the
  /// address space (the kernel half), and pins them: unmap() never frees them. A root made
  /// later for a process copies these entries, so every kernel mapping made afterwards, in
  /// any root, is visible in all of them.
  [[nodiscard]] Result<void> prepare_kernel_half(VirtAddr from) {
    pinned_from_ = F::index(from, 0);
    // LAB 2 BEGIN give every kernel-half top-level entry its table
    u64* top = memory_->table_entries(root_);
    if (top == nullptr) return Error::InvalidArgument;
    for (usize i = pinned_from_; i < F::kEntriesPerTable; ++i) {
      if (F::is_present(top[i], 0)) continue;
      const PhysAddr table = TRY(memory_->allocate_table());
      top[i] = F::make_table_entry(table, 0);
    }
    return {};
    // LAB 2 SKELETON
    // (void)lab_not_done("lab 2: write PageTable::prepare_kernel_half() in kernel/mm/page_table.hpp "
    //                    "(labs/02-higher-half/README.md)");
    // return {};
    // LAB 2 END
  }

  /// The level of the highest table unmap() may free when it empties under @p va: 1 (never
  /// the root), or 2 under a pinned top-level entry (see prepare_kernel_half).
  usize lowest_freeable_level(VirtAddr va) const { return F::index(va, 0) >= pinned_from_ ? 2 : 1; }

  /// The whole walk of @p va: each level's index and entry, where it stopped and why, and
  /// when mapped, the physical address and the effective permissions.
  Walk query(VirtAddr va) const {
    Walk w;
    w.va = va;
    w.root = root_;
    w.describe_entry = &F::describe_entry;
    if (!F::is_canonical(va)) {
      w.stop = WalkStop::NonCanonical;
      return w;
    }
    Perms effective{.read = true, .write = true, .execute = true, .user = true};
    PhysAddr table = root_;
    for (usize level = 0; level < F::kLevels; ++level) {
      const u64* entries = memory_->table_entries(table);
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
      effective.write = effective.write && p.write;
      effective.execute = effective.execute && p.execute;
      effective.user = effective.user && p.user;
      if (F::is_leaf(l.entry, level)) {
        effective.caching = p.caching;
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

 private:
  /// The leaf entry for @p va, creating missing tables on the way (level 0 .. kLeafLevel - 1).
  /// AlreadyExists when a large page covers @p va; NoMemory when a table cannot be allocated.
  Result<u64*> ensure_leaf_slot(VirtAddr va) {
    // LAB 1 BEGIN walk down, allocating missing tables
    // Tables created by this call, so that a failure part-way leaves nothing behind.
    struct Created {
      u64* slot;
      usize level;
    } created_slots[F::kLevels];
    usize created = 0;
    PhysAddr table = root_;
    for (usize level = 0; level < kLeafLevel; ++level) {
      u64* entries = memory_->table_entries(table);
      if (entries == nullptr) return Error::InvalidArgument;
      u64& e = entries[F::index(va, level)];
      if (!F::is_present(e, level)) {
        const Result<PhysAddr> next = memory_->allocate_table();
        if (next.is_error()) {
          while (created > 0) {
            const Created& c = created_slots[--created];
            const PhysAddr orphan = F::output_address(*c.slot, c.level);
            *c.slot = 0;
            memory_->free_table(orphan);
          }
          return next.error();
        }
        e = F::make_table_entry(next.value(), level);
        created_slots[created++] = {&e, level};
      } else if (F::is_leaf(e, level)) {
        return Error::AlreadyExists;
      }
      table = F::output_address(e, level);
    }
    u64* leaves = memory_->table_entries(table);
    if (leaves == nullptr) return Error::InvalidArgument;
    return &leaves[F::index(va, kLeafLevel)];
    // LAB 1 SKELETON
    // (void)va;
    // return lab_not_done("lab 1: write PageTable::ensure_leaf_slot() in kernel/mm/page_table.hpp "
    //                     "(labs/01-identity-map/README.md)");
    // LAB 1 END
  }

  /// The leaf entry for @p va if every table above it exists, else nullptr.
  u64* leaf_slot(VirtAddr va) const {
    PhysAddr table = root_;
    for (usize level = 0; level < kLeafLevel; ++level) {
      u64* entries = memory_->table_entries(table);
      if (entries == nullptr) return nullptr;
      const u64 e = entries[F::index(va, level)];
      if (!F::is_present(e, level) || F::is_leaf(e, level)) return nullptr;
      table = F::output_address(e, level);
    }
    u64* leaves = memory_->table_entries(table);
    return leaves ? &leaves[F::index(va, kLeafLevel)] : nullptr;
  }

  Result<PhysAddr> unmap_page(VirtAddr va, TlbFlushBatch& batch) {
    if (!va.is_aligned(kPageSize) || !F::is_canonical(va)) return Error::InvalidArgument;
    const Walk w = query(va);
    if (!w.mapped()) return Error::NotFound;
    if (w.depth != F::kLevels) return Error::Unsupported;  // inside a large page
    // LAB 1 BEGIN clear the leaf, then free every table the unmap left empty
    const u64 old = w.levels[kLeafLevel].entry;
    memory_->table_entries(w.levels[kLeafLevel].table)[w.levels[kLeafLevel].index] = 0;
    batch.add(va);
    for (usize level = kLeafLevel; level >= lowest_freeable_level(va); --level) {
      const PhysAddr table = w.levels[level].table;
      const u64* entries = memory_->table_entries(table);
      for (usize i = 0; i < F::kEntriesPerTable; ++i)
        if (F::is_present(entries[i], level)) return F::output_address(old, kLeafLevel);
      const WalkLevel& parent = w.levels[level - 1];
      memory_->table_entries(parent.table)[parent.index] = 0;
      memory_->free_table(table);
    }
    return F::output_address(old, kLeafLevel);
    // LAB 1 SKELETON
    // (void)batch;
    // (void)w;
    // return lab_not_done("lab 1: write the end of PageTable::unmap_page() in kernel/mm/page_table.hpp "
    //                     "(labs/01-identity-map/README.md)");
    // LAB 1 END
  }

  PhysAddr root_;
  TableMemory* memory_;
  TlbInvalidator* tlb_;
  usize pinned_from_ = F::kEntriesPerTable;  ///< top-level entries from here on are pinned
};

}  // namespace pagoda
