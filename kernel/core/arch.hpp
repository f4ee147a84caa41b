/// @file arch.hpp
/// @brief The seam between the generic kernel and one instruction-set architecture.
///
/// Everything in kernel/ reaches the hardware through these functions; `arch/<isa>/` implements
/// them (x86_64 and AArch64). Nothing ISA-specific crosses this line: no register
/// names, no port numbers, no table layouts. The memory manager's part of the seam is
/// narrower and separate: the page-table format (arch_impl/page_table_format.hpp), address
/// spaces (arch_impl/address_space.hpp), the layout (arch_impl/layout.hpp) and mm/space/mmu.hpp.
#pragma once

#include "lib/string_view.hpp"
#include "lib/types.hpp"

namespace pagoda {

/// How the machine stops. QEMU turns these into distinct process exit codes (see docs/boot.md).
enum class ExitStatus : u8 { Success, Failure };

namespace arch {

/// The ISA's name, as printed in the banner ("x86_64").
StringView name();

/// Writes text to the boot console (a serial port); usable from the first instruction of C++.
void console_write(StringView text);
/// The next byte typed on the boot console, or -1 when none is waiting (polled, never blocks).
/// The grader uses it to hand a self-test a value after boot (grade/pagoda_grade/witness.py).
int console_read_byte();

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

/// Lets the other CPU run a little while this one waits (x86_64 `pause`, AArch64 `yield`;
/// under QEMU's round-robin TCG either hands the host thread to the next vCPU). Every spinning
/// wait calls it once a turn.
void cpu_relax();
/// Disables interrupts on this CPU; returns whether they were enabled, for interrupts_restore().
bool interrupts_save();
/// Enables interrupts on this CPU again when @p enabled (what interrupts_save() returned).
void interrupts_restore(bool enabled);

/// This CPU's index: 0 for the CPU that booted, then in the firmware's order (the MADT's, the
/// device tree's). 0 until the boot path has set the CPU up.
u32 cpu_id();
/// The CPUs the firmware says the machine has, at most kMaxCpus (core/cpu.hpp); 1 before the
/// boot path has read the firmware's tables.
u32 cpus_present();
/// Starts CPU @p id (1 <= id < cpus_present()), parked by the firmware, on the stack whose top
/// is @p stack_top: it takes this CPU's kernel roots, protections and exception vectors, its own
/// descriptor tables or exception stacks and its own timer, then calls cpu_secondary_main(id)
/// (core/cpu.hpp). Returns false when the firmware refused; never waits for the CPU to run.
/// Called by the boot CPU, with the kernel's own root live and the timer started.
bool start_cpu(u32 id, uptr stack_top);
/// Drops this CPU's TLB entry for the kernel or user address @p va (x86_64 INVLPG, AArch64
/// TLBI VAAE1, not broadcast): the target's half of a shootdown.
void invalidate_page_local(uptr va);
/// Drops every translation this CPU's TLB holds, global ones too (x86_64: CR4.PGE toggled;
/// AArch64: TLBI VMALLE1, not broadcast): a shootdown's "all".
void invalidate_all_local();
/// Sends the kernel's one inter-processor interrupt to CPU @p id; its handler calls
/// cpu_ipi_received() (core/cpu.hpp), ends the interrupt, then calls cpu_ipi_done().
void send_ipi(u32 id);

/// Stops the machine with @p status; under QEMU the process exits with a matching code.
[[noreturn]] void shutdown(ExitStatus status);

/// Collects up to @p max return addresses of the current call chain, innermost first,
/// skipping @p skip frames. Returns how many were stored.
usize backtrace(uptr* out, usize max, usize skip);

/// Executes an instruction the CPU does not define (for the exception self-test).
void execute_undefined_instruction();

/// The machine code of one return instruction, for the self-tests that place code where it
/// must not execute (the stack, .data).
Span<const u8> return_instruction();

/// Makes exception delivery impossible, then raises an exception: the CPU resets (a triple
/// fault on x86_64) or loops on its exception vector forever (AArch64). Lets the grader's own
/// tests prove it reports such a death clearly.
[[noreturn]] void force_triple_fault();

/// Moves the stack pointer to @p top (16-byte aligned) and calls fn(arg) on that stack, as the
/// bottom frame of every backtrace. Never returns: whatever the old stack held is abandoned,
/// and fn must not return either. The boot stub's tail (boot.S) implements it.
[[noreturn]] inline void run_on_stack(uptr top, void (*fn)(void* arg), void* arg);

}  // namespace arch
}  // namespace pagoda

extern "C" [[noreturn]] void pagoda_run_on_stack(pagoda::uptr top, void (*fn)(void*), void* arg);

[[noreturn]] inline void pagoda::arch::run_on_stack(uptr top, void (*fn)(void* arg), void* arg) {
  pagoda_run_on_stack(top, fn, arg);
}
