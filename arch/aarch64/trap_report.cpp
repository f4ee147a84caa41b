/// @file trap_report.cpp
/// @brief The words of AArch64's exceptions (traps.cpp, which dispatches them and panics): the
/// full report of an exception, why the vector entry moved to the overflow stack (a kernel stack
/// that overflowed, a stack not mapped, an exception from EL0 without a kernel stack), what a
/// fault taken while another was being reported names, and the cause a kernel abort's panic line
/// carries.
#include "arch/aarch64/trap_report.hpp"

#include "arch/aarch64/cpu.hpp"
#include "arch/aarch64/mmu_hw.hpp"
#include "arch/aarch64/traps.hpp"
#include "arch_impl/page_table_format.hpp"
#include "core/panic.hpp"
#include "proc/kernel_stack.hpp"

extern "C" char aarch64_vectors[], boot_entry_stack_bottom[], boot_entry_stack_top[], boot_stack_guard[],
    boot_stack_bottom[], boot_stack_top[];

namespace pagoda::aarch64 {
namespace {

using Format = arch::PageTableFormat;

void print_spsr(FormatSink& sink, u64 spsr) {
  constexpr const char* kModes[] = {"EL0t", "?",    "?", "?", "EL1t", "EL1h", "?", "?",
                                    "EL2t", "EL2h", "?", "?", "EL3t", "EL3h", "?", "?"};
  format_to(sink, "({}, masked:{}{}{}{}{})", kModes[spsr & 0xf], (spsr >> 9) & 1 ? " D" : "",
            (spsr >> 8) & 1 ? " A" : "", (spsr >> 7) & 1 ? " I" : "", (spsr >> 6) & 1 ? " F" : "",
            (spsr & kPstatePan) ? ", PAN" : "");
}

/// A frame the vector entry built on the overflow stack (vectors.S, kstack_check) while the
/// frame would not start in a guard: the running stack is not mapped in the live roots. Says
/// so, with the walk.
void report_unmapped_stack(const TrapFrame& f) {
  const VirtAddr below(f.sp - TRAP_FRAME_SIZE);  // where the frame would have started
  const bool entry = f.sp > reinterpret_cast<u64>(boot_entry_stack_bottom) &&
                     f.sp <= reinterpret_cast<u64>(boot_entry_stack_top);
  println("KERNEL STACK NOT MAPPED: the stack pointer {:#x}{} is not mapped in the live roots (TTBR0 {:#x}, "
          "TTBR1 {:#x}): the exception could not push its frame there, so the vector entry, which checks where the "
          "frame would go before it pushes anything, moved to the overflow stack. The running stack was taken away "
          "under the CPU: a switch to a root that lacks it (the pre-switch check was off), or an unmap of it "
          "while in use",
          f.sp, entry ? " (the boot stub's low entry stack)" : "", hw::read_ttbr0().root.value(),
          hw::read_ttbr1().value());
  print("  ");
  vm::report_fault(console_sink(), below, Access{.write = true});
}

/// A frame the vector entry built on the overflow stack (vectors.S, kstack_check): the stack
/// pointer, or the abort's address, lies in the guard below a kernel stack. Says so, with the
/// stack's bounds; false when no guard was hit (the stack is not mapped at all).
bool report_stack_overflow(const TrapFrame& f) {
  const bool has_far = is_translation_abort(f);
  // The kernel's own stack (boot_stack, boot.S) has a guard page below it too.
  const u64 guard = reinterpret_cast<u64>(boot_stack_guard);
  const u64 candidates[] = {has_far ? f.far : ~u64{0}, f.sp, f.sp - TRAP_FRAME_SIZE};
  for (const u64 at : candidates) {
    if (at - guard >= kPageSize) continue;
    println(
        "KERNEL STACK OVERFLOW: the kernel's own stack (boot_stack [{:#x}, {:#x})) ran into its guard page at {:#x} "
        "(SP {:#x}, FAR {:#x}); the exception could not be taken on that stack, so the vector entry moved to the "
        "overflow stack",
        reinterpret_cast<u64>(boot_stack_bottom), reinterpret_cast<u64>(boot_stack_top), guard, f.sp,
        has_far ? f.far : 0);
    return true;
  }
  proc::StackRange hit = has_far ? proc::guard_hit(f.far) : proc::StackRange{};
  u64 where = f.far;
  if (hit.empty()) {
    hit = proc::guard_hit(f.sp);
    where = f.sp;
  }
  if (hit.empty()) {
    where = f.sp - TRAP_FRAME_SIZE;
    hit = proc::guard_hit(where);
  }
  if (hit.empty()) return false;
  println("KERNEL STACK OVERFLOW: the kernel stack of slot {} [{:#x}, {:#x}) ran into its guard page at {:#x} "
          "(SP {:#x}, FAR {:#x}); the exception could not be taken on that stack, so the vector entry, which checks "
          "SP against the stack's guard before it pushes anything, moved to the overflow stack",
          hit.slot, hit.bottom, hit.top, align_down(where, kPageSize), f.sp, has_far ? f.far : 0);
  return true;
}

/// The vector entries for exceptions from EL0 (the third quarter of the table): the first thing
/// they do is push a frame on SP_EL1, the EL1 stack a trap from user mode lands on.
bool in_lower_el_vectors(u64 pc) {
  const u64 table = reinterpret_cast<u64>(aarch64_vectors);
  return pc >= table + 0x400 && pc < table + 0x600;
}

}  // namespace

void report_exception(const TrapFrame& f) {
  const u64 ec = esr_class(f.esr);
  const bool user = f.from_el() == 0;
  if (f.type() == VectorType::Synchronous) {
    println("TRAP: {} (EC {:#04x}) in {} mode, EL{}", exception_class_name(ec), ec, user ? "user" : "kernel",
            f.from_el());
  } else {
    println("TRAP: {} from the {} in {} mode, EL{}", kVectorTypeNames[u64(f.type())],
            kVectorOriginNames[u64(f.origin())], user ? "user" : "kernel", f.from_el());
  }
  print("  ESR {:#010x}", f.esr);
  if (f.type() == VectorType::Synchronous && is_abort(f.esr)) {
    print(": ");
    describe_abort(console_sink(), f.esr);
  } else {
    print(": EC {:#04x} IL {} ISS {:#09x}", ec, (f.esr >> 25) & 1, f.esr & kEsrIssMask);
  }
  println("");
  const bool has_far = is_translation_abort(f);
  if (has_far) println("  FAR {:#018x}  (the address that faulted)", f.far);
  print("  ELR {:#018x}  SPSR {:#010x} ", f.elr, f.spsr);
  print_spsr(console_sink(), f.spsr);
  println("");
  println("  SP  {:#018x}  TTBR0 {:#018x}  TTBR1 {:#018x}", f.sp, PAGODA_READ_SYSREG("ttbr0_el1"),
          PAGODA_READ_SYSREG("ttbr1_el1"));
  for (usize i = 0; i < 30; i += 3)
    println("  X{:<2} {:#018x}  X{:<2} {:#018x}  X{:<2} {:#018x}", i, f.x[i], i + 1, f.x[i + 1], i + 2, f.x[i + 2]);
  println("  X30 {:#018x}  (LR)", f.x[30]);
  if (has_far) {
    const VirtAddr far(f.far);
    const bool upper = Format::in_upper_range(far);
    println("  FAR is in {}'s range{}", upper ? "TTBR1_EL1" : "TTBR0_EL1",
            upper ? " (the kernel half, one root for every address space)" : " (the lower half)");
    print("  ");
    vm::report_fault(console_sink(), far, abort_access(f));
    const Walk walk = vm::walk_active(far);
    if (walk.mapped() && walk.perms.user && f.from_el() != 0 && (f.spsr & kPstatePan))
      println("  (PSTATE.PAN was set: the kernel may not touch a page EL0 can access)");
  }
}

vm::TrapSite trap_site(const TrapFrame& f) {
  return {exception_class_name(esr_class(f.esr)),
          nullptr,
          "ELR",
          f.elr,
          "FAR",
          f.far,
          nullptr,
          0,
          f.from_el() == 0,
          is_translation_abort(f)};
}

Overflowed report_overflowed(const TrapFrame& f, FormatSink& why) {
  if (in_lower_el_vectors(f.elr)) {
    // The entry of an exception from EL0 could not push its frame on SP_EL1.
    const uptr top = f.sp + TRAP_FRAME_SIZE;
    char text[400];
    BufferSink sink(text, sizeof text);
    if (!proc::explain_user_trap_stack(sink, "the EL1 stack (SP_EL1)", top))
      format_to(sink, "SP_EL1 {:#x} is the process's own kernel stack", top);
    println("TRAP FROM USER MODE WITHOUT A KERNEL STACK: an exception from user mode could not push its "
            "frame on the EL1 stack, so the kernel's vector moved to the overflow stack: {}",
            sink.view());
    report_unmapped_stack(f);
    report_exception(f);
    format_to(why, "{}", sink.view());
    return Overflowed::TrapStack;
  }
  if (!report_stack_overflow(f)) {
    report_unmapped_stack(f);
    report_exception(f);
    return Overflowed::Unmapped;
  }
  report_exception(f);
  return Overflowed::Guard;
}

void describe_kernel_abort(FormatSink& sink, const TrapFrame& f) {
  const Access access = abort_access(f);
  format_to(sink, ": {} {:#x} ", access.execute ? "fetch from" : access.write ? "write to" : "read of", f.far);
  proc::describe_address(sink, f.far);
  format_to(sink, ": ");
  explain_fault(sink, vm::walk_active(VirtAddr(f.far)), access);
}

}  // namespace pagoda::aarch64
