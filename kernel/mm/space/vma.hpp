/// @file vma.hpp
/// @brief Virtual memory areas: the record of what a process's user half should contain.
///
/// A VmaSet holds, for one address space, an ordered set of non-overlapping regions
/// [start, end) of whole pages, each with positive-sense permissions, a kind (anonymous,
/// program image, stack, heap) and flags. From lab 5 on it is the single source of truth for
/// the user half: the page tables only cache it (a fault consults it, fork copies it).
///
///     user half   0x400000        0x401000   0x402000          0x7ff..000  0x7fff..f000
///                 +---------------+----------+--------+ ... +-------------+
///      regions:   | image r-x     |image r-- |image rw-|     | stack rw-   |
///                 | offset 0      |offset 1K | + bss  |     | grows down  |
///                 +---------------+----------+--------+ ... +-------------+
///      the array: [ text ][ rodata ][ data ][ heap ][ stack ]   sorted by start
///
/// ## Why a sorted array (and not an intrusive balanced tree)
///
/// A process has tens of regions, not thousands. A sorted array gives O(log n) lookup by
/// binary search, in-order iteration for free, and every range query (munmap, mprotect, fork)
/// as one contiguous run of the array; inserting or removing moves the tail, O(n), which for
/// tens of 64-byte entries is a few cache lines. A tree would cost a node allocation per region
/// (so a possible failure at every split), rebalancing code that students must read, and
/// pointer chasing on every lookup. Growth doubles the array; an operation that needs more
/// slots (a split) reserves them before it changes anything, so an allocation failure leaves
/// the set exactly as it was.
///
/// ## Canonical form
///
/// Neighbours that are contiguous and otherwise identical are always merged (by insert and
/// protect; remove cannot create such a pair), so the same memory is always described by the
/// same regions. For a program image, "identical" also means contiguous file offsets, and the
/// file-backed part must stay one prefix: a region whose file bytes end early is merged only
/// with a following region that has no file bytes.
#pragma once

#include "lib/abi.hpp"
#include "lib/allocator.hpp"
#include "lib/format.hpp"
#include "lib/result.hpp"
#include "lib/types.hpp"
#include "mm/base/perms.hpp"

namespace pagoda {

/// What a region's pages hold (the same values as the ABI reports to user space).
using VmaKind = abi::MemoryKind;

/// Flags of a region.
enum VmaFlag : u32 {
  kVmaGrowsDown = 1u << 0,  ///< a stack: a fault just below it may extend it (up to a limit)
};

/// One region [start, end).
struct Vma {
  u64 start = 0;
  u64 end = 0;
  Perms perms{};  ///< what user code may do (positive sense)
  VmaKind kind = VmaKind::Anonymous;
  u32 flags = 0;  ///< VmaFlag bits
  // Image regions only (0 / null for every other kind):
  /// The ELF file's first byte: merged() compares it, populate() reads a page's bytes from
  /// source + offset (+ the page's distance from start).
  const void* source = nullptr;
  u64 offset = 0;     ///< file offset of start (page aligned)
  u64 file_size = 0;  ///< bytes from start that come from the file; the rest are zeros

  u64 size() const { return end - start; }
  bool contains(u64 address) const { return start <= address && address < end; }
  /// Prints e.g. "[0x400000, 0x402000) r-x user image offset 0x0 file 0x1234".
  void format(FormatSink& sink) const;
};

/// The regions of one address space.
class VmaSet {
 public:
  /// An empty set whose array comes from @p allocator; @p page_size is the granule of every
  /// address and size (a power of two).
  VmaSet(Allocator& allocator, u64 page_size) : allocator_(allocator), page_size_(page_size) {}
  ~VmaSet();
  VmaSet(const VmaSet&) = delete;
  VmaSet& operator=(const VmaSet&) = delete;

  // ---- queries ---------------------------------------------------------------------------

  /// The region containing @p address, or nullptr. O(log n).
  const Vma* find(u64 address) const;
  /// The regions that intersect [start, end), in order: one contiguous run. O(log n).
  Span<const Vma> overlapping(u64 start, u64 end) const;
  /// The lowest page-aligned address a in [low, high - length] such that [a, a + length) meets
  /// no region; NotFound when there is none, InvalidArgument for a misaligned or empty request.
  [[nodiscard]] Result<u64> find_free(u64 length, u64 low, u64 high) const;

  /// Every region, in order of address.
  Span<const Vma> regions() const { return {data_, size_}; }
  const Vma* begin() const { return data_; }
  const Vma* end() const { return data_ + size_; }
  usize size() const { return size_; }
  bool empty() const { return size_ == 0; }
  u64 page_size() const { return page_size_; }
  /// Where the array comes from (a scratch set made beside this one uses it too).
  Allocator& allocator() const { return allocator_; }

  // ---- changes: each either succeeds or leaves the set exactly as it was -----------------

  /// Adds @p vma, merging it with identical neighbours. InvalidArgument when it is empty,
  /// misaligned or inconsistent (image fields on another kind, file_size > size, ...);
  /// AlreadyExists when it overlaps a region; NoMemory when the array cannot grow.
  [[nodiscard]] Result<void> insert(const Vma& vma);
  /// Removes every part of [start, end) that a region covers (holes in the range are fine),
  /// splitting the regions it cuts. InvalidArgument for a misaligned or empty range; NoMemory
  /// when a region must be split in two and the array cannot grow.
  [[nodiscard]] Result<void> remove(u64 start, u64 end);
  /// Gives [start, end) the permissions @p perms, splitting the regions it cuts and merging
  /// neighbours that became identical. InvalidArgument for a misaligned or empty range;
  /// NotFound when part of the range is not covered (nothing changes then); NoMemory.
  [[nodiscard]] Result<void> protect(u64 start, u64 end, Perms perms);
  /// Makes this set a copy of @p other (fork). NoMemory leaves it unchanged.
  [[nodiscard]] Result<void> copy_from(const VmaSet& other);
  /// Removes every region (the array stays allocated until destruction or shrink_to_fit).
  void clear() { size_ = 0; }
  /// Gives back the slots no region uses (all of them when the set is empty). NoMemory, from
  /// the new smaller array, leaves the set unchanged.
  [[nodiscard]] Result<void> shrink_to_fit();

  // ---- diagnostics -------------------------------------------------------------------------

  /// Checks every invariant: each region non-empty, page aligned and consistent; sorted and
  /// non-overlapping; no two neighbours that should have been merged. Prints the first broken
  /// one to @p report (when given) and returns false.
  bool check(FormatSink* report = nullptr) const;
  /// Slots allocated (for tests of growth and failure).
  usize capacity() const { return capacity_; }

  /// True when @p left and @p right (left.end == right.start) describe one region.
  static bool mergeable(const Vma& left, const Vma& right);

 private:
  friend struct VmaSetTester;  // host tests break the invariants on purpose to see check() fail
  friend struct VmaSetLayout;  // the grader reads the array from guest RAM (proc/process.cpp's facts)

  bool range_ok(u64 start, u64 end) const;
  /// What is wrong with @p v on its own, or nullptr.
  const char* problem_of(const Vma& v) const;
  /// Index of the first region whose end is above @p address (size_ when none).
  usize first_ending_above(u64 address) const;
  /// Ensures room for @p count regions; the only step that can fail.
  [[nodiscard]] Result<void> reserve(usize count);
  /// Inserts @p v at @p index (capacity reserved by the caller).
  void insert_at(usize index, const Vma& v);
  void erase_at(usize index);
  /// Splits the region at @p index at @p address (strictly inside it; capacity reserved).
  void split_at(usize index, u64 address);
  /// Merges mergeable neighbours among the regions [first, last] (indices clamped).
  void merge_range(usize first, usize last);

  Allocator& allocator_;
  u64 page_size_;
  Vma* data_ = nullptr;
  usize size_ = 0;
  usize capacity_ = 0;
};

}  // namespace pagoda
