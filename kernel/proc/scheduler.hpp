/// @file scheduler.hpp
/// @brief Round-robin scheduling of processes, the context switch, sleeping, and the idle loop.
///
/// One CPU. A process gives up the CPU when it makes a system call that waits (yield, sleep,
/// exit), when it faults in user mode, and when the timer interrupts it in user mode once its
/// turn is over: from the second tick counted since the switch to it (the first may have fallen
/// due before it ran at all), a tick that lands in user mode hands the CPU to the next ready
/// process, in process-table order (round robin). Kernel code is never preempted: system calls
/// run with interrupts off.
///
/// When no process is ready the CPU runs the idle loop, on the boot stack, in the kernel's
/// root: it reaps the processes that ended and halts until the next interrupt. So a switch
/// is always one of
///
///     process -> process     (a tick in user mode, yield, sleep, exit)
///     process -> idle        (nothing else ready)
///     idle    -> process     (run_processes(): something became ready)
///
/// and each goes through switch_to(): the next root is loaded (checked first: it must map the
/// stack we are running on and the next one; mm/space/critical_ranges.hpp), the next kernel stack is
/// made the one traps from user mode land on, and switch_context() moves to that stack.
///
/// Two CPUs (QEMU's -smp 2; labs 0-7 run one): each CPU runs the processes pinned to it
/// (Process::cpu: run=NAME@1, and a process's children run where it runs; every other process
/// on the boot CPU), with a pick of its own (schedule() leaves lab 3's for one CPU), its own
/// current process, idle loop and turn, and the CPU 1 idle loop run_secondary(). Kernel work
/// runs under the kernel lock (core/cpu.hpp), held across every switch. A process never moves.
#pragma once

#include "lib/abi.hpp"
#include "lib/result.hpp"
#include "lib/types.hpp"
#include "proc/process.hpp"

namespace pagoda::proc {

/// Runs the processes until every one of them has ended and been reaped (the idle loop).
/// Called in kernel context with interrupts off; returns with interrupts off.
void run_processes();

/// The idle loop of a CPU other than the boot CPU (two CPUs; cpus_start() runs it once the CPU
/// is online): it runs the processes pinned to it (run=NAME@1), and otherwise waits for
/// interrupts. Never returns. It never reaps: the boot CPU's idle loop does.
[[noreturn]] void run_secondary();

/// Gives the CPU to the next ready process (round robin); returns when the current process is
/// scheduled again. From the idle loop: runs the next ready process, if any. Interrupts off.
void schedule();

/// Frees every process that has ended and has no parent to reap it, never the current one, and
/// returns how many. The idle loop runs it before it looks for work, and spawn and fork when they
/// run out: a scheduler may switch from an ending process straight to the next ready one, so
/// the idle loop may not run for a while.
usize reap_zombies();

/// Makes the current process wait at least @p ticks timer ticks, then returns.
void sleep(u64 ticks);

/// Ends process @p pid with @p how, and with @p tree every process descending from it. Each one
/// is marked and, if it sleeps or waits, woken; it dies through exit_current() (the exit path of
/// every death: its status kept for wait(), its children adopted) at its next return to user
/// mode or when it would sleep or wait again, never in the middle of kernel work. NotFound when
/// @p pid is no live process (a zombie has already ended).
[[nodiscard]] Result<void> kill(u32 pid, abi::Termination how, bool tree);

/// Ends the current process now if kill() marked it: called where it may die (a system call's
/// return, a timer tick from user mode).
void die_if_killed();

/// Timer ticks since boot (the arch's counter).
u64 ticks();

/// Context switches made so far (for reports and the benchmark).
u64 switches();

}  // namespace pagoda::proc
