#include "mm/phys/frame_allocator.hpp"

#include "core/panic.hpp"

namespace pagoda {

const char* free_check_message(FreeCheck check) {
  switch (check) {
    case FreeCheck::Ok: return "ok";
    case FreeCheck::Misaligned: return "the address is not the start of a frame";
    case FreeCheck::NotManaged:
      return "the frame is not RAM this allocator manages (reserved, a hole, or out of range)";
    case FreeCheck::NeverAllocated: return "the frame was never allocated";
    case FreeCheck::DoubleFree:
      return "double free: the frame is already free (freed twice, or handed out twice by an allocation that never "
             "marked it used)";
  }
  return "?";
}

Result<void> FrameAllocator::init(const MemoryMap& map, Span<u64> bitmaps, Span<const PhysRange> reserved) {
  words_ = words_for(usable_end(map));
  if (bitmaps.size() < 3 * words_) return Error::InvalidArgument;
  map_ = &map;
  managed_bits_ = bitmaps.data();
  used_bits_ = managed_bits_ + words_;
  ever_bits_ = used_bits_ + words_;
  for (usize i = 0; i < words_; ++i) {
    managed_bits_[i] = 0;
    used_bits_[i] = ~u64{0};
    ever_bits_[i] = 0;
  }
  free_ = managed_ = 0;
  cursor_ = 0;
  high_hint_ = words_ == 0 ? 0 : words_ - 1;

  // Whole words at a time (a frame at a time cost most of the boot's guest instructions): every
  // usable region's frames managed and free, then every frame a reserved range touches taken out.
  for (const MemoryRegion& r : map)
    if (r.type == MemoryType::Usable) {
      set_range(managed_bits_, r.base.value() / kFrameSize, r.end().value() / kFrameSize, true);
      set_range(used_bits_, r.base.value() / kFrameSize, r.end().value() / kFrameSize, false);
    }
  for (const PhysRange& x : reserved) {
    const u64 first = x.base.value() / kFrameSize;
    const u64 end = min<u64>((x.end().value() + kFrameSize - 1) / kFrameSize, u64(words_) * kBitsPerWord);
    set_range(managed_bits_, first, end, false);
    set_range(used_bits_, first, end, true);
  }
  for (usize i = 0; i < words_; ++i) managed_ += usize(__builtin_popcountll(managed_bits_[i]));
  free_ = managed_;
  return {};
}

FreeCheck FrameAllocator::check_free(PhysAddr frame) const {
  // LAB 1 BEGIN why a frame cannot be freed
  if (!frame.is_aligned(kFrameSize)) return FreeCheck::Misaligned;
  const u64 f = frame.value() / kFrameSize;
  if (f >= u64(words_) * kBitsPerWord || !test(managed_bits_, f)) return FreeCheck::NotManaged;
  if (!test(used_bits_, f)) return test(ever_bits_, f) ? FreeCheck::DoubleFree : FreeCheck::NeverAllocated;
  return FreeCheck::Ok;
  // LAB 1 SKELETON
  // (void)frame;
  // panic("lab 1: write FrameAllocator::check_free() in kernel/mm/phys/frame_allocator.cpp "
  //       "(labs/01-identity-map/README.md)");
  // LAB 1 END
}

Result<PhysAddr> FrameAllocator::allocate_below(PhysAddr limit) {
  // LAB 1 BEGIN find, mark and return a free frame below limit
  const u64 end = min<u64>(u64(words_) * kBitsPerWord, limit.value() / kFrameSize);  // frames [0, end)
  const usize words = usize((end + kBitsPerWord - 1) / kBitsPerWord);
  const usize start = cursor_ < words ? cursor_ : 0;  // next fit: where the last one was found
  for (usize n = 0; n < words; ++n) {
    const usize w = (start + n) % words;
    u64 available = managed_bits_[w] & ~used_bits_[w];
    if (u64(w + 1) * kBitsPerWord > end) available &= (u64{1} << (end % kBitsPerWord)) - 1;  // the limit's word
    if (available == 0) continue;
    const u64 f = u64(w) * kBitsPerWord + u64(__builtin_ctzll(available));
    set(used_bits_, f, true);
    set(ever_bits_, f, true);
    --free_;
    cursor_ = w;
    return PhysAddr(f * kFrameSize);
  }
  return Error::NoMemory;
  // LAB 1 SKELETON
  // (void)limit;
  // return Error(Error::NotImplemented, "lab 1: write FrameAllocator::allocate_below() in "
  //                                     "kernel/mm/phys/frame_allocator.cpp (labs/01-identity-map/README.md)");
  // LAB 1 END
}

Result<PhysAddr> FrameAllocator::allocate_high() {
  if (words_ == 0) return Error::NoMemory;
  for (usize n = high_hint_ + 1; n-- > 0;) {
    const u64 available = managed_bits_[n] & ~used_bits_[n];
    if (available == 0) continue;
    high_hint_ = n;  // the words above n are full: the next search starts here
    const u64 f = u64(n) * kBitsPerWord + u64(kBitsPerWord - 1 - usize(__builtin_clzll(available)));
    set(used_bits_, f, true);
    set(ever_bits_, f, true);
    --free_;
    return PhysAddr(f * kFrameSize);
  }
  high_hint_ = 0;  // nothing free anywhere: a free() raises it again
  return Error::NoMemory;
}

Result<PhysAddr> FrameAllocator::allocate_contiguous_below(usize count, PhysAddr limit) {
  if (count == 0) return Error::InvalidArgument;
  const u64 frames = min<u64>(u64(words_) * kBitsPerWord, limit.value() / kFrameSize);
  u64 run = 0;  // free frames just below f
  for (u64 f = 0; f < frames;) {
    // A whole word at a time where that decides: none free (RAM that starts high, as AArch64's
    // at 1 GiB, leaves thousands of such words below it), or all free and the run still short.
    if (f % kBitsPerWord == 0 && f + kBitsPerWord <= frames) {
      const usize w = usize(f / kBitsPerWord);
      const u64 available = managed_bits_[w] & ~used_bits_[w];
      if (available == 0 || (available == ~u64{0} && run + kBitsPerWord < count)) {
        run = available == 0 ? 0 : run + kBitsPerWord;
        f += kBitsPerWord;
        continue;
      }
    }
    run = (test(managed_bits_, f) && !test(used_bits_, f)) ? run + 1 : 0;
    ++f;
    if (run < count) continue;
    const u64 first = f - count;
    for (u64 g = first; g < f; ++g) {
      set(used_bits_, g, true);
      set(ever_bits_, g, true);
    }
    free_ -= count;
    return PhysAddr(first * kFrameSize);
  }
  return Error::NoMemory;
}

void FrameAllocator::free(PhysAddr frame) {
  const FreeCheck check = check_free(frame);
  if (check != FreeCheck::Ok)
    panic("frame allocator: cannot free frame {:#x} (freed by the code at {:p}): {}", frame.value(),
          __builtin_return_address(0), free_check_message(check));
  const u64 f = frame.value() / kFrameSize;
  // Debug checks at the producer, each a compare: a frame still shared, and a count of free
  // frames that no longer matches the bitmaps (an allocation that never lowered it).
  if (f < extra_refs_.size() && extra_refs_[f] != 0)
    panic("frame allocator: free of frame {:#x} (by the code at {:p}) while its reference count is {}: {} other "
          "mapping(s) still share it (drop one reference per unmap; free only at the last)",
          frame.value(), __builtin_return_address(0), u32(extra_refs_[f]) + 1, u32(extra_refs_[f]));
  if (free_ >= managed_)
    panic("frame allocator: the free count is {} of {} managed frames before freeing {:#x}, which was in use: the "
          "count of free frames is wrong (an allocation that did not lower the free count, or a free that raised "
          "it twice)",
          free_, managed_, frame.value());
  set(used_bits_, f, false);
  note_freed(f);
  ++free_;
}

void FrameAllocator::release(PhysRange range) {
  const u64 first = range.base.align_up(kFrameSize).value() / kFrameSize;
  const u64 last = range.end().align_down(kFrameSize).value() / kFrameSize;
  for (u64 f = first; f < last && f < u64(words_) * kBitsPerWord; ++f) {
    if (test(managed_bits_, f) || !test(used_bits_, f)) continue;  // already ours
    bool usable = false;
    for (const MemoryRegion& r : *map_)
      if (r.type == MemoryType::Usable && r.base.value() <= f * kFrameSize && (f + 1) * kFrameSize <= r.end().value())
        usable = true;
    if (!usable) continue;
    set(managed_bits_, f, true);
    set(used_bits_, f, false);
    note_freed(f);
    ++managed_;
    ++free_;
  }
}

}  // namespace pagoda
