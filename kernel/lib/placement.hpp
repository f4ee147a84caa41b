/// @file placement.hpp
/// @brief construct_at(): placement construction without the hosted `<new>`.
///
/// The kernel has no `<new>`, and host tests have one; a placement operator new with a tag of
/// our own serves both without clashing with the standard one.
#pragma once

#include "lib/types.hpp"

namespace pagoda {
/// Selects Pagoda's placement operator new.
struct PlacementTag {};
}  // namespace pagoda

inline void* operator new(pagoda::usize, void* where, pagoda::PlacementTag) noexcept { return where; }
inline void operator delete(void*, void*, pagoda::PlacementTag) noexcept {}

namespace pagoda {

/// Constructs a T in the storage at @p where.
template <class T, class... Args> T* construct_at(T* where, Args&&... args) {
  return new (static_cast<void*>(where), PlacementTag{}) T(forward<Args>(args)...);
}

}  // namespace pagoda
