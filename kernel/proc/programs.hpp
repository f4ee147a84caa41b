/// @file programs.hpp
/// @brief The user programs embedded in the kernel image: there is no file system, so every
///        program of user/programs/ is linked into the kernel and found here by name.
///
/// The build (cmake/user.cmake) compiles each program into a static ELF for the kernel's ISA,
/// pulls the file into .rodata (page-aligned, unmodified) and generates the table behind
/// embedded_programs(). The bytes are an ELF file to be checked by elf::parse_executable
/// (proc/elf.hpp) like any other input: the build made them, but the loader trusts nothing.
#pragma once

#include "lib/string_view.hpp"
#include "lib/types.hpp"

namespace pagoda {

/// One embedded program: its name and its ELF file.
struct EmbeddedProgram {
  StringView name;  ///< the file name without .cpp, e.g. "hello"
  const u8* begin;  ///< first byte of the ELF file
  const u8* end;    ///< one past its last byte

  /// The ELF file.
  Span<const u8> image() const { return {begin, usize(end - begin)}; }
};

/// Every embedded program, sorted by name.
Span<const EmbeddedProgram> embedded_programs();

/// The program called @p name, or nullptr when there is none.
const EmbeddedProgram* find_program(StringView name);

}  // namespace pagoda
