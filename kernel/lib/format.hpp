/// @file format.hpp
/// @brief Type-safe formatted output, checked at compile time.
///
/// The format string is a template parameterised by the argument types, and its constructor is
/// consteval: every placeholder is parsed while compiling, so a placeholder without an argument,
/// an argument without a placeholder, or a conversion that does not fit the argument's type
/// (say `{:x}` for a string) stops the build. At run time the arguments travel type-erased.
///
/// Placeholder grammar (a subset of std::format):
///
///     {}  {:SPEC}        SPEC := [align][#][0][width][type]
///     align := '<' | '>'            default: numbers right, text left
///     '#'   := prefix 0x / 0b / 0o  (integers only)
///     '0'   := pad with zeros       (integers only)
///     width := decimal digits
///     type  := d | x | X | b | o    integers (and enums, as their value)
///            | s                    strings and bools
///            | c                    characters
///            | p                    pointers (0x and 16 hex digits)
///     {{ and }} print a single brace.
///
/// A type of the kernel's own becomes printable by a member `void format(FormatSink&) const`.
#pragma once

#include "lib/string_view.hpp"
#include "lib/types.hpp"

namespace pagoda {

/// Where formatted characters go.
class FormatSink {
 public:
  virtual void put(StringView text) = 0;

 protected:
  ~FormatSink() = default;
};

/// A sink writing into a fixed buffer; output beyond its capacity is dropped and counted.
class BufferSink final : public FormatSink {
 public:
  BufferSink(char* buffer, usize capacity) : buffer_(buffer), capacity_(capacity) {
    if (capacity_ > 0) buffer_[0] = '\0';
  }
  void put(StringView text) override;
  /// The text written so far (always NUL-terminated when capacity > 0).
  StringView view() const { return {buffer_, size_}; }
  /// Characters that did not fit.
  usize dropped() const { return dropped_; }

 private:
  char* buffer_;
  usize capacity_;
  usize size_ = 0;
  usize dropped_ = 0;
};

namespace fmt {

/// How one argument is carried at run time.
enum class Kind : u8 { Signed, Unsigned, Bool, Char, String, Pointer, Custom };

/// A parsed placeholder specification.
struct Spec {
  char align = '\0';  ///< '<', '>' or 0 for the type's default
  bool alternate = false;
  bool zero_pad = false;
  u16 width = 0;
  char type = '\0';  ///< 0 for the type's default
};

/// One type-erased argument.
struct Arg {
  Kind kind;
  union {
    i64 s;
    u64 u;
    bool b;
    char c;
    const void* p;
    struct {
      const char* data;
      usize size;
    } str;
    struct {
      const void* object;
      void (*print)(const void* object, FormatSink& sink);
    } custom;
  };
};

/// Types with a member `format(FormatSink&) const`.
// clang-format off
template <class T>
concept HasFormat = requires(const T& t, FormatSink& sink) { t.format(sink); };
// clang-format on

/// @cond internal
template <class T> inline constexpr bool kIsCharArray = false;
template <usize N> inline constexpr bool kIsCharArray<char[N]> = true;
template <usize N> inline constexpr bool kIsCharArray<const char[N]> = true;
/// @endcond

/// The kind of argument a C++ type is printed as; a type that cannot be printed fails to compile.
template <class T> consteval Kind kind_of() {
  using U = RemoveCvRef<T>;
  if constexpr (kIsSame<U, bool>) return Kind::Bool;
  else if constexpr (kIsSame<U, char>) return Kind::Char;
  else if constexpr (SignedInteger<U>) return Kind::Signed;
  else if constexpr (UnsignedInteger<U> || Enum<U>) return Kind::Unsigned;
  else if constexpr (kIsSame<U, StringView> || kIsSame<U, const char*> || kIsSame<U, char*> || kIsCharArray<U>)
    return Kind::String;
  else if constexpr (Pointer<U> || kIsSame<U, decltype(nullptr)>) return Kind::Pointer;
  else if constexpr (HasFormat<U>) return Kind::Custom;
  else {
    static_assert(HasFormat<U>, "this type cannot be formatted: give it format(FormatSink&) const");
    return Kind::Custom;
  }
}

// Calling one of these during constant evaluation is what turns a bad format string into a
// compile error; their names are the message the compiler prints.
void error_unbalanced_brace_in_format_string();
void error_more_placeholders_than_arguments();
void error_more_arguments_than_placeholders();
void error_bad_format_spec();
void error_conversion_does_not_fit_argument_type();

/// Parses the SPEC after ':' up to '}'; returns the index of the closing '}'.
consteval usize parse_spec_at_compile_time(const char* s, usize i, usize n, Spec& spec) {
  if (i < n && (s[i] == '<' || s[i] == '>')) spec.align = s[i++];
  if (i < n && s[i] == '#') spec.alternate = true, ++i;
  if (i < n && s[i] == '0') spec.zero_pad = true, ++i;
  while (i < n && s[i] >= '0' && s[i] <= '9') spec.width = u16(spec.width * 10 + (s[i++] - '0'));
  if (i < n && s[i] != '}') spec.type = s[i++];
  if (i >= n || s[i] != '}') error_bad_format_spec();
  return i;
}

/// True when @p spec may be applied to an argument of kind @p kind.
constexpr bool spec_fits(Kind kind, const Spec& spec) {
  const bool integer = kind == Kind::Signed || kind == Kind::Unsigned;
  if ((spec.alternate || spec.zero_pad) && !integer && kind != Kind::Pointer) return false;
  switch (spec.type) {
    case '\0': return true;
    case 'd':
    case 'x':
    case 'X':
    case 'b':
    case 'o': return integer || kind == Kind::Char;
    case 's': return kind == Kind::String || kind == Kind::Bool;
    case 'c': return kind == Kind::Char;
    case 'p': return kind == Kind::Pointer;
    default: return false;
  }
}

/// Walks the format string as the run-time formatter will, checking it against @p kinds.
consteval void check_format(const char* s, usize n, const Kind* kinds, usize count) {
  usize next = 0;
  for (usize i = 0; i < n; ++i) {
    if (s[i] == '{') {
      if (i + 1 < n && s[i + 1] == '{') {
        ++i;
        continue;
      }
      Spec spec;
      ++i;
      if (i < n && s[i] == ':') i = parse_spec_at_compile_time(s, i + 1, n, spec);
      else if (i >= n || s[i] != '}') error_unbalanced_brace_in_format_string();
      if (next >= count) error_more_placeholders_than_arguments();
      if (!spec_fits(kinds[next], spec)) error_conversion_does_not_fit_argument_type();
      ++next;
    } else if (s[i] == '}') {
      if (i + 1 < n && s[i + 1] == '}') {
        ++i;
        continue;
      }
      error_unbalanced_brace_in_format_string();
    }
  }
  if (next != count) error_more_arguments_than_placeholders();
}

/// A format string checked against the argument types Args at compile time.
template <class... Args> class CheckedFormat {
 public:
  template <usize N> consteval CheckedFormat(const char (&text)[N]) : text_(text, N - 1) {
    constexpr Kind kinds[sizeof...(Args) + 1] = {kind_of<Args>()..., Kind::Custom};
    check_format(text, N - 1, kinds, sizeof...(Args));
  }
  constexpr StringView text() const { return text_; }

 private:
  StringView text_;
};

/// Type-erases one argument.
template <class T> Arg make_arg(const T& value) {
  Arg a{};
  a.kind = kind_of<T>();
  using U = RemoveCvRef<T>;
  if constexpr (kIsSame<U, bool>) a.b = value;
  else if constexpr (kIsSame<U, char>) a.c = value;
  else if constexpr (SignedInteger<U>) a.s = value;
  else if constexpr (UnsignedInteger<U>) a.u = value;
  else if constexpr (Enum<U>) a.u = u64(value);
  else if constexpr (kIsSame<U, StringView>) a.str = {value.data(), value.size()};
  else if constexpr (kIsSame<U, const char*> || kIsSame<U, char*>) {
    StringView v(value);
    a.str = {v.data(), v.size()};
  } else if constexpr (kIsCharArray<U>) {  // up to the first NUL, never past the array
    usize n = 0;
    while (n < sizeof(U) && value[n] != '\0') ++n;
    a.str = {value, n};
  } else if constexpr (kIsSame<U, decltype(nullptr)>) a.p = nullptr;
  else if constexpr (Pointer<U>) a.p = reinterpret_cast<const void*>(reinterpret_cast<uptr>(value));
  else {
    a.custom.object = &value;
    a.custom.print = [](const void* object, FormatSink& sink) { static_cast<const U*>(object)->format(sink); };
  }
  return a;
}

/// The run-time formatter, shared by every instantiation.
void vformat(FormatSink& sink, StringView format, const Arg* args, usize count);

/// Prints one integer the way a placeholder with @p spec would.
void format_integer(FormatSink& sink, u64 magnitude, bool negative, const Spec& spec);

}  // namespace fmt

/// The format-string parameter type: deduces nothing, checks everything.
template <class... Args> using FormatString = fmt::CheckedFormat<TypeIdentity<RemoveCvRef<Args>>...>;

/// Formats @p args into @p sink according to @p format.
template <class... Args> void format_to(FormatSink& sink, FormatString<Args...> format, const Args&... args) {
  const fmt::Arg erased[sizeof...(Args) + 1] = {fmt::make_arg(args)..., fmt::Arg{}};
  fmt::vformat(sink, format.text(), erased, sizeof...(Args));
}

/// Formats into @p buffer (NUL-terminated, truncated to fit) and returns the text.
template <class... Args>
StringView format_buffer(char* buffer, usize capacity, FormatString<Args...> format, const Args&... args) {
  BufferSink sink(buffer, capacity);
  format_to(sink, format, args...);
  return sink.view();
}

/// Prints a value as a fixed-width hexadecimal number, e.g. `{}` of Hex{x} gives 0x0000000000001234.
struct Hex {
  u64 value;
  void format(FormatSink& sink) const { fmt::format_integer(sink, value, false, fmt::Spec{'\0', true, true, 18, 'x'}); }
};

}  // namespace pagoda
