/// @file gdt.hpp
/// @brief The kernel's GDT and TSS: segments for long mode and the interrupt stacks (IST).
#pragma once

#include "arch/x86_64/user_defs.h"
#include "lib/types.hpp"

namespace pagoda::x86 {

/// Segment selectors. The user pair is ordered data-then-code as SYSRET expects.
inline constexpr u16 kKernelCode = X86_KERNEL_CODE_SELECTOR;
inline constexpr u16 kKernelData = X86_KERNEL_DATA_SELECTOR;
inline constexpr u16 kUserData = X86_USER_DATA_SELECTOR;
inline constexpr u16 kUserCode = X86_USER_CODE_SELECTOR;
inline constexpr u16 kTssSelector = X86_TSS_SELECTOR;

/// Interrupt stack table slots (1-based, as the IDT encodes them; 0 means "no IST").
inline constexpr u8 kIstDoubleFault = 1;
inline constexpr u8 kIstNmi = 2;
inline constexpr u8 kIstMachineCheck = 3;

/// Builds and loads CPU @p cpu's own GDT, reloading every segment register, and its LDTR:
/// @p cpu * X86_CPU_SLOT_STRIDE (arch_impl/this_cpu.hpp); its TR names the TSS kept for CPU
/// @p tss (that TSS's IST stacks filled), which this CPU's RSP0 and IST stacks are read from and
/// written to from then on (tss_rsp0(), set_tss_rsp0()). Each CPU needs its own (@p tss ==
/// @p cpu): a TSS shared by two CPUs has one RSP0 for both. Run on that CPU.
void gdt_init(u32 cpu, u32 tss);

/// True when @p address lies on one of the kernel's stacks (the boot stack, an IST stack, or a
/// process's kernel stack).
bool is_kernel_stack_address(uptr address);
/// True when @p address lies in the boot stub's low entry stack (boot.S).
bool on_entry_stack(uptr address);

/// A stack: [bottom, top), growing down from top; empty when top == bottom.
struct StackBounds {
  uptr bottom = 0;
  uptr top = 0;
  bool empty() const { return top <= bottom; }
};
/// The kernel stack (the boot stack, an IST stack or a process's kernel stack in the kStackBase
/// area) that holds @p address; empty when none does.
StackBounds kernel_stack_bounds(uptr address);
/// The stack this CPU's TSS gives to IST slot @p ist (1-based, kIstDoubleFault...); empty before gdt_init().
StackBounds ist_stack(u8 ist);
/// This CPU's TSS.RSP0: the top of the stack for traps from user mode (0 until the first process runs).
uptr tss_rsp0();
/// Sets this CPU's TSS.RSP0 (arch::set_kernel_stack does, with the system-call entry's stack).
void set_tss_rsp0(uptr top);
/// The TSS this CPU uses (TR): its address and size.
StackBounds tss_bytes();

}  // namespace pagoda::x86
