/// @file perms.hpp
/// @brief Mapping permissions and access kinds, in positive sense and arch-independent.
///
/// Generic code says what a mapping *allows* (read, write, execute, user), how it is cached and
/// whether it is global (the same in every address space, so that its TLB entries survive a
/// switch of roots); only arch/ turns that into PTE bits (x86: P, RW, US, NX, PCD/PWT, G;
/// AArch64: AP, UXN, PXN, AttrIndx, nG clear). An Access describes what a faulting instruction
/// tried to do.
#pragma once

#include "lib/format.hpp"
#include "lib/types.hpp"

namespace pagoda {

/// How the memory behind a mapping is cached.
enum class Caching : u8 {
  WriteBack,  ///< normal RAM
  Uncached,   ///< device registers (MMIO)
};

/// What a mapping permits. A page the MMU can use is always readable on the architectures we
/// support, so read = false means no access at all: the leaf is *held* (invalid to the MMU, every
/// access faults, but it keeps its frame for the kernel: unmap, fork and a later protect() back
/// to readable find it; see `arch/<isa>/page_table_format.hpp`). write and execute are then
/// ignored (a held leaf reads back with both false). PROT_NONE's pages are held.
struct Perms {
  bool read = true;
  bool write = false;
  bool execute = false;
  bool user = false;
  Caching caching = Caching::WriteBack;
  /// Shared by every address space (kernel mappings); a leaf attribute. protect() keeps it.
  bool global = false;

  friend constexpr bool operator==(const Perms&, const Perms&) = default;

  /// Prints e.g. "r-x kernel", "rw- user uncached" or "rw- kernel global".
  void format(FormatSink& sink) const {
    const char text[4] = {read ? 'r' : '-', write ? 'w' : '-', execute ? 'x' : '-', '\0'};
    format_to(sink, "{} {}{}{}", text, user ? "user" : "kernel", caching == Caching::Uncached ? " uncached" : "",
              global ? " global" : "");
  }
};

/// Common permission sets.
inline constexpr Perms kKernelText{.read = true, .write = false, .execute = true};
inline constexpr Perms kKernelReadOnly{.read = true, .write = false, .execute = false};
inline constexpr Perms kKernelData{.read = true, .write = true, .execute = false};
inline constexpr Perms kKernelDevice{.read = true,
                                     .write = true,
                                     .execute = false,
                                     .user = false,
                                     .caching = Caching::Uncached};

/// What a faulting access tried to do (decoded from the arch's fault information).
struct Access {
  bool write = false;
  bool execute = false;
  bool user = false;
};

}  // namespace pagoda
