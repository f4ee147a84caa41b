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
#pragma once

#include "lib/types.hpp"

/// Exports @p value (an integer constant expression) as the absolute symbol `pagoda_fact_<name>`.
/// Use at namespace scope, once per name, in a kernel source file.
#define PAGODA_FACT(name, value)                                                                \
  [[gnu::used, gnu::section(".pagoda_facts")]] static void pagoda_fact_emit_##name() {         \
    asm volatile(".globl pagoda_fact_" #name "\n.set pagoda_fact_" #name ", %c0" ::"i"(           \
        static_cast<::pagoda::u64>(value)));                                                    \
  }
