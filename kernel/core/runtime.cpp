// The C++ runtime pieces a freestanding kernel provides for itself.
#include "core/runtime.hpp"

#include "core/panic.hpp"

extern "C" {
// Bounds of the constructor table, defined by the linker script.
using Constructor = void (*)();
extern Constructor __init_array_start[];
extern Constructor __init_array_end[];

// A pure virtual function was called through a partly built or destroyed object.
void __cxa_pure_virtual() { pagoda::panic("pure virtual function called"); }
}

namespace pagoda {

void run_global_constructors() {
  for (Constructor* c = __init_array_start; c != __init_array_end; ++c) (*c)();
}

}  // namespace pagoda

// The kernel has no general-purpose heap yet: any use of new/delete is a bug, so make it loud.
void* operator new(pagoda::usize) { pagoda::panic("operator new called before the kernel heap exists"); }
void* operator new[](pagoda::usize) { pagoda::panic("operator new[] called before the kernel heap exists"); }
void operator delete(void*) noexcept { pagoda::panic("operator delete called before the kernel heap exists"); }
void operator delete(void*, pagoda::usize) noexcept { pagoda::panic("operator delete called before the kernel heap exists"); }
void operator delete[](void*) noexcept { pagoda::panic("operator delete[] called before the kernel heap exists"); }
void operator delete[](void*, pagoda::usize) noexcept { pagoda::panic("operator delete[] called before the kernel heap exists"); }
