// GoogleTest printers for the kernel's types, so that a failing assertion reads
//   Which is: ErrorCode::NotFound: not found (made at kernel/mm/pt/cursor.hpp:212)
// instead of a raw byte dump such as `<02>`. Included by host_support.hpp.
//
// Enumerator names are not written here a second time: the compiler spells them (clang and
// GCC print a non-type template argument of enum type by its enumerator's name in
// __PRETTY_FUNCTION__), so a new enumerator prints by name without touching this file. The
// kernel's own descriptions (error_name, memory_type_name, free_check_message) follow in
// parentheses, and an Error prints as the kernel reports it (where it was made included).
// CMake force-includes this header into every host test file (see CMakeLists.txt: one file
// without it would give the whole program gtest's byte dump for a type).
#pragma once

#include <array>
#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <gtest/gtest.h>

#include "boot/memmap.hpp"
#include "lib/abi.hpp"
#include "lib/result.hpp"
#include "mm/base/addr.hpp"
#include "mm/phys/frame_allocator.hpp"
#include "mm/base/perms.hpp"
#include "mm/pt/walk.hpp"

namespace pagoda::host {

/// The compiler's spelling of @p V: "pagoda::WalkStop::Mapped" for an enumerator, or a cast
/// such as "(pagoda::WalkStop)7" for a value that names none.
template <auto V> constexpr std::string_view spelling() {
  constexpr std::string_view f = __PRETTY_FUNCTION__;  // "... [V = pagoda::WalkStop::Mapped]"
  constexpr std::size_t start = f.find("V = ") + 4;
  return f.substr(start, f.rfind(']') - start);
}

/// Values looked up by name: enough for every enum of the kernel (all are u8).
inline constexpr std::size_t kNamedValues = 256;

template <class E, std::size_t... I>
constexpr std::array<std::string_view, sizeof...(I)> spellings(std::index_sequence<I...>) {
  return {spelling<static_cast<E>(I)>()...};
}

/// The compiler's spelling of each value 0..kNamedValues-1 of @p E.
template <class E> inline constexpr auto kSpellings = spellings<E>(std::make_index_sequence<kNamedValues>{});

/// "WalkStop::NotPresent" for an enumerator, "WalkStop(7)" for any other value.
template <class E> std::string enum_name(E e) {
  static_assert(std::is_enum_v<E>);
  const auto raw = static_cast<std::underlying_type_t<E>>(e);
  std::string_view name;
  if (static_cast<std::size_t>(raw) < kNamedValues) name = kSpellings<E>[static_cast<std::size_t>(raw)];
  if (name.empty() || name.front() == '(') {
    // No enumerator has this value: print the enum's name and the number.
    std::string_view qualified = spelling<E{}>();
    if (qualified.front() == '(') qualified = qualified.substr(1, qualified.find(')') - 1);
    else qualified = qualified.substr(0, qualified.rfind("::"));
    if (qualified.starts_with("pagoda::")) qualified.remove_prefix(8);
    return std::string(qualified) + "(" + std::to_string(+raw) + ")";
  }
  if (name.starts_with("pagoda::")) name.remove_prefix(8);
  return std::string(name);
}

/// Collects what a kernel type's format(FormatSink&) prints.
class StringSink final : public FormatSink {
 public:
  void put(StringView text) override { text_.append(text.data(), text.size()); }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

/// What @p value prints in the kernel (through its format(FormatSink&)).
template <class T> std::string formatted(const T& value) {
  StringSink sink;
  value.format(sink);
  return sink.text();
}

}  // namespace pagoda::host

namespace pagoda {

inline void PrintTo(ErrorCode c, std::ostream* os) { *os << host::enum_name(c) << " (" << error_name(c) << ")"; }
/// "ErrorCode::NoMemory: no memory (made at kernel/mm/pt/cursor.hpp:212)".
inline void PrintTo(const Error& e, std::ostream* os) { *os << host::enum_name(e.code) << ": " << host::formatted(e); }

inline void PrintTo(WalkStop s, std::ostream* os) { *os << host::enum_name(s); }
inline void PrintTo(Caching c, std::ostream* os) { *os << host::enum_name(c); }
inline void PrintTo(MemoryType t, std::ostream* os) { *os << host::enum_name(t) << " (" << memory_type_name(t) << ")"; }
inline void PrintTo(FreeCheck c, std::ostream* os) {
  *os << host::enum_name(c) << " (" << free_check_message(c) << ")";
}

template <class Tag> void PrintTo(Address<Tag> a, std::ostream* os) {
  *os << (std::is_same_v<Tag, PhysTag> ? "PhysAddr(0x" : "VirtAddr(0x") << std::hex << a.value() << std::dec << ")";
}

/// "r-x kernel", as the kernel prints it.
inline void PrintTo(const Perms& p, std::ostream* os) { *os << host::formatted(p); }

/// The walk as a fault report prints it, one line per level.
inline void PrintTo(const Walk& w, std::ostream* os) { *os << "\n" << host::formatted(w); }

/// "ok(<value>)" or "error(ErrorCode::NoMemory: no memory (made at ...))".
template <class T> void PrintTo(const Result<T>& r, std::ostream* os) {
  if (r.is_error()) {
    *os << "error(";
    PrintTo(r.error(), os);
    *os << ")";
    return;
  }
  *os << "ok";
  if constexpr (!std::is_void_v<T>) *os << "(" << ::testing::PrintToString(r.value()) << ")";
}

}  // namespace pagoda

namespace pagoda::abi {

inline void PrintTo(Errno e, std::ostream* os) { *os << host::enum_name(e); }
inline void PrintTo(Syscall s, std::ostream* os) { *os << host::enum_name(s); }
inline void PrintTo(Termination t, std::ostream* os) { *os << host::enum_name(t); }
inline void PrintTo(MemoryKind k, std::ostream* os) { *os << host::enum_name(k); }

}  // namespace pagoda::abi
