/// @file lapic.hpp
/// @brief The local APIC timer: the periodic tick on x86_64.
#pragma once

#include "lib/types.hpp"

namespace pagoda::x86 {

/// Masks the legacy PICs, enables the LAPIC and starts its timer at @p hz interrupts per second.
void lapic_timer_init(u32 hz);
/// Timer interrupts handled so far.
u64 lapic_ticks();

}  // namespace pagoda::x86
