#include "core/kmain.hpp"

#include "core/arch.hpp"
#include "core/cmdline.hpp"
#include "core/lab.hpp"
#include "core/panic.hpp"
#include "core/runtime.hpp"
#include "core/selftest.hpp"
#include "lib/proof.hpp"
#include "mm/vm.hpp"
#include "proc/process.hpp"
#include "proc/run.hpp"

namespace pagoda {
namespace {

void print_memory_map(const BootInfo& boot, StringView token) {
  println("memory map ({} regions):", boot.memory.size());
  for (const MemoryRegion& r : boot.memory)
    println("  {:#014x}-{:#014x} {:>10} KiB  {}", r.base.value(), r.end().value(), r.size / KiB,
            memory_type_name(r.type));
  const u64 usable = boot.memory.total(MemoryType::Usable);
  println("memory: {} KiB usable ({} bytes) proof={:016x}", usable / KiB, usable, proof(token, usable));
}

}  // namespace

void kmain(const BootInfo& boot) {
  if (!global_constructors_ran()) panic("the global constructors did not run before kmain()");
  const StringView token = cmdline_get(boot.cmdline(), "token").value;
  println("Pagoda {} ({}) booted; token={}", kVersion, arch::name(), token);
  println("cmdline: \"{}\"{}", boot.cmdline(), boot.cmdline_truncated ? " (truncated)" : "");
  print_memory_map(boot, token);

  const Result<void> vm_ok = vm::init(boot);
  if (vm_ok.is_error()) {
    if (vm_ok.error() != Error::NotImplemented) panic("vm: cannot set up virtual memory: {}", vm_ok.error());
    lab_todo(vm_ok.error());
    println("vm: not set up (a lab is not done yet); the kernel stays on the boot page tables");
  }

  proc::init();
  if (const CmdlineValue fork = cmdline_get(boot.cmdline(), "fork"); fork.found) proc::configure_fork(fork.value);
  arch::timer_init(kTimerHz);

  // run=NAME,...: the programs run as processes to their end, then the machine stops.
  const CmdlineValue run = cmdline_get(boot.cmdline(), "run");
  if (run.found) arch::shutdown(proc::run_programs(run.value, token) ? ExitStatus::Success : ExitStatus::Failure);

  const CmdlineValue test = cmdline_get(boot.cmdline(), "test");
  if (test.found) run_selftest(test.value, SelfTestContext{token, boot});

  println("idle: nothing to run (boot with test=NAME to run a self-test)");
  arch::interrupts_enable();
  for (;;) arch::wait_for_interrupt();
}

}  // namespace pagoda
