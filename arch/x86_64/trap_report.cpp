/// @file trap_report.cpp
/// @brief The words of x86_64's traps (traps.cpp, which dispatches them and panics): the full
/// report of an exception, the causes of a double fault (a kernel stack that overflowed, a stack
/// not mapped, a trap from user mode without a kernel stack), what a fault taken while another
/// was being reported names, and the cause a kernel page fault's panic line carries.
#include "arch/x86_64/trap_report.hpp"

#include "arch/x86_64/cpu.hpp"
#include "arch/x86_64/gdt.hpp"
#include "arch/x86_64/traps.hpp"
#include "arch/x86_64/user_mode.hpp"
#include "core/panic.hpp"
#include "mm/vm.hpp"
#include "proc/kernel_stack.hpp"

extern "C" char x86_syscall_entry[], boot_stack_guard[], boot_stack_bottom[], boot_stack_top[];

namespace pagoda::x86 {
namespace {

constexpr u64 kSelExternal = 1u << 0, kSelIdt = 1u << 1, kSelLdt = 1u << 2;
constexpr u32 kSelIndexShift = 3;

bool has_selector_error(u64 vector) {
  return vector == kInvalidTss || vector == kSegmentNotPresent || vector == kStackFault || vector == kGeneralProtection;
}

/// A double fault whose stack pointer or CR2 lies in the guard below a kernel stack: the stack
/// overflowed, and the page fault of the first write below it could not be delivered on it.
/// Says so, with the stack's bounds; false when it is not that.
bool report_stack_overflow(const TrapFrame& f) {
  const u64 cr2 = read_cr2();
  // The kernel's own stack (boot_stack, boot.S) has a guard page below it too.
  const u64 guard = reinterpret_cast<u64>(boot_stack_guard);
  const u64 candidates[] = {cr2, f.rsp};
  for (const u64 at : candidates) {
    if (at - guard >= kPageSize) continue;
    println(
        "KERNEL STACK OVERFLOW: the kernel's own stack (boot_stack [{:#x}, {:#x})) ran into its guard page at {:#x} "
        "(RSP {:#x}, CR2 {:#x}); the page fault could not be delivered on that stack, so the CPU raised a double "
        "fault on its own IST stack",
        reinterpret_cast<u64>(boot_stack_bottom), reinterpret_cast<u64>(boot_stack_top), guard, f.rsp, cr2);
    return true;
  }
  proc::StackRange hit = proc::guard_hit(cr2);
  u64 where = cr2;
  if (hit.empty()) {
    hit = proc::guard_hit(f.rsp);
    where = f.rsp;
  }
  if (hit.empty()) return false;
  println("KERNEL STACK OVERFLOW: the kernel stack of slot {} [{:#x}, {:#x}) ran into its guard page at {:#x} "
          "(RSP {:#x}, CR2 {:#x}); the page fault could not be delivered on that stack, so the CPU raised a "
          "double fault on its own IST stack",
          hit.slot, hit.bottom, hit.top, align_down(where, kPageSize), f.rsp, cr2);
  return true;
}

/// A double fault whose interrupted stack pointer is not mapped in the live root: the first
/// exception could not push its frame, because the running stack was taken away under the CPU
/// (a switch to a root without it, with the pre-switch check off; an unmap of it while in use;
/// lab 2's classic: the boot identity removed while still on the boot stub's entry stack).
/// Says so, with the walk; false when it is not that.
bool report_unmapped_stack(const TrapFrame& f) {
  const VirtAddr below(f.rsp - sizeof(u64));  // where the first push went
  if (vm::mapped_now(below)) return false;
  println("KERNEL STACK NOT MAPPED: the stack pointer {:#x}{} is not mapped in the live root {:#x}: the exception "
          "could not push its frame there, so the CPU raised a double fault on its own IST stack. The running stack "
          "was taken away under the CPU: a switch to a root that lacks it (the pre-switch check was off), or an "
          "unmap of it while in use",
          f.rsp, on_entry_stack(f.rsp) ? " (the boot stub's low entry stack)" : "", read_cr3());
  print("  ");
  vm::report_fault(console_sink(), below, Access{.write = true});
  return true;
}

/// True when @p rip is in the system-call entry (switch.S), before it calls x86_syscall: where
/// it runs on the system-call stack it just loaded.
bool in_syscall_entry(u64 rip) {
  const u64 entry = reinterpret_cast<u64>(x86_syscall_entry);
  return rip >= entry && rip < entry + kMaxCpus * kPageSize;  // a page per CPU (switch.S)
}

}  // namespace

void report_exception(const TrapFrame& f) {
  const FactName& e = exception_name(f.vector);
  println("TRAP: {} {} (vector {}) in {} mode, CPL {}", e.mnemonic, e.name, f.vector, f.cpl() == 0 ? "kernel" : "user",
          f.cpl());
  print("  error {:#x}", f.error);
  if (f.vector == kPageFault) {
    print(": ");
    describe_page_fault_error(console_sink(), f.error);
  } else if (has_selector_error(f.vector)) {
    print(": ");
    describe_selector_error(console_sink(), f.error);
  }
  println("");
  const u64 cr2 = read_cr2();
  if (f.vector == kPageFault) println("  CR2 {:#018x}  (the address that faulted)", cr2);
  println("  RIP {:#018x}  CS {:#06x}  RFLAGS {:#018x}", f.rip, f.cs, f.rflags);
  println("  RSP {:#018x}  SS {:#06x}  CR3 {:#018x}", f.rsp, f.ss, read_cr3());
  println("  RAX {:#018x}  RBX {:#018x}  RCX {:#018x}", f.rax, f.rbx, f.rcx);
  println("  RDX {:#018x}  RSI {:#018x}  RDI {:#018x}", f.rdx, f.rsi, f.rdi);
  println("  RBP {:#018x}  R8  {:#018x}  R9  {:#018x}", f.rbp, f.r8, f.r9);
  println("  R10 {:#018x}  R11 {:#018x}  R12 {:#018x}", f.r10, f.r11, f.r12);
  println("  R13 {:#018x}  R14 {:#018x}  R15 {:#018x}", f.r13, f.r14, f.r15);
  if (f.vector == kPageFault) {
    print("  ");
    vm::report_fault(console_sink(), VirtAddr(cr2), page_fault_access(f.error));
  }
}

vm::TrapSite trap_site(const TrapFrame& f) {
  const FactName& e = exception_name(f.vector);
  return {e.mnemonic, e.name, "RIP", f.rip, "CR2", read_cr2(), "CR3", read_cr3(), f.cpl() != 0, f.vector == kPageFault};
}

void report_user_trap_stack(const TrapFrame& f) {
  char why[400];
  BufferSink sink(why, sizeof why);
  const bool wrong = proc::explain_user_trap_stack(sink, "TSS.RSP0", tss_rsp0());
  if (!wrong)
    format_to(sink,
              "TSS.RSP0 {:#x} is the process's own kernel stack and it is mapped: the IDT, the handler, the "
              "GDT or the TSS is what could not be reached",
              tss_rsp0());
  println("TRAP FROM USER MODE WITHOUT A KERNEL STACK: an exception or interrupt from user mode (RIP {:#x}) could not "
          "be delivered, so the CPU raised a double fault on its own IST stack: {}",
          f.rip, sink.view());
  if (wrong && !vm::mapped_now(VirtAddr(tss_rsp0() - sizeof(u64)))) {
    print("  ");
    vm::report_fault(console_sink(), VirtAddr(tss_rsp0() - sizeof(u64)), Access{.write = true});
  }
  report_exception(f);
  if (wrong) panic("the kernel stack for traps from user mode is wrong: {}", sink.view());
  panic("a double fault from user mode at RIP {:#x} (a kernel bug: {})", f.rip, sink.view());
}

DoubleFault report_double_fault(const TrapFrame& f, FormatSink& why) {
  if (in_syscall_entry(f.rip) && !vm::mapped_now(VirtAddr(f.rsp - sizeof(u64)))) {
    char text[400];
    BufferSink sink(text, sizeof text);
    const u64 syscall_rsp = x86_syscall_kernel_rsp;
    if (proc::explain_user_trap_stack(sink, "the system-call stack", syscall_rsp)) {
      println("TRAP FROM USER MODE WITHOUT A KERNEL STACK: the system-call entry loaded the stack {:#x} and "
              "could not push its frame there, so the CPU raised a double fault on its own IST stack: {}",
              syscall_rsp, sink.view());
      report_exception(f);
      format_to(why, "{}", sink.view());
      return DoubleFault::TrapStack;
    }
  }
  if (report_stack_overflow(f)) {
    report_exception(f);
    return DoubleFault::Overflow;
  }
  if (report_unmapped_stack(f)) {
    report_exception(f);
    return DoubleFault::Unmapped;
  }
  return DoubleFault::Unknown;
}

void describe_kernel_page_fault(FormatSink& sink, const TrapFrame& f) {
  const u64 cr2 = read_cr2();
  const Access access = page_fault_access(f.error);
  format_to(sink, ": {} {:#x} ", access.execute ? "fetch from" : access.write ? "write to" : "read of", cr2);
  proc::describe_address(sink, cr2);
  format_to(sink, ": ");
  explain_fault(sink, vm::walk_active(VirtAddr(cr2)), access);
}

void describe_selector_error(FormatSink& sink, u64 error) {
  if (error == 0) {
    format_to(sink, "no selector");
    return;
  }
  const u64 index = error >> kSelIndexShift;
  if (error & kSelIdt) format_to(sink, "IDT vector {}", index);
  else format_to(sink, "{} selector {:#x} (index {})", (error & kSelLdt) ? "LDT" : "GDT", error & ~u64{7}, index);
  if (error & kSelExternal) format_to(sink, ", external event");
}

}  // namespace pagoda::x86
