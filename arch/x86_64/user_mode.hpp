/// @file user_mode.hpp
/// @brief x86_64 user mode, the parts the trap code uses (the rest is kernel/proc/arch.hpp).
#pragma once

#include "arch/x86_64/trap_frame.hpp"
#include "mm/base/perms.hpp"

/// 1 once CR4.SMAP is on (user_mode.cpp sets it): the trap entry (vectors.S) clears RFLAGS.AC
/// only then (CLAC is undefined on a CPU without SMAP), and a kernel fault on a user address
/// reads it to tell a guarded access from an open one.
extern "C" pagoda::u8 x86_smap_enabled;

namespace pagoda::x86 {

/// The name of the privileged instruction @p code starts with ("hlt", "cli", "mov to/from a
/// control register", ...), or nullptr when it is not one (a \#GP in ring 3 then came from a
/// non-canonical address or a segment). Reads at most @p size bytes.
const char* privileged_instruction(const u8* code, usize size);

/// Ends the current process for the exception @p frame records, taken in ring 3 (the register
/// report is printed already); @p access: what a page fault's access tried. Never returns.
[[noreturn]] void user_exception(const TrapFrame& frame, const char* mnemonic, const char* name, Access access);

}  // namespace pagoda::x86
