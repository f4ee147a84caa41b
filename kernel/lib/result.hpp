/// @file result.hpp
/// @brief Error codes, Result<T> and the TRY early return for fallible kernel calls.
///
/// The kernel has no exceptions: every call that can fail returns a Result, which holds either
/// a value or an Error. Results are [[nodiscard]], so a failure cannot be dropped silently.
///
///     Result<Frame> f = TRY(allocate_frame());   // returns the error to our caller
#pragma once

#include "lib/types.hpp"
#include "lib/placement.hpp"

namespace pagoda {

/// Why a fallible call failed.
enum class Error : u8 {
  NoMemory,         ///< an allocation could not be satisfied
  InvalidArgument,  ///< an argument is malformed (misaligned, out of range, ...)
  NotFound,         ///< the thing asked for does not exist
  AlreadyExists,    ///< the thing to create is already there (e.g. an overlapping mapping)
  Overflow,         ///< a fixed-size buffer or table is full
  Unsupported,      ///< the hardware or the boot protocol cannot do it
  NotImplemented,   ///< a lab skeleton: the student has not written this yet
};

/// The name of an error, for reports.
constexpr const char* error_name(Error e) {
  switch (e) {
    case Error::NoMemory: return "no memory";
    case Error::InvalidArgument: return "invalid argument";
    case Error::NotFound: return "not found";
    case Error::AlreadyExists: return "already exists";
    case Error::Overflow: return "overflow";
    case Error::Unsupported: return "unsupported";
    case Error::NotImplemented: return "not implemented yet (a lab skeleton)";
  }
  return "unknown error";
}

/// Either a T or an Error.
template <class T> class [[nodiscard]] Result {
 public:
  Result(T value) : ok_(true) { construct_at(&value_, move(value)); }
  Result(Error error) : error_(error), ok_(false) {}
  Result(const Result& other) : ok_(other.ok_) {
    if (ok_) construct_at(&value_, other.value_);
    else error_ = other.error_;
  }
  Result(Result&& other) : ok_(other.ok_) {
    if (ok_) construct_at(&value_, move(other.value_));
    else error_ = other.error_;
  }
  Result& operator=(const Result&) = delete;
  ~Result() {
    if (ok_) value_.~T();
  }

  bool ok() const { return ok_; }
  bool is_error() const { return !ok_; }
  /// The error; only meaningful when is_error().
  Error error() const { return ok_ ? Error{} : error_; }
  /// The value; only meaningful when ok().
  T& value() { return value_; }
  const T& value() const { return value_; }
  /// Moves the value out; only meaningful when ok().
  T release_value() { return move(value_); }

 private:
  union {
    T value_;
    Error error_;
  };
  bool ok_;
};

/// The result of a call that returns nothing but can fail.
template <> class [[nodiscard]] Result<void> {
 public:
  constexpr Result() : ok_(true) {}
  constexpr Result(Error error) : error_(error), ok_(false) {}

  constexpr bool ok() const { return ok_; }
  constexpr bool is_error() const { return !ok_; }
  constexpr Error error() const { return error_; }
  constexpr void release_value() {}

 private:
  Error error_{};
  bool ok_;
};

}  // namespace pagoda

/// Evaluates a Result expression; returns its error from the enclosing function, or yields the
/// value. (A GNU statement expression, supported by clang and GCC.)
#define TRY(expr)                                        \
  ({                                                     \
    auto _pagoda_try_result = (expr);                    \
    if (_pagoda_try_result.is_error())                   \
      return ::pagoda::Error(_pagoda_try_result.error()); \
    _pagoda_try_result.release_value();                  \
  })
