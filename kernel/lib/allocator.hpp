/// @file allocator.hpp
/// @brief Allocator: where a container gets its memory, as an interface.
///
/// Kernel containers take an Allocator& instead of calling the heap directly, so the kernel
/// passes the heap (mm/heap_allocator.hpp) and host tests pass one that counts every
/// allocation and fails the one they choose, to prove that a failure loses nothing.
#pragma once

#include "lib/result.hpp"
#include "lib/types.hpp"

namespace pagoda {

class Allocator {
 public:
  /// @p bytes (> 0) of memory aligned to 16 bytes; NoMemory when there is none.
  [[nodiscard]] virtual Result<void*> allocate(usize bytes) = 0;
  /// Gives back what allocate(@p bytes) returned.
  virtual void free(void* memory, usize bytes) = 0;

 protected:
  ~Allocator() = default;
};

}  // namespace pagoda
