/// @file user/lib/derived.hpp
/// @brief The values the user programs derive from the boot's token and the grader checks, in one
/// table both read: the programs through value() below, the grader by parsing this file
/// (grade/pagoda_grade/derived.py). Change a row here and both sides change with it.
///
/// Row X(name, tag, base, span): value(name, i) = base + proof(token, tag + i) % span, or the
/// proof itself when span is 0 (a seed, a word). A row whose tag is combined otherwise (ticker's
/// lines) is read for its tag alone.
#pragma once

#include "lib/proof.hpp"
#include "lib/types.hpp"
#include "user/lib/start.hpp"
#include "user/lib/syscalls.hpp"

#define PAGODA_DERIVED_VALUES(X)                                                                                   \
  X(hello_n, 0x4845, 1, 1'000'000)        /* hello: collatz(n) */                                                  \
  X(ticker_line, 0x544b, 0, 0)            /* ticker: line i of n proves tag ^ i << 16 ^ n */                       \
  X(fuzz_seed, 0x465a, 0, 0)              /* fuzz: its random calls' seed (| 1) */                                 \
  X(tmfill_seed, 0x5446, 0, 0)            /* tmfill: TempFill's seed */                                            \
  X(tmstress_seed, 0x5453, 0, 0)          /* tmstress: call i's seed */                                            \
  X(edges_letter, 0x4c00, 'a', 26)        /* edges: letter i of its line at the user half's top */                 \
  X(vmas_lazy_page, 0, 0, 16'384)         /* vmas lazy: touch i's page of the 64 MiB mapping */                    \
  X(vmas_random_seed, 0x524e, 0, 0)       /* vmas random: the operations' seed (| 1) */                            \
  X(vmas_noexec_word, 0x4e58, 0, 1'024)   /* vmas noexec: the word it calls in its page */                         \
  X(vmas_none_word, 0x4e4f4e45, 0, 0)     /* vmas none, nonefork: word i of the pattern */                         \
  X(vmas_cut_slot, 0, 0, 512)             /* vmas cut: the word read in each page, i the page cut */               \
  X(vmas_merge_slot, 0x4d47, 0, 512)      /* vmas merge: the word read in each page, i the page */                 \
  X(forktree_before_word, 0x100, 0, 0)    /* forktree basic: the parent's word of region i, before */              \
  X(forktree_child_word, 0x200, 0, 0)     /* forktree basic: child c's word of region r, i = 8c + r */             \
  X(forktree_after_word, 0x300, 0, 0)     /* forktree basic: the parent's word of region i, after */               \
  X(forktree_child_code, 0x400, 1, 100)   /* forktree basic: child i's exit code */                                \
  X(forktree_leaf_code, 0x500, 1, 50)     /* forktree deep: the leaf's exit code */                                \
  X(forktree_exec_count, 0x600, 1, 1'000) /* forktree exec: echo's last argument */                                \
  X(forktree_wide_code, 0x700, 1, 250)    /* forktree wide: child i's exit code */                                 \
  X(forktree_vmas_code, 0x800, 1, 200)    /* forktree vmas: the child's exit code */                               \
  X(forktree_runs_word, 0x900, 0, 0)      /* forktree runs: word i of the run */                                   \
  X(forktree_runs_mark, 0xa00, 0, 0)      /* forktree runs: the parent's write after fork */                       \
  X(forktree_runs_code, 0xb00, 1, 100)    /* forktree runs: the child's exit code */                               \
  X(forktree_grow_tag, 0xc00, 0, 0)       /* forktree growchild: code 1 + (value ^ sum) % 100 */                   \
  X(forktree_orphan_code, 0xd00, 1, 50)   /* forktree orphan: 1..50, never 51, 68, 98 or 99 */                     \
  X(forktree_page_mark, 0x10000, 0, 0)    /* forktree vmas: word 0 of page p, i = p >> 12 */                       \
  X(cowtest_word, 0x800, 0, 0)            /* cowtest: page j's word before the child writes */                     \
  X(cowtest_child_word, 0x900, 0, 0)      /* cowtest: what the child writes in page j */                           \
  X(cowtest_kernel_word, 0xa00, 0, 0)     /* cowtest: what the kernel writes into page j (read()) */               \
  X(overcommit_seed, 0x7c0, 0, 0)         /* overcommit: swap_pattern's seed of its pages */                       \
  X(overcommit_start, 0x7c1, 0, 0)        /* overcommit: round i's first page (% its pages) */                     \
  X(overcommit_mask, 0x7e0, 0, 0)         /* overcommit: round i's pages to write (bit j % 64) */                  \
  X(overcommit_roll, 0x800, 0, 100)       /* overcommit: round r writes page j, i = 4000 r + j, if below WRITES */ \
  X(swapbuf_seed, 0x5b0, 0, 0)            /* swapbuf: swap_pattern's seed of its pages */                          \
  X(swapfork_seed, 0x5f0, 0, 0)           /* swapfork: swap_pattern's seed of its pages */                         \
  X(swapkeep_seed, 0x6b0, 0, 0)           /* swapkeep: swap_pattern's seed of its pages */

namespace pagoda::user::derived {

/// One row of the table.
struct Row {
  u64 tag, base, span;
};

#define PAGODA_DERIVED_ROW(name, tag, base, span) inline constexpr Row name{tag, base, span};
PAGODA_DERIVED_VALUES(PAGODA_DERIVED_ROW)
#undef PAGODA_DERIVED_ROW

/// The value of row @p row for index @p i on this boot (@p tok: the token, when the program keeps
/// a copy of its own).
inline u64 value(const Row& row, u64 i = 0, StringView tok = token()) {
  const u64 p = proof(tok, row.tag + i);
  return row.base + (row.span != 0 ? p % row.span : p);
}

static_assert(vmas_noexec_word.span == arch::kPageSize / 4 && vmas_cut_slot.span == arch::kPageSize / 8 &&
              vmas_merge_slot.span == vmas_cut_slot.span && vmas_lazy_page.span == (64ull << 20) / arch::kPageSize);

}  // namespace pagoda::user::derived
