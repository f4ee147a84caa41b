/// @file frame_allocator.hpp
/// @brief The physical frame allocator: page-sized frames of usable RAM, tracked in bitmaps.
///
/// Fed by the boot memory map, it only ever hands out frames of usable RAM that are not
/// reserved (the kernel image, boot data, its own bitmaps, the first MiB). Three bitmaps, one
/// bit per frame below the highest usable address:
///
///     managed   1 = usable RAM this allocator owns (reserved frames are 0)
///     used      1 = currently handed out (or reserved)
///     ever      1 = handed out at least once (tells a double free from a bogus free)
///
/// A free of a frame that is not allocated panics with the reason (double free, never
/// allocated, not managed, misaligned). free_frames() is exposed to self-tests (and so to the
/// grader) to catch leaks.
#pragma once

#include "boot/memmap.hpp"
#include "lib/result.hpp"
#include "lib/types.hpp"
#include "mm/base/addr.hpp"
#include "mm/base/page.hpp"

namespace pagoda {

/// Why a frame cannot be freed (FreeCheck::Ok when it can).
enum class FreeCheck : u8 { Ok, Misaligned, NotManaged, NeverAllocated, DoubleFree };

/// A sentence for a FreeCheck.
const char* free_check_message(FreeCheck check);

class FrameAllocator {
 public:
  static constexpr u64 kFrameSize = kPageSize;
  static constexpr usize kBitsPerWord = 64;

  /// Bitmap words needed per bitmap to cover every frame below @p limit.
  static constexpr usize words_for(PhysAddr limit) {
    const u64 frames = align_up(limit.value(), kFrameSize) / kFrameSize;
    return usize((frames + kBitsPerWord - 1) / kBitsPerWord);
  }

  /// Takes ownership of the usable RAM in @p map (which must outlive the allocator), minus
  /// @p reserved. @p bitmaps must hold
  /// 3 * words_for(highest usable address) words (its contents are overwritten). Fails with
  /// InvalidArgument when @p bitmaps is too small.
  [[nodiscard]] Result<void> init(const MemoryMap& map, Span<u64> bitmaps, Span<const PhysRange> reserved);

  /// One free frame (contents undefined); NoMemory when none is left.
  [[nodiscard]] Result<PhysAddr> allocate() { return allocate_below(limit()); }

  /// One free frame below @p limit (e.g. one the kernel's window reaches); NoMemory when none.
  [[nodiscard]] Result<PhysAddr> allocate_below(PhysAddr limit);

  /// One free frame, the highest free one: for user memory, which the kernel reaches through
  /// temporary mappings wherever it lies (mm/tempmap/temp_map.hpp), so that the window's frames stay
  /// for what must be reachable through it (page tables, the heap, kernel stacks).
  /// The search starts at a hint, the highest word that may hold a free frame (every word above
  /// it is full; a free or release above it raises it), so that a run of calls costs one word
  /// each instead of a scan down from the top of RAM every time (fork of a large process).
  [[nodiscard]] Result<PhysAddr> allocate_high();

  /// @p count physically contiguous free frames below @p limit; NoMemory when there is no
  /// such run.
  [[nodiscard]] Result<PhysAddr> allocate_contiguous_below(usize count, PhysAddr limit);

  /// Returns @p frame; panics with the reason when it was not allocated.
  void free(PhysAddr frame);

  /// Whether @p frame could be freed now, and if not, why.
  FreeCheck check_free(PhysAddr frame) const;

  /// Hands reserved frames of usable RAM in @p range back to the allocator (for example the
  /// boot stub's page tables once they are no longer in use). Frames outside usable RAM are
  /// skipped.
  void release(PhysRange range);

  usize free_frames() const { return free_; }
  /// Where the count of free frames lives (exported with the bitmaps, kernel/mm/vm.cpp): the audit
  /// of a failure compares it with the bitmaps' own count (tools/gdb/pagoda_pt/frames.py).
  const usize* free_count() const { return &free_; }
  /// The `used` bitmap (one bit per frame from physical 0, 1 = handed out or reserved): the
  /// grader reads it from guest RAM to count frames itself (grade/test_lab3.py).
  Span<const u64> used_bitmap() const { return {used_bits_, words_}; }
  /// The `managed` bitmap (1 = usable RAM this allocator owns): the grader reads it to see that
  /// the boot stub's frames were released to the allocator (grade/test_lab2.py).
  Span<const u64> managed_bitmap() const { return {managed_bits_, words_}; }
  usize managed_frames() const { return managed_; }
  /// The highest address covered by the bitmaps.
  PhysAddr limit() const { return PhysAddr(u64(words_) * kBitsPerWord * kFrameSize); }

  /// Where, inside the object, the `used` and `ever` bitmaps' pointers and their length in words
  /// are: the grader finds the kernel's allocator by its symbol and reads the bitmaps it really
  /// uses (facts frame_allocator_used_offset, frame_allocator_ever_offset and
  /// frame_allocator_words_offset, kernel/mm/frames.cpp).
  static constexpr usize used_bits_offset();
  static constexpr usize ever_bits_offset();
  static constexpr usize words_offset();

  /// Lets free() refuse a frame that still has mappings beyond the first in @p extra (FrameRefs'
  /// table, one entry per frame from physical 0): a debug check at the producer of a shared
  /// frame freed too early, which would otherwise surface as another process's data changing.
  void watch_refs(Span<const u16> extra) { extra_refs_ = extra; }

 private:
  bool test(const u64* bits, u64 frame) const { return (bits[frame / kBitsPerWord] >> (frame % kBitsPerWord)) & 1; }
  void set(u64* bits, u64 frame, bool value) {
    const u64 mask = u64{1} << (frame % kBitsPerWord);
    if (value) bits[frame / kBitsPerWord] |= mask;
    else bits[frame / kBitsPerWord] &= ~mask;
  }

  /// Sets frames [@p first, @p end) of @p bits to @p value (a word at a time where it can).
  void set_range(u64* bits, u64 first, u64 end, bool value) {
    for (u64 f = first; f < end;) {
      const u64 bit = f % kBitsPerWord, n = min<u64>(kBitsPerWord - bit, end - f);
      const u64 mask = (n == kBitsPerWord ? ~u64{0} : (u64{1} << n) - 1) << bit;
      if (value) bits[f / kBitsPerWord] |= mask;
      else bits[f / kBitsPerWord] &= ~mask;
      f += n;
    }
  }

  const MemoryMap* map_ = nullptr;
  u64* managed_bits_ = nullptr;
  u64* used_bits_ = nullptr;
  u64* ever_bits_ = nullptr;
  usize words_ = 0;
  Span<const u16> extra_refs_{};
  usize free_ = 0;
  usize managed_ = 0;
  usize cursor_ = 0;  ///< word where the next search starts (next fit)
  /// Every word above it has no free frame (allocate_high() starts here; free() and release()
  /// raise it when they free a frame above it).
  usize high_hint_ = 0;
  void note_freed(u64 frame) {
    if (frame / kBitsPerWord > high_hint_) high_hint_ = usize(frame / kBitsPerWord);
  }
};

constexpr usize FrameAllocator::used_bits_offset() { return offsetof(FrameAllocator, used_bits_); }
constexpr usize FrameAllocator::ever_bits_offset() { return offsetof(FrameAllocator, ever_bits_); }
constexpr usize FrameAllocator::words_offset() { return offsetof(FrameAllocator, words_); }

}  // namespace pagoda
