#include "core/panic.hpp"

#include "core/arch.hpp"
#include "core/cpu.hpp"
#include "core/stop.hpp"

namespace pagoda {
namespace {

/// Return addresses printed by a panic; enough for any sane call depth.
constexpr usize kBacktraceDepth = 24;
/// panic_begin() itself and its caller, panic(), are not worth showing.
constexpr usize kPanicFrames = 1;

/// The CPU that panicked first (its index + 1; 0: none).
u32 g_panicking = 0;

}  // namespace

[[PAGODA_STOP(panic_begin)]] void panic_begin() {
  arch::interrupts_disable();
  const u32 me = arch::cpu_id() + 1;
  u32 none = 0;
  if (!__atomic_compare_exchange_n(&g_panicking, &none, me, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    if (none != me) cpu_stop_here();  // another CPU panics: it reports, and stops this one
    console_write("PANIC: panic while panicking\n");
    arch::shutdown(ExitStatus::Failure);
  }
  // The other CPUs stop before the report (a panic stops the machine, not one CPU of it), and the
  // console is this CPU's even if a stopped one held it.
  const u32 running = cpus_stop_others();
  console_take_over();
  if (running != 0) println("panic: {} other CPU(s) did not stop (interrupts off?)", running);
}

void panic_end() {
  uptr frames[kBacktraceDepth];
  const usize n = arch::backtrace(frames, kBacktraceDepth, kPanicFrames);
  // One address per line, in a fixed shape the host tools symbolize (tools/pagoda_core/symbolize.py).
  println("backtrace:");
  for (usize i = 0; i < n; ++i) println("  #{} {:#018x}", i, frames[i]);
  arch::shutdown(ExitStatus::Failure);
}

}  // namespace pagoda
