/// @file heap_allocator.hpp
/// @brief The kernel heap as an Allocator (lib/allocator.hpp), for containers such as VmaSet.
#pragma once

#include "lib/allocator.hpp"

namespace pagoda::heap {

/// An Allocator over heap::allocate() and heap::free(); failures are NoMemory values.
Allocator& allocator();

}  // namespace pagoda::heap
