/// @file proc/arch.hpp
/// @brief The process seam: everything kernel/proc needs from one ISA to run code in user
/// mode, and everything the ISA's trap code calls back. The one header an ISA port reads.
///
/// kernel/proc never names a register, an instruction or a descriptor table. What it needs
/// from the CPU is six operations (namespace arch, implemented in arch/ISA/user_mode.cpp and
/// switch.S); what the CPU's traps need from it is three entry points (namespace proc,
/// implemented in kernel/proc). Interrupts are off whenever either side calls the other.
///
///     generic (kernel/proc)                         ISA (arch/ISA)
///     --------------------------------------------  ------------------------------------------
///     boot ------------------------------------->  user_mode_init(): the system-call entry;
///                                                   x86_64 STAR/LSTAR/SFMASK, SMEP/SMAP/UMIP;
///                                                   AArch64 nothing for SVC (VBAR), PAN
///     new process ------------------------------>  prepare_user_entry(): a frame on its kernel
///                                                   stack that the first switch "returns" into,
///                                                   ending in user mode at the ELF entry
///     switch_to(next) -------------------------->  set_kernel_stack(next's top): x86_64
///       (before the root of next is loaded)         TSS.RSP0 + the syscall stack; AArch64:
///                                                   the EL1 stack every entry from EL0 loads
///                     -------------------------->  switch_context(): callee-saved registers
///                                                   and the stack pointer, nothing else
///     copy to/from user (lab 3: checked ranges) ->  user_access_begin/end(): x86_64 STAC/CLAC,
///                                                   AArch64 PAN off/on, around the copy alone
///     proc::syscall()   <------------------------  the system-call instruction from user mode
///                                                   (x86_64 `syscall`; AArch64 `svc #0`)
///     proc::user_fault() <-----------------------  any exception taken in user mode that the
///                                                   memory manager did not resolve
///     proc::timer_tick() <-----------------------  every timer interrupt, saying whether it
///                                                   interrupted user mode
///
/// The register half of the system-call convention is in kernel/lib/abi.hpp; the user side of
/// it in user/lib/arch/ISA/syscall_arch.hpp. The path of one system call and of one timer
/// interrupt from user mode, step by step, is drawn in labs/03-process-roots/README.md.
///
/// What the AArch64 port provides (arch/aarch64/user_mode.cpp, switch.S, vectors.S):
/// user_mode_init (PAN on; SCTLR_EL1.SPAN = 0 so that an exception sets PAN; WFI, WFE and DAIF
/// trapped at EL0), prepare_user_entry (a TrapFrame with ELR = entry, SPSR = EL0t, SP_EL0 =
/// user stack, x0/x1 = argc/argv, whose return is the vector's eret path), switch_context
/// (x19..x30 and SP), set_kernel_stack (aarch64_user_trap_sp, which every vector entry from EL0
/// loads into SP_EL1 before it pushes its frame), user_access_begin/
/// end (PAN), and in its trap code: SVC from EL0 -> proc::syscall (x8, x0..x5, result in x0),
/// aborts and undefined or trapped instructions from EL0 -> proc::user_fault, the timer IRQ ->
/// proc::timer_tick(from EL0), after the GIC's end of interrupt. A kernel stack overflow has no
/// IST there: the kernel's synchronous vector checks SP against the guards of the kStackBase
/// area (kernel/proc/kernel_stack.hpp) before it pushes, and moves to an overflow stack to
/// report it.
#pragma once

#include "lib/abi.hpp"
#include "lib/format.hpp"
#include "lib/result.hpp"
#include "lib/types.hpp"
#include "mm/base/perms.hpp"

namespace pagoda::arch {

/// Prepares the CPU for user mode, once, after traps_init() and vm::init(): the system-call
/// entry and the protections that keep kernel and user apart. Prints what it turned on to
/// @p report, e.g. "syscall entry, SMEP on, SMAP on, UMIP on"; Unsupported (with the reason)
/// when the CPU lacks something the kernel relies on.
[[nodiscard]] Result<void> user_mode_init(FormatSink& report);

/// Where a new process starts: its first instruction, its stack pointer, and the two
/// arguments of the process-entry convention (kernel/lib/abi.hpp, "Process entry").
struct UserEntry {
  u64 pc;
  u64 sp;
  u64 argc;
  u64 argv;
};

/// Writes below @p stack_top (the top of a fresh kernel stack) what the first switch_context()
/// to it needs to end in user mode at @p entry, every other register zero; returns the stack
/// pointer to switch to.
uptr prepare_user_entry(uptr stack_top, const UserEntry& entry);

/// Lab 6 (fork): writes below @p child_top (the top of the child's fresh kernel stack) a copy
/// of the frame the current system call came in with (the one at the top of the parent's kernel
/// stack, @p parent_top: on both ISAs a trap from user mode builds its frame there), with the
/// system call's result register set to 0, and under it what the first switch_context() to the
/// child needs to return through the trap exit path into user mode; returns the stack pointer
/// to switch to. The child resumes at the instruction after the parent's system call with every
/// register the parent had except the result (x86_64 RAX, AArch64 x0).
uptr prepare_fork_return(uptr child_top, uptr parent_top);

/// Lab 6 (exec): rewrites the user-mode frame at the top of the current kernel stack
/// (@p stack_top) so that the system call in progress returns into @p entry instead of its
/// caller, every register zero but those of the process-entry convention. Only the frame is
/// written, nothing below it (the system call still runs on the stack under it). The system
/// call's result lands in the result register on the way out: exec returns entry.argc so that
/// the first argument register holds argc on both ISAs (AArch64: x0 is both).
void restart_user_entry(uptr stack_top, const UserEntry& entry);

/// Saves the caller's callee-saved registers on its own stack, stores that stack pointer in
/// *@p save_sp, loads @p load_sp and returns into the context saved there (another process's
/// kernel code, the idle loop, or a prepare_user_entry() frame). Interrupts must be off.
void switch_context(uptr* save_sp, uptr load_sp);

/// Makes @p top the kernel stack that the next trap or system call from user mode lands on
/// (lab 3: x86_64 TSS.RSP0 and the system-call stack; AArch64 the EL1 stack of the vectors).
void set_kernel_stack(uptr top);
/// Where the next trap from user mode lands, read where the CPU takes it (x86_64 TSS.RSP0;
/// AArch64 the value the vectors load); 0 before the first process.
uptr kernel_stack();

/// Lifts / restores the CPU's protection against kernel accesses to user pages. Only
/// proc::UserAccessScope calls them, around one checked copy.
void user_access_begin();
void user_access_end();

/// The copy that may fault: @p n bytes from @p src to @p dst, one of them a user address, with
/// the user-access guard already lifted. Returns the bytes NOT copied (0: all); a fault on the
/// user address stops it through the fix-up table (proc::user_fixup_for()) instead of a report.
usize user_copy(void* dst, const void* src, usize n);
/// Copies the NUL-terminated string at user address @p src into @p dst (at most @p max bytes):
/// its length when its NUL lies within @p max (copied too), @p max when it does not, -1 when
/// reading it faulted.
i64 user_string_copy(char* dst, const char* src, usize max);

}  // namespace pagoda::arch

namespace pagoda::proc {

/// A system call as the ISA's entry decoded it (kernel/lib/abi.hpp gives the registers).
struct SyscallArgs {
  u64 number;
  u64 args[6];
};

/// Runs one system call of the current process and returns its result (a value, or a negated
/// abi::Errno). It may switch to other processes before it returns (yield, sleep), and does not
/// return at all for exit.
i64 syscall(const SyscallArgs& call);

/// An exception taken in user mode that nothing resolved, decoded by the ISA.
struct UserFault {
  static constexpr usize kReasonSize = 640;
  abi::Termination how = abi::Termination::Killed;  ///< what the exit status says
  const char* mnemonic = "";                        ///< the exception, e.g. "#PF"
  const char* name = "";                            ///< e.g. "page fault"
  const char* vector_label = "vector";              ///< what the ISA calls vector (x86_64 "vector", AArch64 "EC")
  u64 vector = 0;               ///< the ISA's number for it (x86_64: the IDT vector; AArch64: ESR_EL1.EC)
  const char* pc_label = "pc";  ///< what the ISA calls its program counter ("RIP", "ELR")
  u64 pc = 0;                   ///< the user instruction
  u64 address = 0;              ///< the faulting address, when has_address
  bool has_address = false;
  Access access{};                ///< a page fault: what the access tried to do
  char reason[kReasonSize] = {};  ///< why, e.g. "user access to supervisor page" (may be empty)
};

/// Ends the current process because of @p fault (the ISA has printed its register report);
/// the kernel and every other process go on. Never returns.
[[noreturn]] void user_fault(const UserFault& fault);

/// Called by the ISA's timer interrupt, after the tick is counted: wakes sleepers and, when the
/// interrupt came from user mode (@p from_user), gives the CPU to the next ready process.
void timer_tick(bool from_user);

}  // namespace pagoda::proc
