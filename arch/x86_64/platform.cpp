// The x86_64 side of core/arch.hpp.
#include "arch/x86_64/boot_defs.h"
#include "arch/x86_64/cpu.hpp"
#include "arch/x86_64/gdt.hpp"
#include "arch/x86_64/lapic.hpp"
#include "arch/x86_64/serial.hpp"
#include "arch/x86_64/traps.hpp"
#include "core/arch.hpp"
#include "core/frame_records.hpp"
#include "core/stop.hpp"
#include "mm/vm.hpp"

namespace pagoda::arch {

StringView name() { return "x86_64"; }

void console_write(StringView text) { x86::serial_write(text); }

int console_read_byte() { return x86::serial_read_byte(); }

void traps_init() { x86::idt_init(); }

void timer_init(u32 hz) { x86::lapic_timer_init(hz); }
u64 timer_ticks() { return x86::lapic_ticks(); }

void interrupts_enable() { x86::sti(); }
void interrupts_disable() { x86::cli(); }
[[PAGODA_STOP(wait_for_interrupt)]] void wait_for_interrupt() { x86::hlt(); }

[[PAGODA_STOP(shutdown)]] void shutdown(ExitStatus status) {
  x86::cli();
  // QEMU's isa-debug-exit device (iobase 0xf4) ends the emulator; without it, we halt.
  x86::outl(DEBUG_EXIT_PORT, status == ExitStatus::Success ? DEBUG_EXIT_SUCCESS : DEBUG_EXIT_FAILURE);
  for (;;) x86::hlt();
}

usize backtrace(uptr* out, usize max, usize skip) {
  // RBP points at [saved RBP][return address]; the boot stub's zero RBP ends the chain. The
  // boot stub's entry stack may be gone from the live root (a switch of roots took it away
  // under the CPU): its records are read only where they are mapped.
  const auto readable = [](uptr a) {
    return x86::is_kernel_stack_address(a) && (!x86::on_entry_stack(a) || vm::mapped_now(VirtAddr(a)));
  };
  return walk_frame_records(__builtin_frame_address(0), sizeof(uptr), +readable, out, max, skip);
}

[[gnu::noinline]] void execute_undefined_instruction() {
  // x86_ud_site is a global label so that the grader can check the reported RIP against it.
  asm volatile(".global x86_ud_site\n"
               "x86_ud_site:\n"
               "ud2");
}

Span<const u8> return_instruction() {
  static constexpr u8 kRet[] = {0xC3};  // ret (near)
  return {kRet, array_size(kRet)};
}

void force_triple_fault() {
  // An IDT with limit 0 has no gates: the #UD cannot be delivered (#GP), nor can that (#DF),
  // nor the double fault, and the CPU shuts down.
  struct [[gnu::packed]] {
    u16 limit;
    u64 base;
  } empty{0, 0};
  asm volatile("lidt %0\n ud2" ::"m"(empty));
  __builtin_unreachable();
}

}  // namespace pagoda::arch
