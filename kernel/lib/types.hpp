/// @file types.hpp
/// @brief Fixed-width integers and the few type utilities a freestanding kernel needs.
///
/// The kernel is built without the hosted C++ library, so the small pieces of `<utility>`,
/// `<type_traits>` and `<span>` that it uses are defined here, in namespace pagoda.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace pagoda {

using u8 = uint8_t;
using u16 = uint16_t;
using u32 = uint32_t;
using u64 = uint64_t;
using i8 = int8_t;
using i16 = int16_t;
using i32 = int32_t;
using i64 = int64_t;
using usize = size_t;
using uptr = uintptr_t;

/// @cond internal
// clang-format off
template <class T> struct RemoveRef { using Type = T; };
template <class T> struct RemoveRef<T&> { using Type = T; };
template <class T> struct RemoveRef<T&&> { using Type = T; };
template <class T> struct RemoveCv { using Type = T; };
template <class T> struct RemoveCv<const T> { using Type = T; };
template <class T> struct RemoveCv<volatile T> { using Type = T; };
template <class T> struct RemoveCv<const volatile T> { using Type = T; };
template <class T> struct TypeIdentityImpl { using Type = T; };
template <class T> struct IsPointerImpl { static constexpr bool value = false; };
template <class T> struct IsPointerImpl<T*> { static constexpr bool value = true; };
template <class T> struct IsIntegerImpl { static constexpr bool value = false; };
template <> struct IsIntegerImpl<signed char> { static constexpr bool value = true; };
template <> struct IsIntegerImpl<unsigned char> { static constexpr bool value = true; };
template <> struct IsIntegerImpl<short> { static constexpr bool value = true; };
template <> struct IsIntegerImpl<unsigned short> { static constexpr bool value = true; };
template <> struct IsIntegerImpl<int> { static constexpr bool value = true; };
template <> struct IsIntegerImpl<unsigned int> { static constexpr bool value = true; };
template <> struct IsIntegerImpl<long> { static constexpr bool value = true; };
template <> struct IsIntegerImpl<unsigned long> { static constexpr bool value = true; };
template <> struct IsIntegerImpl<long long> { static constexpr bool value = true; };
template <> struct IsIntegerImpl<unsigned long long> { static constexpr bool value = true; };
// clang-format on
/// @endcond

/// T without reference and cv-qualifiers.
template <class T> using RemoveCvRef = typename RemoveCv<typename RemoveRef<T>::Type>::Type;
/// T itself, in a non-deduced context.
template <class T> using TypeIdentity = typename TypeIdentityImpl<T>::Type;

/// True when A and B are the same type.
template <class A, class B> inline constexpr bool kIsSame = __is_same(A, B);

/// A and B are the same type.
template <class A, class B>
concept SameAs = kIsSame<A, B> && kIsSame<B, A>;

/// Integer types (not bool, not char; signed char and unsigned char count as small integers).
template <class T>
concept Integer = IsIntegerImpl<typename RemoveCv<T>::Type>::value;
/// Pointer types (cv-qualified pointers included).
template <class T>
concept Pointer = IsPointerImpl<typename RemoveCv<T>::Type>::value;
/// Signed integers of any width.
// clang-format off
template <class T>
concept SignedInteger = Integer<T> && (T(-1) < T(0));
// clang-format on
/// Unsigned integers of any width.
template <class T>
concept UnsignedInteger = Integer<T> && !(T(-1) < T(0));
/// Enumerations.
template <class T>
concept Enum = __is_enum(T);

/// Casts to an rvalue so the value can be moved from.
template <class T> constexpr typename RemoveRef<T>::Type&& move(T&& value) noexcept {
  return static_cast<typename RemoveRef<T>::Type&&>(value);
}

/// Perfect forwarding.
template <class T> constexpr T&& forward(typename RemoveRef<T>::Type& value) noexcept {
  return static_cast<T&&>(value);
}

/// Replaces @p target by @p value and returns the old value.
template <class T, class U = T> constexpr T exchange(T& target, U&& value) {
  T old = move(target);
  target = forward<U>(value);
  return old;
}

/// Number of elements of a C array.
template <class T, usize N> constexpr usize array_size(const T (&)[N]) { return N; }

/// The smaller of two values.
template <class T> constexpr const T& min(const T& a, const T& b) { return b < a ? b : a; }
/// The larger of two values.
template <class T> constexpr const T& max(const T& a, const T& b) { return a < b ? b : a; }

/// Rounds @p value down to a multiple of @p align (a power of two).
constexpr u64 align_down(u64 value, u64 align) { return value & ~(align - 1); }
/// Rounds @p value up to a multiple of @p align (a power of two); saturates instead of wrapping.
constexpr u64 align_up(u64 value, u64 align) {
  const u64 mask = align - 1;
  return value > ~u64{0} - mask ? align_down(~u64{0}, align) : (value + mask) & ~mask;
}
/// True when @p value is a multiple of @p align (a power of two).
constexpr bool is_aligned(u64 value, u64 align) { return (value & (align - 1)) == 0; }

inline constexpr u64 KiB = 1024;
inline constexpr u64 MiB = 1024 * KiB;
inline constexpr u64 GiB = 1024 * MiB;

/// A non-owning view of a contiguous run of T.
template <class T> class Span {
 public:
  constexpr Span() = default;
  constexpr Span(T* data, usize size) : data_(data), size_(size) {}
  template <usize N> constexpr Span(T (&array)[N]) : data_(array), size_(N) {}

  constexpr T* data() const { return data_; }
  constexpr usize size() const { return size_; }
  constexpr bool empty() const { return size_ == 0; }
  constexpr T& operator[](usize i) const { return data_[i]; }
  constexpr T* begin() const { return data_; }
  constexpr T* end() const { return data_ + size_; }

 private:
  T* data_ = nullptr;
  usize size_ = 0;
};

}  // namespace pagoda
