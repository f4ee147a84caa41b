// The C++ runtime pieces a freestanding kernel provides for itself.
#include "core/runtime.hpp"

#include "core/panic.hpp"
#include "mm/heap.hpp"

extern "C" {
// Bounds of the constructor table, defined by the linker script.
using Constructor = void (*)();
extern Constructor __init_array_start[];
extern Constructor __init_array_end[];

// A pure virtual function was called through a partly built or destroyed object.
void __cxa_pure_virtual() { pagoda::panic("pure virtual function called"); }
}

namespace pagoda {
namespace {

/// A global with a constructor that cannot run at compile time: proof that
/// run_global_constructors() really ran the .init_array.
struct ConstructorWitness {
  ConstructorWitness() {
    volatile bool yes = true;
    ran = yes;
  }
  bool ran = false;
};
ConstructorWitness g_constructor_witness;

}  // namespace

bool global_constructors_ran() { return g_constructor_witness.ran; }

void run_global_constructors() {
  for (Constructor* c = __init_array_start; c != __init_array_end; ++c) (*c)();
}

}  // namespace pagoda

// C++ new and delete use the kernel heap. With no exceptions, running out of memory in a plain
// `new` is fatal; code that can cope uses try_new() (mm/heap.hpp), whose failure is a value.
namespace {
void* allocate_or_panic(pagoda::usize size) {
  pagoda::Result<void*> p = pagoda::heap::allocate(size == 0 ? 1 : size);
  if (p.is_error()) pagoda::panic("operator new({}): {}", size, p.error());
  return p.value();
}
}  // namespace

void* operator new(pagoda::usize size) { return allocate_or_panic(size); }
void* operator new[](pagoda::usize size) { return allocate_or_panic(size); }
void operator delete(void* p) noexcept { pagoda::heap::free(p); }
void operator delete(void* p, pagoda::usize) noexcept { pagoda::heap::free(p); }
void operator delete[](void* p) noexcept { pagoda::heap::free(p); }
void operator delete[](void* p, pagoda::usize) noexcept { pagoda::heap::free(p); }
