/// @file result.hpp
/// @brief Errors that remember where they were made, Result<T>, and TRY/MUST.
///
/// The kernel has no exceptions: every call that can fail returns a Result, which holds either
/// a value or an Error. Results are [[nodiscard]], so a failure cannot be dropped silently.
///
///     PhysAddr frame = TRY(frames.allocate());     // on error: return it to our caller
///     PhysAddr root = MUST(frames.allocate());     // cannot fail here: panic if it does
///     return Error::NoMemory;                      // an error made here (file and line kept)
///     return Error(Error::NotImplemented, "lab 1: write Cursor::make_path()");  // with a message
///
/// An Error records the source file and line where it was first made (through clang's
/// __builtin_FILE()/__builtin_LINE() as default arguments, evaluated where the error is
/// written), and TRY passes it up unchanged, so a panic far away still says where the failure
/// began: "no memory (made at kernel/mm/pt/cursor.hpp:212)".
///
/// The step that fails can add what it was doing and where, cheaply (static strings and one
/// address, no heap): `return e.during("mapping the user stack's top page", va)`, or
/// `TRY_DURING(space.map(va, frame, perms), "mapping the user stack's top page", va.value())`.
/// The innermost step that says so wins (it knows most); a caller further up may still add a
/// note (why, or who made the thing that is in the way): "mapping the user stack's top page
/// 0x7ffffffff000: already exists: the page is mapped already; <note> (made at ...)".
///
/// Asking a Result for what it does not hold (value() of an error, error() of a success) is a
/// bug and stops at once: result_misuse() panics in the kernel and throws in host tests.
#pragma once

#include "lib/format.hpp"
#include "lib/placement.hpp"
#include "lib/types.hpp"

namespace pagoda {

/// Why a fallible call failed.
enum class ErrorCode : u8 {
  NoMemory,         ///< an allocation could not be satisfied
  InvalidArgument,  ///< an argument is malformed (misaligned, out of range, ...)
  NotFound,         ///< the thing asked for does not exist
  AlreadyExists,    ///< the thing to create is already there (e.g. an overlapping mapping)
  Overflow,         ///< a fixed-size buffer or table is full
  Unsupported,      ///< the hardware or the boot protocol cannot do it
  NotImplemented,   ///< a lab skeleton: the student has not written this yet
  IoError,          ///< a device reported that a transfer failed (or never finished it)
};

/// The name of an error code, for reports.
constexpr const char* error_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::NoMemory: return "no memory";
    case ErrorCode::InvalidArgument: return "invalid argument";
    case ErrorCode::NotFound: return "not found";
    case ErrorCode::AlreadyExists: return "already exists";
    case ErrorCode::Overflow: return "overflow";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::NotImplemented: return "not implemented yet (a lab skeleton)";
    case ErrorCode::IoError: return "I/O error";
  }
  return "unknown error";
}

/// A failure: what went wrong, where it was first made, and optionally a sentence.
struct Error {
  ErrorCode code;
  bool has_address = false;    ///< whether address means anything
  u32 line;                    ///< its line
  const char* file;            ///< source file where the error was made (relative to the tree)
  const char* message;         ///< a static sentence, or nullptr
  const char* step = nullptr;  ///< what the failing step was doing (static), or nullptr
  const char* note = nullptr;  ///< a static sentence a caller added (why, who was first), or nullptr
  u64 address = 0;             ///< the address the step was working on (has_address)

  /// @name The codes, so that `return Error::NoMemory;` reads as it always did.
  /// @{
  static constexpr ErrorCode NoMemory = ErrorCode::NoMemory;
  static constexpr ErrorCode InvalidArgument = ErrorCode::InvalidArgument;
  static constexpr ErrorCode NotFound = ErrorCode::NotFound;
  static constexpr ErrorCode AlreadyExists = ErrorCode::AlreadyExists;
  static constexpr ErrorCode Overflow = ErrorCode::Overflow;
  static constexpr ErrorCode Unsupported = ErrorCode::Unsupported;
  static constexpr ErrorCode NotImplemented = ErrorCode::NotImplemented;
  static constexpr ErrorCode IoError = ErrorCode::IoError;
  /// @}

  /// An error made here: the default arguments take the caller's file and line.
  constexpr Error(ErrorCode c, const char* msg = nullptr, const char* made_in = __builtin_FILE(),
                  u32 made_at = __builtin_LINE())
      : code(c), line(made_at), file(made_in), message(msg) {}

  friend constexpr bool operator==(const Error& e, ErrorCode c) { return e.code == c; }

  /// This error as the step @p what_step made it, working at @p at: kept as it is when an
  /// inner step already said what it was doing (the innermost knows most); the address is
  /// added when none is known yet.
  [[nodiscard]] constexpr Error during(const char* what_step, u64 at) const {
    Error e = *this;
    if (e.step == nullptr) e.step = what_step;
    if (!e.has_address) {
      e.address = at;
      e.has_address = true;
    }
    return e;
  }
  /// As during(), with no address.
  [[nodiscard]] constexpr Error during(const char* what_step) const {
    Error e = *this;
    if (e.step == nullptr) e.step = what_step;
    return e;
  }
  /// This error made at @p at (an address the maker knows and its callers may not).
  [[nodiscard]] constexpr Error at(u64 where) const {
    Error e = *this;
    e.address = where;
    e.has_address = true;
    return e;
  }
  /// This error with the static sentence @p why after its message (a caller's finding: who made
  /// the thing in the way, which rule was broken); a later note replaces an earlier one.
  [[nodiscard]] constexpr Error noted(const char* why) const {
    Error e = *this;
    e.note = why;
    return e;
  }

  /// Prints e.g. "no memory (made at kernel/mm/pt/cursor.hpp:212)", with ": <message>" after the
  /// name when there is one; the step and the address first when known ("mapping the user
  /// stack's top page 0x7ffffffff000: already exists: ..."), the note after the message.
  void format(FormatSink& sink) const {
    if (step != nullptr) format_to(sink, "{}", step);
    if (has_address) format_to(sink, "{}{:#x}", step != nullptr ? " " : "at ", address);
    if (step != nullptr || has_address) format_to(sink, ": ");
    format_cause(sink);
  }
  /// What format() prints after the step and the address: "already exists: <message>; <note>
  /// (made at ...)", for a caller that says the step and the address in its own words.
  void format_cause(FormatSink& sink) const {
    format_to(sink, "{}", error_name(code));
    if (message != nullptr) format_to(sink, ": {}", message);
    if (note != nullptr) format_to(sink, "; {}", note);
    format_to(sink, " (made at {}:{})", file, line);
  }
};

/// The name of an error's code (without where it was made).
constexpr const char* error_name(const Error& error) { return error_name(error.code); }

/// @cond internal
namespace detail {
/// A Result was asked for what it does not hold: panics (core/result_panics.cpp), which stops the
/// kernel and throws in host tests. @p error is the error it does hold, or nullptr for a success.
[[noreturn]] void result_misuse(const char* what, const Error* error);
/// MUST(@p expression) at @p file:@p line failed with @p error: panics (throws on the host).
[[noreturn]] void must_failed(const char* expression, const Error& error, const char* file, u32 line);
}  // namespace detail
/// @endcond

/// Either a T or an Error.
template <class T> class [[nodiscard]] Result {
 public:
  Result(T value) : ok_(true) { construct_at(&value_, move(value)); }
  Result(const Error& error) : error_(error), ok_(false) {}
  /// An error made at the caller's line: `return Error::NoMemory;`.
  Result(ErrorCode code, const char* made_in = __builtin_FILE(), u32 made_at = __builtin_LINE())
      : error_(code, nullptr, made_in, made_at), ok_(false) {}
  Result(const Result& other) : ok_(other.ok_) {
    if (ok_) construct_at(&value_, other.value_);
    else construct_at(&error_, other.error_);
  }
  Result(Result&& other) : ok_(other.ok_) {
    if (ok_) construct_at(&value_, move(other.value_));
    else construct_at(&error_, other.error_);
  }
  Result& operator=(Result&& other) {
    if (this == &other) return *this;
    destroy();
    ok_ = other.ok_;
    if (ok_) construct_at(&value_, move(other.value_));
    else construct_at(&error_, other.error_);
    return *this;
  }
  Result& operator=(const Result&) = delete;
  ~Result() { destroy(); }

  bool ok() const { return ok_; }
  bool is_error() const { return !ok_; }
  /// The error; a failure is a bug to ask for when ok().
  const Error& error() const {
    if (ok_) detail::result_misuse("Result::error() of a success", nullptr);
    return error_;
  }
  /// The value; asking for it when is_error() is a bug.
  T& value() {
    check_value();
    return value_;
  }
  const T& value() const {
    check_value();
    return value_;
  }
  /// Moves the value out; asking for it when is_error() is a bug.
  T release_value() {
    check_value();
    return move(value_);
  }

 private:
  void check_value() const {
    if (!ok_) detail::result_misuse("Result::value() of an error", &error_);
  }
  void destroy() {
    if (ok_) value_.~T();
  }

  union {
    T value_;
    Error error_;
  };
  bool ok_;
};

/// The result of a call that returns nothing but can fail.
template <> class [[nodiscard]] Result<void> {
 public:
  constexpr Result() : error_(ErrorCode::NoMemory), ok_(true) {}
  constexpr Result(const Error& error) : error_(error), ok_(false) {}
  /// An error made at the caller's line: `return Error::NoMemory;`.
  constexpr Result(ErrorCode code, const char* made_in = __builtin_FILE(), u32 made_at = __builtin_LINE())
      : error_(code, nullptr, made_in, made_at), ok_(false) {}

  constexpr bool ok() const { return ok_; }
  constexpr bool is_error() const { return !ok_; }
  /// The error; a failure is a bug to ask for when ok().
  const Error& error() const {
    if (ok_) detail::result_misuse("Result::error() of a success", nullptr);
    return error_;
  }
  /// Nothing to return; asking when is_error() is a bug (as for Result<T>).
  void release_value() const {
    if (!ok_) detail::result_misuse("Result::value() of an error", &error_);
  }

 private:
  Error error_;  ///< meaningful only when !ok_
  bool ok_;
};

}  // namespace pagoda

/// @cond internal
#define PAGODA_CONCAT_IMPL(a, b) a##b
#define PAGODA_CONCAT(a, b) PAGODA_CONCAT_IMPL(a, b)
#define PAGODA_TRY_IMPL(expr, result)             \
  ({                                              \
    auto result = (expr);                         \
    if (result.is_error()) return result.error(); \
    result.release_value();                       \
  })
#define PAGODA_TRY_DURING_IMPL(expr, result, ...)                     \
  ({                                                                  \
    auto result = (expr);                                             \
    if (result.is_error()) return result.error().during(__VA_ARGS__); \
    result.release_value();                                           \
  })
#define PAGODA_MUST_IMPL(expr, result)                                                               \
  ({                                                                                                 \
    auto result = (expr);                                                                            \
    if (result.is_error()) ::pagoda::detail::must_failed(#expr, result.error(), __FILE__, __LINE__); \
    result.release_value();                                                                          \
  })
/// @endcond

/// Evaluates a Result expression; returns its error (unchanged: it keeps where it was made)
/// from the enclosing function, or yields the value. A GNU statement expression (clang, GCC);
/// each use has its own variable name, so TRY nests (`TRY(f(TRY(g())))`) under -Wshadow.
#define TRY(expr) PAGODA_TRY_IMPL(expr, PAGODA_CONCAT(pagoda_try_result_, __COUNTER__))

/// TRY(), adding the step it was (and the address) to an error: `TRY_DURING(space.map(...),
/// "mapping the user stack's top page", va)`. The step is a static string.
#define TRY_DURING(expr, ...) PAGODA_TRY_DURING_IMPL(expr, PAGODA_CONCAT(pagoda_try_result_, __COUNTER__), __VA_ARGS__)

/// Evaluates a Result expression that cannot fail by construction and yields its value; if it
/// does fail, panics naming the expression, this line, and where the error was made.
#define MUST(expr) PAGODA_MUST_IMPL(expr, PAGODA_CONCAT(pagoda_must_result_, __COUNTER__))
