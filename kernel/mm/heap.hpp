/// @file heap.hpp
/// @brief The kernel heap: C++ new/delete on frames of the physical window.
///
/// Small objects come from size classes (32 bytes .. 2 KiB, powers of two): a class takes a
/// frame from the frame allocator when its free list is empty, cuts it into equal blocks and
/// keeps freed blocks on its list. Larger objects take whole, physically contiguous frames.
/// Every block starts with a 16-byte header recording how it was allocated, so delete needs
/// no size and a corrupted or foreign pointer is caught.
///
///     block:  [ header (16 bytes): magic, class or frame count ][ object ... ]
///                                                                ^ what new returns
///
/// Counters of live allocations and bytes let tests prove that everything allocated was
/// freed. Plain `new` panics when memory runs out (there are no exceptions); try_new() returns
/// the failure as an error value instead.
#pragma once

#include "lib/placement.hpp"
#include "lib/result.hpp"
#include "lib/types.hpp"

namespace pagoda::heap {

/// Bytes of the header in front of every block.
inline constexpr usize kBlockHeaderSize = 16;

/// What the heap holds right now.
struct Stats {
  usize live_allocations = 0;  ///< allocate() calls not yet freed
  usize live_bytes = 0;        ///< bytes requested by those calls
  usize frames = 0;            ///< frames the heap holds (cached free blocks included)
};

/// Allocates @p size bytes, 16-byte aligned; NoMemory when it cannot, InvalidArgument for 0.
[[nodiscard]] Result<void*> allocate(usize size);

/// Frees what allocate() returned; panics on a pointer it did not return (or a double free).
void free(void* p);

Stats stats();

}  // namespace pagoda::heap

namespace pagoda {

/// Constructs a T on the heap; the allocation failure is an error value, never a panic.
template <class T, class... Args> [[nodiscard]] Result<T*> try_new(Args&&... args) {
  void* memory = TRY(heap::allocate(sizeof(T)));
  return construct_at(static_cast<T*>(memory), forward<Args>(args)...);
}

}  // namespace pagoda
