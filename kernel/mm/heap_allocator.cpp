#include "mm/heap_allocator.hpp"

#include "mm/heap.hpp"
#include "mm/base/page.hpp"

namespace pagoda::heap {
namespace {

class HeapAllocator final : public Allocator {
 public:
  Result<void*> allocate(usize bytes) override { return heap::allocate(bytes); }
  void free(void* memory, usize) override { heap::free(memory); }
};

constinit HeapAllocator g_heap_allocator;

/// Rounds every request up to whole frames (the heap's large path): a free gives the frames
/// straight back to the frame allocator, so nothing stays cached in a size class.
class FrameGranularAllocator final : public Allocator {
 public:
  Result<void*> allocate(usize bytes) override { return heap::allocate(rounded(bytes)); }
  void free(void* memory, usize) override { heap::free(memory); }

 private:
  static usize rounded(usize bytes) {
    // The heap's header shares the first frame; a request past one frame keeps its size.
    constexpr usize kOneFrame = kPageSize - kBlockHeaderSize;
    return bytes <= kOneFrame ? kOneFrame : bytes;
  }
};

constinit FrameGranularAllocator g_frame_granular_allocator;

}  // namespace

Allocator& allocator() { return g_heap_allocator; }

Allocator& frame_granular_allocator() { return g_frame_granular_allocator; }

}  // namespace pagoda::heap
