#include "core/selftest.hpp"

#include "core/arch.hpp"
#include "core/cmdline.hpp"
#include "core/panic.hpp"
#include "core/stop.hpp"
#include "lib/proof.hpp"
#include "mm/base/page.hpp"

// The table the linker builds from every PAGODA_SELFTEST (see the linker script).
extern "C" const pagoda::SelfTest __start_pagoda_selftests[];
extern "C" const pagoda::SelfTest __stop_pagoda_selftests[];

/// Written by the grader (through its gdbstub) while the guest is stopped in pagoda_grader_stop().
extern "C" volatile pagoda::GraderInbox pagoda_grader_inbox = {};

// Both start a page (see selftest.hpp); they are the first code of this file, which holds no
// hot loop, so their page is quiet.
extern "C" [[gnu::used, PAGODA_STOP(pagoda_grader_stop)]] void pagoda_grader_stop() {
  asm volatile("" ::: "memory");  // a real call: the grader's breakpoint needs it
}

extern "C" [[gnu::used, PAGODA_STOP(pagoda_grader_checkpoint)]] void
pagoda_grader_checkpoint(pagoda::u64 a, pagoda::u64 b, pagoda::u64 c) {
  asm volatile("" ::"r"(a), "r"(b), "r"(c) : "memory");
}

namespace pagoda {

u64 SelfTestContext::arg(StringView key, u64 fallback) const {
  const CmdlineValue v = cmdline_get(boot.cmdline(), key);
  if (!v.found) return fallback;
  const Result<u64> n = parse_u64(v.value);
  if (n.is_error()) panic("command line: {}={} is not a number", key, v.value);
  return n.value();
}

usize await_grader_inputs() {
  pagoda_grader_inbox.count = 0;
  pagoda_grader_stop();
  const usize n = pagoda_grader_inbox.count;
  if (n > kGraderInboxSize) panic("the grader delivered {} inputs; the inbox holds {}", n, kGraderInboxSize);
  return n;
}

[[PAGODA_STOP(run_selftest)]] void run_selftest(StringView name, const SelfTestContext& ctx) {
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

/// Writes to addr=ADDRESS, which the grader chose unmapped; the #PF report and the panic end the
/// machine. The grader finds the fault in QEMU's own log, so printing a report is not enough.
PAGODA_SELFTEST(pf) {
  auto* target = reinterpret_cast<volatile u64*>(ctx.arg("addr", 0x0000'5000'0000'0000ull));
  *target = 0x50414744;  // "PAGD"
  panic("the write to {:p} did not fault", target);
}

namespace {
/// Uses @p depth frames of 512 bytes of the stack it runs on (not optimized into a loop).
[[gnu::noinline]] u64 use_stack(u64 depth) {
  volatile u8 frame[512];
  frame[0] = u8(depth);
  if (depth == 0) return frame[0];
  return use_stack(depth - 1) + frame[0];
}
}  // namespace

/// Recurses on the kernel's own stack (boot_stack) until it runs into the guard page below it:
/// the kernel must say "KERNEL STACK OVERFLOW" and name that stack, as it does for a process's.
PAGODA_SELFTEST(boot_stack_overflow) {
  println("selftest boot_stack_overflow: recursing on the stack at {:p}", __builtin_frame_address(0));
  const u64 sum = use_stack(ctx.arg("depth", 1'000'000));
  panic("the recursion ended ({}) without running into a guard page", sum);
}

/// Waits, halted, for ticks=N timer interrupts (N chosen by the grader) and reports the tick
/// counter before and after. The grader counts the hardware interrupts in QEMU's log.
PAGODA_SELFTEST(timer) {
  const u64 ticks = ctx.arg("ticks", 5);
  const u64 before = arch::timer_ticks();
  arch::interrupts_enable();
  while (arch::timer_ticks() < before + ticks) arch::wait_for_interrupt();
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

/// One endless line: the grader must stop it at its line-length cap and say so.
PAGODA_SELFTEST(flood_line) {
  for (;;) console_write("x");
}

/// Endless short lines: the grader must stop them at its output cap and say so.
PAGODA_SELFTEST(flood) {
  for (u64 i = 0;; ++i) println("flood: line {}", i);
}

/// Reads one line typed on the console (the grader sends it after boot: Guest.send_line) and
/// prints it back, so that the grader's tests can prove the delivery works.
PAGODA_SELFTEST(echo_line) {
  char line[80];
  usize n = 0;
  for (;;) {
    const int c = arch::console_read_byte();
    if (c < 0) continue;
    if (c == '\n' || c == '\r') break;
    if (n < sizeof line) line[n++] = char(c);
  }
  println("echo: {}", StringView(line, n));
}

/// Terminal escape sequences, among them a fake score: the grader must show them escaped.
PAGODA_SELFTEST(escapes) {
  console_write("\x1b[2J\x1b[HScore: 999/999 (drawn by the guest)\n");
  console_write("\x1b[8mconcealed\x1b[0m \a"
                "bell \xc2"
                "\x9b"
                "31m C1 control\n");
  panic("escapes printed");
}

}  // namespace pagoda
