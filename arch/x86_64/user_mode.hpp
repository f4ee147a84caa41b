/// @file user_mode.hpp
/// @brief x86_64 user mode, the parts the trap code uses (the rest is kernel/proc/arch.hpp).
#pragma once

#include "arch/x86_64/trap_frame.hpp"
#include "arch/x86_64/user_defs.h"
#include "core/cpu.hpp"
#include "mm/base/perms.hpp"

/// 1 once CR4.SMAP is on (user_mode.cpp sets it): the trap entry (vectors.S) clears RFLAGS.AC
/// only then (CLAC is undefined on a CPU without SMAP), and a kernel fault on a user address
/// reads it to tell a guarded access from an open one.
extern "C" pagoda::u8 x86_smap_enabled;
/// Each CPU's kernel stack for `syscall` (switch.S: each CPU's entry loads its own slot; CPU 0's
/// first).
extern "C" pagoda::PerCpu<pagoda::u64> x86_syscall_kernel_rsp_of asm("x86_syscall_kernel_rsp");
static_assert(X86_SYSCALL_ENTRIES == pagoda::kMaxCpus, "switch.S has one system-call entry per CPU");

/// What CPU 0's system-call entry calls with its frame (switch.S): x86_syscall, which takes no
/// kernel lock and reads no flag of it, until syscalls_take_kernel_lock().
extern "C" void (*x86_syscall_handler)(pagoda::x86::TrapFrame*);
extern "C" void x86_syscall(pagoda::x86::TrapFrame* frame);
/// x86_syscall under the kernel lock: CPU 1's entry calls it, and CPU 0's once a second CPU may run.
extern "C" void x86_syscall_locking(pagoda::x86::TrapFrame* frame);

namespace pagoda::x86 {

/// CPU 0's system calls take the kernel lock from now on (for good): called by start_cpu()
/// before a second CPU may run kernel code. The one-CPU entry is the null system call's cost.
void syscalls_take_kernel_lock();

/// This CPU's slot of x86_syscall_kernel_rsp, by the name the one-CPU code (lab 3's
/// set_kernel_stack()) reads and assigns.
inline constexpr ThisCpu<x86_syscall_kernel_rsp_of> x86_syscall_kernel_rsp{};

/// The name of the privileged instruction @p code starts with ("hlt", "cli", "mov to/from a
/// control register", ...), or nullptr when it is not one (a \#GP in ring 3 then came from a
/// non-canonical address or a segment). Reads at most @p size bytes.
const char* privileged_instruction(const u8* code, usize size);

/// Ends the current process for the exception @p frame records, taken in ring 3 (the register
/// report is printed already); @p access: what a page fault's access tried. Never returns.
[[noreturn]] void user_exception(const TrapFrame& frame, const char* mnemonic, const char* name, Access access);

}  // namespace pagoda::x86
