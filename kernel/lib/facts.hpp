/// @file facts.hpp
/// @brief PAGODA_FACT: a constant the kernel exports as an ELF symbol, for tools to read.
///
/// The grader and the host tools must agree with the kernel on a few numbers (the layout of
/// the address space, the page size). Instead of copying them, they read them from the kernel
/// ELF: PAGODA_FACT(window_base, layout::kWindowBase) defines the absolute symbol
/// `pagoda_fact_window_base` whose value is the constant (llvm-nm shows it with type A;
/// grade/pagoda_grade/symbols.py: `fact(kernel, "window_base")`). Nothing is allocated or run:
/// the function that carries the directive lives in section .pagoda_facts, which the linker
/// script discards (the absolute symbols stay).
///
/// A table of names the tools print as the kernel does (the x86 exception names, the AArch64
/// exception classes) is exported with PAGODA_FACT_NAMES instead: the kernel's own table, of
/// FactName rows, stays where the kernel uses it, and the object `pagoda_names_<name>` (a
/// FactNames: where the rows are and how many) tells the tools where to read it in the ELF
/// (tools/pagoda_core/elffile.py: `elf(kernel).names("x86_exceptions")`).
#pragma once

#include "lib/types.hpp"

/// Exports @p value (an integer constant expression) as the absolute symbol `pagoda_fact_<name>`.
/// Use at namespace scope, once per name, in a kernel source file.
#define PAGODA_FACT(name, value)                                                       \
  [[gnu::used, gnu::section(".pagoda_facts")]] static void pagoda_fact_emit_##name() { \
    asm volatile(".globl pagoda_fact_" #name "\n.set pagoda_fact_" #name               \
                 ", %c0" ::"i"(static_cast<::pagoda::u64>(value)));                    \
  }

namespace pagoda {

/// One row of a table of names the kernel prints and exports (PAGODA_FACT_NAMES): a number (an
/// exception vector, an exception class), its short name (nullptr when it has none) and its name.
/// The layout is read by the tools (three 64-bit words): change it only together with
/// tools/pagoda_core/elffile.py.
struct FactName {
  u64 key;
  const char* mnemonic;
  const char* name;
};

/// What `pagoda_names_<name>` holds: the rows of the table and how many there are.
struct FactNames {
  const FactName* rows;
  u64 count;
};

/// True when row i of @p table has key i (a table indexed by its key, like the x86 vectors).
template <usize N> consteval bool keyed_by_index(const FactName (&table)[N]) {
  for (usize i = 0; i < N; ++i)
    if (table[i].key != i) return false;
  return true;
}

}  // namespace pagoda

/// Exports the FactName array @p table (the kernel's own) as the object `pagoda_names_<name>`.
/// Use at namespace scope (outside an anonymous namespace), once per name, after the table.
#define PAGODA_FACT_NAMES(name, table)                                                                      \
  extern "C" [[gnu::used]] constinit const ::pagoda::FactNames pagoda_names_##name{(table), sizeof(table) / \
                                                                                                sizeof((table)[0])};
