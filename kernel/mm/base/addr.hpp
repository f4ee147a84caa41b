/// @file addr.hpp
/// @brief PhysAddr and VirtAddr: distinct address types that do not convert into each other.
///
/// Mixing a physical and a virtual address is the most common paging bug; with these types it
/// does not compile. Conversions between the two exist only where a mapping makes them true
/// (the boot identity map now, the kernel's physical window later) and are named as such.
#pragma once

#include "lib/types.hpp"

namespace pagoda {

/// Shared arithmetic of the two address types; Tag keeps them apart.
template <class Tag> class Address {
 public:
  constexpr Address() = default;
  constexpr explicit Address(u64 value) : value_(value) {}

  constexpr u64 value() const { return value_; }
  constexpr Address offset(u64 bytes) const { return Address(value_ + bytes); }
  constexpr Address align_down(u64 align) const { return Address(pagoda::align_down(value_, align)); }
  constexpr Address align_up(u64 align) const { return Address(pagoda::align_up(value_, align)); }
  constexpr bool is_aligned(u64 align) const { return pagoda::is_aligned(value_, align); }
  /// Bytes from @p base up to this address.
  constexpr u64 operator-(Address base) const { return value_ - base.value_; }

  friend constexpr bool operator==(Address, Address) = default;
  friend constexpr bool operator<(Address a, Address b) { return a.value_ < b.value_; }
  friend constexpr bool operator<=(Address a, Address b) { return a.value_ <= b.value_; }
  friend constexpr bool operator>(Address a, Address b) { return a.value_ > b.value_; }
  friend constexpr bool operator>=(Address a, Address b) { return a.value_ >= b.value_; }

 private:
  u64 value_ = 0;
};

/// @cond internal
struct PhysTag {};
struct VirtTag {};
/// @endcond

/// A physical (bus) address.
using PhysAddr = Address<PhysTag>;
/// A virtual address in some address space.
using VirtAddr = Address<VirtTag>;

/// A physical range [base, base + size).
struct PhysRange {
  PhysAddr base;
  u64 size = 0;
  constexpr PhysAddr end() const { return base.offset(size); }
};

}  // namespace pagoda
