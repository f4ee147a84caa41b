#include "core/selftest.hpp"

#include "core/arch.hpp"
#include "core/panic.hpp"
#include "lib/proof.hpp"
#include "mm/page.hpp"

// The table the linker builds from every PAGODA_SELFTEST (see the linker script).
extern "C" const pagoda::SelfTest __start_pagoda_selftests[];
extern "C" const pagoda::SelfTest __stop_pagoda_selftests[];

namespace pagoda {

void run_selftest(StringView name, const SelfTestContext& ctx) {
  for (const SelfTest* t = __start_pagoda_selftests; t != __stop_pagoda_selftests; ++t) {
    if (StringView(t->name) != name) continue;
    println("selftest {}: start", name);
    t->run(ctx);
    println("selftest {}: done", name);
    arch::shutdown(ExitStatus::Success);
  }
  print("known self-tests:");
  for (const SelfTest* t = __start_pagoda_selftests; t != __stop_pagoda_selftests; ++t) print(" {}", t->name);
  println("");
  panic("unknown self-test '{}' (test= on the kernel command line)", name);
}

// ---- Lab 0 self-tests -------------------------------------------------------------------------

/// Boot, then shut down at once: the end-to-end boot path (and what `pagoda bench boot` times).
PAGODA_SELFTEST(shutdown) {}

/// Executes an undefined instruction; the #UD report and the panic end the machine.
PAGODA_SELFTEST(ud) {
  arch::execute_undefined_instruction();
  panic("the undefined instruction did not trap");
}

/// The address the page-fault self-test writes to: unmapped, page aligned, different on every
/// boot (derived from the token), far above any RAM the grader gives the machine.
constexpr u64 kFaultWindowBase = 0x0000'5000'0000'0000ull;
constexpr u64 kFaultWindowPages = 1u << 20;
constexpr u64 kFaultProofTag = 0x5046;  // "PF"

/// Writes to an unmapped address; the #PF report and the panic end the machine.
PAGODA_SELFTEST(pf) {
  const u64 page = proof(ctx.token, kFaultProofTag) % kFaultWindowPages;
  auto* target = reinterpret_cast<volatile u64*>(kFaultWindowBase + page * kPageSize);
  *target = 0x50414744;  // "PAGD"
  panic("the write to {:p} did not fault", target);
}

/// Ticks at least this many timer interrupts.
constexpr u64 kTimerTestTicks = 5;

/// Waits, halted, for timer interrupts and reports the tick counter before and after.
PAGODA_SELFTEST(timer) {
  const u64 before = arch::timer_ticks();
  arch::interrupts_enable();
  while (arch::timer_ticks() < before + kTimerTestTicks) arch::wait_for_interrupt();
  arch::interrupts_disable();
  const u64 after = arch::timer_ticks();
  println("timer: ticks {} -> {} proof={:016x}", before, after, proof(ctx.token, after - before));
}

/// Panics with a message carrying the token.
PAGODA_SELFTEST(panic) { panic("self-test panic, token {}", ctx.token); }

// ---- Self-tests of the grader itself (grade/harness_tests/) -----------------------------------

/// Dies by triple fault: the grader must name the first fault from QEMU's log.
PAGODA_SELFTEST(triple_fault) { arch::force_triple_fault(); }

/// Never finishes, with interrupts off: the grader must time out, kill QEMU and say so.
PAGODA_SELFTEST(hang) {
  arch::interrupts_disable();
  for (;;) arch::wait_for_interrupt();
}

}  // namespace pagoda
