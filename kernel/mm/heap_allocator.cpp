#include "mm/heap_allocator.hpp"

#include "mm/heap.hpp"

namespace pagoda::heap {
namespace {

class HeapAllocator final : public Allocator {
 public:
  Result<void*> allocate(usize bytes) override { return heap::allocate(bytes); }
  void free(void* memory, usize) override { heap::free(memory); }
};

constinit HeapAllocator g_heap_allocator;

}  // namespace

Allocator& allocator() { return g_heap_allocator; }

}  // namespace pagoda::heap
