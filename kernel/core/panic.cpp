#include "core/panic.hpp"

#include "core/arch.hpp"

namespace pagoda {
namespace {

/// Return addresses printed by a panic; enough for any sane call depth.
constexpr usize kBacktraceDepth = 24;
/// panic_begin() itself and its caller, panic(), are not worth showing.
constexpr usize kPanicFrames = 1;

bool g_panicking = false;

}  // namespace

void panic_begin() {
  arch::interrupts_disable();
  if (g_panicking) {
    console_write("PANIC: panic while panicking\n");
    arch::shutdown(ExitStatus::Failure);
  }
  g_panicking = true;
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
