/// @file stop.hpp
/// @brief PAGODA_STOP: a function the grader or the GDB tools break at, alone on its own pages.
///
/// QEMU's TCG translates every guest code page that holds a gdbstub breakpoint one instruction
/// per block, whether the breakpoint is ever hit or not, so a breakpoint slows every function that
/// shares its 4 KiB page (a never-hit breakpoint on evict_frame made lab 7's victim scan, on the
/// same page, cost 2.96 QEMU CPU-seconds a boot instead of 0.44). A function marked
///
///     [[PAGODA_STOP(name)]] void name(...);
///
/// is kept out of line, starts a page and lives in section .text.stops.NAME (NAME: @p name); both kernel.ld
/// files collect .text.stops.* ahead of the rest of the text and round the run up to a page, so
/// such a function's pages hold no other code. Mark every function the grader or the GDB tools
/// stop at (the contract's stops, tools/gdb/pagoda_pt/contract.py) and every caller whose return
/// address they stop at (grade/harness_tests/test_stop_pages.py checks both kernels). @p name
/// only has to be unique within its source file: it names the section.
#pragma once

#include "mm/base/page.hpp"

#define PAGODA_STOP(name) gnu::noinline, gnu::section(".text.stops." #name), gnu::aligned(::pagoda::kPageSize)
