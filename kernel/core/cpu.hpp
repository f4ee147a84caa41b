/// @file cpu.hpp
/// @brief The per-CPU area, and the bring-up of the CPUs the firmware parked.
///
/// Labs 0-7 run on one CPU: with one CPU present nothing here runs but cpu(0). With two
/// (QEMU's `-smp 2`), kmain starts the second once the kernel's own root is live (cpus_start()),
/// and the second CPU runs the processes pinned to it (run=NAME@1), under the kernel lock.
#pragma once

#include "arch_impl/this_cpu.hpp"
#include "core/spinlock.hpp"
#include "lib/types.hpp"
#include "core/shootdown.hpp"

/// Whether the kernel lock is in use (kernel_locking(); the ISAs' return paths read it too).
extern "C" bool pagoda_kernel_locking;

namespace pagoda {

/// The most CPUs the kernel brings up; the firmware's others stay parked.
inline constexpr u32 kMaxCpus = 2;
/// The size of each secondary CPU's kernel stack (the boot CPU has boot_stack, boot.S).
inline constexpr usize kCpuStackSize = 16 * KiB;

/// One word of kernel state per CPU. CPU c's is at byte c * arch::kCpuSlotStride from the start
/// (CPU 0's first: a debugger reading the symbol as one word reads the boot CPU's); this CPU's
/// is one register read and one load (arch_impl/this_cpu.hpp).
template <class T> struct PerCpu {
  static_assert(sizeof(T) <= arch::kCpuSlotStride && arch::kCpuSlotStride % alignof(T) == 0);
  static constexpr usize kPer = arch::kCpuSlotStride / sizeof(T);

  T slot[kMaxCpus * kPer] = {};

  /// This CPU's.
  T& here() { return *reinterpret_cast<T*>(reinterpret_cast<uptr>(slot) + arch::this_cpu_slot()); }
  /// CPU @p cpu's (cpu < kMaxCpus).
  T& of(u32 cpu) { return slot[cpu * kPer]; }
};

/// This CPU's T of the PerCpu @p Slots, under the name of the one global it replaces (lab code
/// written for one CPU keeps reading, assigning and taking the address of `g_current`).
template <auto& Slots> struct ThisCpu {
  using T = decltype(+Slots.slot[0]);
  operator T() const { return Slots.here(); }
  const ThisCpu& operator=(T value) const {
    Slots.here() = value;
    return *this;
  }
  T operator->() const { return Slots.here(); }
  T* operator&() const { return &Slots.here(); }
};

/// What another CPU asks of this one (cpu_request()).
enum class MailboxOp : u32 {
  None,
  InvalidatePage,   ///< drop this CPU's TLB entry for `address` (arch::invalidate_page_local)
  Read,             ///< read the u64 at `address` into `value` (the self-test's reader)
  InvalidatePages,  ///< a shootdown: drop `pages` (`count` of them; kShootdownAll: every one)
  LeaveSpace,       ///< let go of the root of the space at `address` if idle in it (cpu_set_leave_space)
  Call,             ///< run the function at `address` (u64 (*)()), its result into `value` (a self-test's)
};

/// What MailboxOp::LeaveSpace calls on the CPU asked (the memory manager's, which knows the
/// roots: AddressSpace::leave_lazy); set before the first such request.
void cpu_set_leave_space(void (*leave)(uptr space));

/// One request at a time per target: the initiator holds `lock` from writing the request until
/// the target acknowledges it (acked == sent), serving its own mailbox while it waits, so that two
/// CPUs asking each other at once both make progress.
struct Mailbox {
  SpinLock lock;
  MailboxOp op = MailboxOp::None;
  uptr address = 0;
  u64 value = 0;
  // LAB 8 BEGIN a shootdown's request (InvalidatePages): bounded, its pages or "all"
  usize count = 0;  ///< how many of `pages` (kShootdownAll: every translation)
  uptr pages[kShootdownPages] = {};
  // LAB 8 SKELETON
  // // (a shootdown's request: its pages, at most kShootdownPages, or "all")
  // LAB 8 END
  u64 sent = 0;    ///< requests written (the initiator's count)
  u64 served = 0;  ///< requests done, not yet acknowledged (the target's)
  u64 acked = 0;   ///< requests acknowledged (the target's)
};

/// One CPU's own state. Only its CPU writes it, except `online`, which the boot CPU reads, and
/// the mailbox, which others fill.
struct Cpu {
  u32 id = 0;
  bool online = false;    ///< set once by the CPU itself, when it runs the kernel's idle loop
  uptr stack_bottom = 0;  ///< its kernel stack (0 for the boot CPU: boot.S's boot_stack)
  uptr stack_top = 0;
  u64 ticks = 0;         ///< timer interrupts this CPU took
  u64 ipis = 0;          ///< inter-processor interrupts this CPU took
  bool stopped = false;  ///< set by the CPU itself when a panic elsewhere stopped it
  Mailbox mailbox;       ///< what another CPU asks of it
};

/// CPU @p id's area (id < kMaxCpus).
Cpu& cpu(u32 id);
/// The area of the CPU running this code.
Cpu& this_cpu();
/// CPUs running the kernel now (the boot CPU counts from the start).
u32 cpus_online();

/// Starts the CPUs the firmware parked, up to @p limit CPUs in all (the boot CPU counts), and
/// waits, relaxing, until each says it is online, or gives up on it after a bound of waits;
/// prints one line per CPU. Each one online runs @p idle (the scheduler's loop for that CPU,
/// proc::run_secondary()) for good. Called by the boot CPU once the kernel's own root is live
/// and its timer runs, before any process exists; with one CPU present (or @p limit 1), does
/// nothing. Once another CPU is online the boot CPU holds the kernel lock (below).
void cpus_start(u32 limit, void (*idle)());

/// The kernel lock: with two CPUs online, kernel work on the kernel's shared state (the process
/// table, frames, page tables, the heap, the temporary mappings) runs on one CPU at a time,
/// since labs 1-7 wrote it for one. A CPU takes it where it enters that work (a system call or
/// an exception from user mode, a timer tick, its idle loop's pick) and keeps it across a
/// context switch: the context switched to lets it go, where it returns to user mode
/// (pagoda_kernel_lock_leave(), from the ISA's return path) or waits in its idle loop. So a
/// process made Ready by a switch is never picked by the other CPU while this one is still on
/// its stack. Interrupt handlers never wait for it (a tick that finds it taken does its work at
/// the next tick), and a CPU waiting for it takes its interrupts meanwhile (its IPIs, its ticks).
/// With one CPU online it is never taken: every call answers Held, and labs 0-7 run as before.
enum class KernelLock : u8 {
  Held,  ///< this CPU holds it already (or one CPU runs: nothing to take)
  Took,  ///< this CPU took it now: it lets it go (kernel_lock_leave()) where the work ends
  Busy,  ///< the other CPU holds it (kernel_lock_try() only): nothing was taken
};
namespace detail {
KernelLock kernel_lock_enter_locking();
KernelLock kernel_lock_try_locking();
void kernel_lock_leave_locking();
}  // namespace detail

/// Whether the kernel lock is in use: from the moment cpus_start() may start another CPU (and
/// for good once one is online). One CPU: every call below is a load and a branch.
inline bool kernel_locking() { return __atomic_load_n(&pagoda_kernel_locking, __ATOMIC_ACQUIRE); }
/// Takes the kernel lock for this CPU, waiting (relaxing, interrupts on) while another holds it.
inline KernelLock kernel_lock_enter() {
  return kernel_locking() ? detail::kernel_lock_enter_locking() : KernelLock::Held;
}
/// Takes the kernel lock for this CPU if no CPU holds it (an interrupt handler's way).
inline KernelLock kernel_lock_try() { return kernel_locking() ? detail::kernel_lock_try_locking() : KernelLock::Held; }
/// Lets the kernel lock go if this CPU holds it (otherwise does nothing).
inline void kernel_lock_leave() {
  if (kernel_locking()) detail::kernel_lock_leave_locking();
}

/// The timer's interrupt on this CPU (every CPU's timer driver calls it, then proc::timer_tick).
/// True on the boot CPU only: the kernel's clock (arch::timer_ticks()) counts the boot CPU's.
bool cpu_timer_tick();
/// An inter-processor interrupt arrived on this CPU (arch::send_ipi): serves its mailbox. The
/// handler then ends the interrupt and calls cpu_ipi_done(), which acknowledges the request.
void cpu_ipi_received();
/// After the end of the IPI cpu_ipi_received() served: acknowledges what it did.
void cpu_ipi_done();

/// Asks CPU @p target (online, not this one) to do @p op at @p address: the request goes in its
/// mailbox, one IPI is sent, and this CPU waits, relaxing and serving its own mailbox, until the
/// target acknowledges; returns the target's `value` (a Read's u64). Interrupts are off while it
/// waits. One shootdown of one page is cpu_request(target, MailboxOp::InvalidatePage, page).
u64 cpu_request(u32 target, MailboxOp op, uptr address);

/// Stops every other online CPU for good (a panic): each takes an IPI whose handler halts it with
/// interrupts off, and so does one found waiting on a request; waits, relaxing, a bounded while
/// for each to say so. Returns how many CPUs did not (one spinning with interrupts off).
u32 cpus_stop_others();
/// Whether this CPU has been told to stop (cpus_stop_others()): it halts at its next IPI.
bool cpus_stopping();
/// Halts this CPU for good, interrupts off, saying so in its Cpu::stopped.
[[noreturn]] void cpu_stop_here();
/// For a panic: this CPU takes the console, whoever holds it (a stopped CPU may; core/console.cpp).
void console_take_over();

/// Where arch::start_cpu() leaves a secondary CPU, on its own stack with interrupts off, once its
/// tables, protections and timer are set: it says it is online and runs cpus_start()'s idle loop.
[[noreturn]] void cpu_secondary_main(u32 id);

}  // namespace pagoda

/// kernel_lock_leave(), for the ISAs' return paths to user mode (vectors.S of each).
extern "C" void pagoda_kernel_lock_leave();
