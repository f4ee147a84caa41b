/// @file user_mode.hpp
/// @brief AArch64 user mode, the parts the trap code uses (the rest is kernel/proc/arch.hpp).
#pragma once

#include "arch/aarch64/trap_frame.hpp"
#include "lib/types.hpp"

namespace pagoda::aarch64 {

/// The name of the privileged instruction whose encoding is @p insn ("wfi", "msr daifset",
/// "msr ttbr0_el1", "mrs of an EL1 system register", ...), or nullptr when it is not one (an
/// undefined instruction from EL0 that is not a system instruction is an illegal one).
const char* privileged_instruction(u32 insn);

/// Runs the system call an SVC from EL0 made (x8 the number, x0..x5 the arguments) and puts
/// the result in the frame's x0, which the return to EL0 restores.
void user_syscall(TrapFrame& frame);

/// Ends the current process for the synchronous exception @p frame records, taken from EL0
/// (the register report is printed already). Never returns.
[[noreturn]] void user_exception(const TrapFrame& frame);

}  // namespace pagoda::aarch64
