/// @file perms.hpp
/// @brief Mapping permissions and access kinds, in positive sense and arch-independent.
///
/// Generic code says what a mapping *allows* (read, write, execute, user) and how it is cached;
/// only arch/ turns that into PTE bits (x86: P, RW, US, NX, PCD/PWT; AArch64: AP, UXN, PXN,
/// AttrIndx). An Access describes what a faulting instruction tried to do.
#pragma once

#include "lib/format.hpp"
#include "lib/types.hpp"

namespace pagoda {

/// How the memory behind a mapping is cached.
enum class Caching : u8 {
  WriteBack,  ///< normal RAM
  Uncached,   ///< device registers (MMIO)
};

/// What a mapping permits. A mapped page is always readable on the architectures we support.
struct Perms {
  bool read = true;
  bool write = false;
  bool execute = false;
  bool user = false;
  Caching caching = Caching::WriteBack;

  friend constexpr bool operator==(const Perms&, const Perms&) = default;

  /// Prints e.g. "r-x kernel" or "rw- user uncached".
  void format(FormatSink& sink) const {
    const char text[4] = {read ? 'r' : '-', write ? 'w' : '-', execute ? 'x' : '-', '\0'};
    format_to(sink, "{} {}{}", text, user ? "user" : "kernel", caching == Caching::Uncached ? " uncached" : "");
  }
};

/// Common permission sets.
inline constexpr Perms kKernelText{.read = true, .write = false, .execute = true};
inline constexpr Perms kKernelReadOnly{.read = true, .write = false, .execute = false};
inline constexpr Perms kKernelData{.read = true, .write = true, .execute = false};
inline constexpr Perms kKernelDevice{.read = true, .write = true, .execute = false, .user = false,
                                     .caching = Caching::Uncached};

/// What a faulting access tried to do (decoded from the arch's fault information).
struct Access {
  bool write = false;
  bool execute = false;
  bool user = false;
};

}  // namespace pagoda
