/// @file arch.hpp
/// @brief The seam between the generic kernel and one instruction-set architecture.
///
/// Everything in kernel/ reaches the hardware through these functions; `arch/<isa>/` implements
/// them (x86_64 now, AArch64 later). Nothing ISA-specific crosses this line: no register
/// names, no port numbers, no table layouts.
#pragma once

#include "lib/format.hpp"
#include "lib/string_view.hpp"
#include "lib/types.hpp"
#include "mm/addr.hpp"
#include "mm/frame_allocator.hpp"
#include "mm/page_table.hpp"

namespace pagoda {

/// How the machine stops. QEMU turns these into distinct process exit codes (see docs/boot.md).
enum class ExitStatus : u8 { Success, Failure };

namespace arch {

/// The ISA's name, as printed in the banner ("x86_64").
StringView name();

/// Writes text to the boot console (a serial port); usable from the first instruction of C++.
void console_write(StringView text);

/// Installs the exception and interrupt handlers. Interrupts stay disabled.
void traps_init();

/// Starts the periodic timer at @p hz ticks per second. Interrupts stay disabled.
void timer_init(u32 hz);
/// Timer interrupts seen since timer_init().
u64 timer_ticks();

void interrupts_enable();
void interrupts_disable();
/// Sleeps until the next interrupt (with interrupts enabled).
void wait_for_interrupt();

/// Stops the machine with @p status; under QEMU the process exits with a matching code.
[[noreturn]] void shutdown(ExitStatus status);

/// Collects up to @p max return addresses of the current call chain, innermost first,
/// skipping @p skip frames. Returns how many were stored.
usize backtrace(uptr* out, usize max, usize skip);

// ---- Memory management --------------------------------------------------------------------
// The page-table format itself is a type, arch::PageTableFormat, from
// arch/<isa>/include/arch_impl/page_table_format.hpp (checked by the PageTableFormat concept).

/// The root of the page tables the CPU is using now (CR3 on x86_64).
PhysAddr active_root();
/// Switches the CPU to the tables at @p root (flushing non-global TLB entries).
void activate_root(PhysAddr root);
/// The TLB maintenance of this CPU.
TlbInvalidator& tlb();
/// Physical ranges of device registers the kernel must map (uncached) to keep working.
Span<const PhysRange> device_ranges();
/// The page tables the boot stub built; free once the kernel runs on its own tables.
PhysRange boot_page_tables();
/// Prints a self-check of the CPU's paging controls, e.g. "NX on, WP on"; false if one is off.
bool paging_controls_ok(FormatSink& sink);

/// Executes an instruction the CPU does not define (for the exception self-test).
void execute_undefined_instruction();

/// Makes exception delivery impossible, then raises an exception: the CPU resets (a triple
/// fault on x86_64). Lets the grader's own tests prove it reports such a death clearly.
[[noreturn]] void force_triple_fault();

}  // namespace arch
}  // namespace pagoda
