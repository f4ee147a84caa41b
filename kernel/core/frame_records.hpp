/// @file frame_records.hpp
/// @brief Walking a chain of frame records: what arch::backtrace() is made of on both ISAs.
///
/// With frame pointers kept, every function's frame holds a record of two words, and the
/// frame-pointer register (RBP on x86_64, x29 on AArch64) points at the innermost one:
///
///     frame pointer --> +--------------------------+
///                       | the caller's record      | ---> the next record out
///                       | return address           |
///                       +--------------------------+
///
/// The chain ends at a null record (each boot stub zeroes the frame pointer), a zero return
/// address, or a record that is misaligned or outside every kernel stack: a corrupt chain stops
/// there instead of faulting in the middle of a panic.
#pragma once

#include "lib/types.hpp"

namespace pagoda {

/// Stores up to @p max return addresses of the chain starting at @p innermost, skipping the
/// first @p skip; @p on_stack(address) says whether an address lies on a kernel stack, and
/// records must be aligned to @p alignment. Returns how many were stored.
template <class OnStack>
usize walk_frame_records(const void* innermost, usize alignment, OnStack on_stack, uptr* out, usize max, usize skip) {
  struct Record {
    const Record* next;
    uptr return_address;
  };
  const Record* record = static_cast<const Record*>(innermost);
  usize n = 0;
  while (record != nullptr && n < max) {
    const uptr at = reinterpret_cast<uptr>(record);
    if (!is_aligned(at, alignment) || !on_stack(at)) break;
    if (record->return_address == 0) break;
    if (skip > 0) --skip;
    else out[n++] = record->return_address;
    record = record->next;
  }
  return n;
}

}  // namespace pagoda
