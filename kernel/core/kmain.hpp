/// @file kmain.hpp
/// @brief kmain(): the generic kernel's entry, called by each arch's boot path.
#pragma once

#include "boot/bootinfo.hpp"

namespace pagoda {

/// Pagoda's version, printed in the banner.
inline constexpr const char* kVersion = "0.1";
/// Timer interrupts per second.
inline constexpr u32 kTimerHz = 100;

/// Runs the kernel. Called once, with interrupts disabled, traps installed, global constructors
/// run and @p boot holding copies of everything the boot protocol provided.
[[noreturn]] void kmain(const BootInfo& boot);

}  // namespace pagoda
