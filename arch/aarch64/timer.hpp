/// @file timer.hpp
/// @brief The EL1 virtual timer of the ARM generic timer: the kernel tick.
#pragma once

#include "lib/types.hpp"

namespace pagoda::aarch64 {

/// Starts the virtual timer at @p hz ticks per second, interrupting on GIC INTID @p intid
/// (a PPI, from the device tree). Interrupts stay masked.
void timer_init(u32 hz, u32 intid);
/// Starts this (secondary) CPU's virtual timer at the boot CPU's period, on the same PPI
/// @p intid; after timer_init() on the boot CPU. Interrupts stay masked.
void timer_init_secondary(u32 intid);
/// Timer interrupts the boot CPU handled since timer_init().
u64 timer_ticks();
/// Whether timer_init() has started the boot CPU's tick.
bool timer_running();

}  // namespace pagoda::aarch64
