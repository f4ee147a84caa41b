/// @file heap_allocator.hpp
/// @brief The kernel heap as an Allocator (lib/allocator.hpp), for containers such as VmaSet.
#pragma once

#include "lib/allocator.hpp"

namespace pagoda::heap {

/// An Allocator over heap::allocate() and heap::free(); failures are NoMemory values.
Allocator& allocator();

/// An Allocator over the heap whose every block is whole frames (requests are rounded up),
/// given back to the frame allocator when freed: for per-process containers (a process's VMA
/// set), so that a process that ends leaves no frame cached in a size class and the frames in
/// use return exactly to where they were.
Allocator& frame_granular_allocator();

}  // namespace pagoda::heap
