/// @file optional.hpp
/// @brief Optional<T>: a T made in place, or nothing, whose end the type pairs with its start.
///
/// What a record holds for part of its life (a process's address space: from its creation until
/// it is reaped) lives in an Optional instead of raw bytes and a flag kept beside them by hand:
/// emplace() makes the value (ending the one it held first), reset() ends it, and so does the
/// Optional's own end, its move assignment, or its assignment from an empty one. Nothing is
/// ended twice, and nothing made is left without an end.
///
///     Optional<AddressSpace> space;                       // empty
///     space.emplace(TRY(AddressSpace::create_user(k)));   // made in place
///     space.value().activate();                           // the value (a bug when empty:
///                                                         // value() stops; * and -> do not check)
///     space.reset();                                      // ~AddressSpace, now; empty again
///
/// The value lives in bytes of the Optional itself (no heap), so the Optional is standard layout
/// whatever T is, and value_offset() and engaged_offset() say where the grader and the debugger
/// find the value and the flag. Asking an empty Optional for its value() is a bug and stops at
/// once (detail::result_misuse(): a panic in the kernel, an exception in host tests).
#pragma once

#include "lib/placement.hpp"
#include "lib/result.hpp"
#include "lib/types.hpp"

namespace pagoda {

template <class T> class Optional {
 public:
  /// Whether a T can be moved (AddressSpace can; UserRegions, whose VmaSet cannot, cannot: an
  /// Optional of it is made and ended in place, never moved).
  static constexpr bool kMovable = __is_constructible(T, T&&);

  constexpr Optional() = default;
  /// Holds @p value (moved in).
  // clang-format off
  Optional(T&& value)
    requires kMovable
  {
    emplace(move(value));
  }
  // clang-format on
  Optional(const Optional&) = delete;
  Optional& operator=(const Optional&) = delete;
  /// Takes @p other's value (moved; @p other is left empty).
  // clang-format off
  Optional(Optional&& other)
    requires kMovable
  {
    take(other);
  }
  // clang-format on
  /// Ends the value held, then takes @p other's (moved; @p other is left empty).
  // clang-format off
  Optional& operator=(Optional&& other)
    requires kMovable
  {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  // clang-format on
  ~Optional() { reset(); }

  /// Ends the value held, if any, then makes a T from @p args in place; returns it.
  template <class... Args> T& emplace(Args&&... args) {
    reset();
    T* made = construct_at(reinterpret_cast<T*>(storage_), forward<Args>(args)...);
    engaged_ = true;
    return *made;
  }

  /// Ends the value held (its destructor runs now), if any; empty afterwards.
  void reset() {
    if (!engaged_) return;
    engaged_ = false;
    held()->~T();
  }

  bool has_value() const { return engaged_; }
  explicit operator bool() const { return engaged_; }

  /// The value; asking an empty Optional is a bug, and value() stops at it.
  T& value() {
    check();
    return *held();
  }
  const T& value() const {
    check();
    return *held();
  }
  /// The value, unchecked: for paths that run at every switch or fault, where the caller knows
  /// it is there (a process's space from creation to reaping).
  T& operator*() { return *held(); }
  const T& operator*() const { return *held(); }
  T* operator->() { return held(); }
  const T* operator->() const { return held(); }

  /// Where the value's bytes and the flag lie in an Optional (for the facts the grader reads).
  static constexpr usize value_offset() { return __builtin_offsetof(Optional, storage_); }
  static constexpr usize engaged_offset() { return __builtin_offsetof(Optional, engaged_); }

 private:
  T* held() { return __builtin_launder(reinterpret_cast<T*>(storage_)); }
  const T* held() const { return __builtin_launder(reinterpret_cast<const T*>(storage_)); }
  void check() const {
    if (!engaged_) detail::result_misuse("Optional::value() of an empty Optional", nullptr);
  }
  void take(Optional& other) {
    if (!other.engaged_) return;
    emplace(move(*other.held()));
    other.reset();
  }

  // Zeroed, so that a table of records holding Optionals is made at compile time (constant
  // initialization: no constructor runs at boot for it).
  alignas(T) u8 storage_[sizeof(T)] = {};
  bool engaged_ = false;
};

}  // namespace pagoda
