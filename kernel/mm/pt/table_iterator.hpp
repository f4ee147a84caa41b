/// @file table_iterator.hpp
/// @brief TableIterator<F>: every table frame of a tree, depth first, children before parents.
///
/// What a teardown needs: by the time a table is visited, every table below it has been, so it
/// may be freed at once. The root is never visited (its owner frees it last).
///
///     for (TableIterator<F> it(tree, 0, 256); !it.done(); it.next())
///       free(it.table());      // the PTs under PML4[0], then their PD, ..., then the PDPT
///
///                 root
///            /            \
///         PDPT#1 (6th)    PDPT#2 (9th)
///        /      \            \
///      PD (3rd)  PD (5th)    PD (8th)
///      /   \       \           \
///   PT(1st) PT(2nd) PT(4th)   PT(7th)
#pragma once

#include "mm/pt/page_table.hpp"

namespace pagoda {

template <ValidPageTableFormat F> class TableIterator {
 public:
  /// The tables under the top-level entries [first, end) of @p tree. The tree must not change
  /// while the iterator runs, except that the table just visited may be freed.
  TableIterator(const PageTable<F>& tree, usize first, usize end) : memory_(&tree.memory()) {
    stack_[0] = Frame{tree.root(), tree.root_entries(), first, end < F::kEntriesPerTable ? end : F::kEntriesPerTable};
    depth_ = stack_[0].entries != nullptr ? 1 : 0;
    next();
  }

  /// True once every table was visited.
  bool done() const { return done_; }
  /// The table visited now.
  PhysAddr table() const { return table_; }
  /// Its level (1 .. F::kLevels - 1; the root, level 0, is never visited).
  usize level() const { return level_; }

  /// Moves to the next table in depth-first order, children first.
  void next() {
    while (depth_ > 0) {
      Frame& f = stack_[depth_ - 1];
      const usize level = depth_ - 1;
      if (f.index == f.end) {  // every child of this table was visited: now the table itself
        --depth_;
        if (depth_ == 0) break;  // the root
        visit(f.table, level);
        return;
      }
      const u64 e = f.entries[f.index++];
      if (!F::is_present(e, level) || F::is_leaf(e, level)) continue;
      const PhysAddr child = F::output_address(e, level);
      const u64* child_entries = memory_->table_entries(child);
      if (level + 1 == PageTable<F>::kLeafLevel || child_entries == nullptr) {
        visit(child, level + 1);  // holds only leaves (or cannot be read): nothing below it
        return;
      }
      stack_[depth_++] = Frame{child, child_entries, 0, F::kEntriesPerTable};
    }
    done_ = true;
  }

 private:
  struct Frame {
    PhysAddr table;
    const u64* entries;
    usize index;  ///< next entry to look at
    usize end;
  };

  void visit(PhysAddr table, usize level) {
    table_ = table;
    level_ = level;
  }

  TableMemory* memory_;
  Frame stack_[F::kLevels];
  usize depth_ = 0;
  PhysAddr table_;
  usize level_ = 0;
  bool done_ = false;
};

}  // namespace pagoda
