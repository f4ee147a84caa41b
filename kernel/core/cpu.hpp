/// @file cpu.hpp
/// @brief The per-CPU area, and the bring-up of the CPUs the firmware parked.
///
/// Labs 0-7 run on one CPU: with one CPU present nothing here runs but cpu(0). With two
/// (QEMU's `-smp 2`), kmain starts the second once the kernel's own root is live (cpus_start()),
/// and the second CPU idles, taking its own timer interrupts and inter-processor interrupts.
#pragma once

#include "lib/types.hpp"

namespace pagoda {

/// The most CPUs the kernel brings up; the firmware's others stay parked.
inline constexpr u32 kMaxCpus = 2;
/// The size of each secondary CPU's kernel stack (the boot CPU has boot_stack, boot.S).
inline constexpr usize kCpuStackSize = 16 * KiB;

/// One CPU's own state. Only its CPU writes it, except `online`, which the boot CPU reads, and
/// the mailbox, which others fill.
struct Cpu {
  u32 id = 0;
  bool online = false;          ///< set once by the CPU itself, when it runs the kernel's idle loop
  uptr stack_bottom = 0;        ///< its kernel stack (0 for the boot CPU: boot.S's boot_stack)
  uptr stack_top = 0;
  u64 ticks = 0;                ///< timer interrupts this CPU took
  u64 ipis = 0;                 ///< inter-processor interrupts this CPU took
};

/// CPU @p id's area (id < kMaxCpus).
Cpu& cpu(u32 id);
/// The area of the CPU running this code.
Cpu& this_cpu();
/// CPUs running the kernel now (the boot CPU counts from the start).
u32 cpus_online();

/// Starts the CPUs the firmware parked, up to @p limit CPUs in all (the boot CPU counts), and
/// waits, relaxing, until each says it is online, or gives up on it after a bound of waits;
/// prints one line per CPU. Called by the boot CPU once the kernel's own root is live and its
/// timer runs; with one CPU present (or @p limit 1), does nothing.
void cpus_start(u32 limit);

/// The timer's interrupt on this CPU (every CPU's timer driver calls it). True on the boot CPU
/// only: the caller then goes on with the kernel's tick (proc::timer_tick); the others idle.
bool cpu_timer_tick();
/// An inter-processor interrupt arrived on this CPU (arch::send_ipi), before its end.
void cpu_ipi_received();

/// Where arch::start_cpu() leaves a secondary CPU, on its own stack with interrupts off, once its
/// tables, protections and timer are set: it says it is online and idles for good.
[[noreturn]] void cpu_secondary_main(u32 id);

}  // namespace pagoda
