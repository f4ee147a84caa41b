/// @file lapic.hpp
/// @brief The local APIC: the periodic tick on x86_64, and interrupts sent to other CPUs.
#pragma once

#include "lib/types.hpp"

namespace pagoda::x86 {

/// Masks the legacy PICs, enables the LAPIC and starts its timer at @p hz interrupts per second.
void lapic_timer_init(u32 hz);
/// Timer interrupts the boot CPU handled so far.
u64 lapic_ticks();
/// Enables this (secondary) CPU's LAPIC: from then on it takes IPIs, and no timer yet.
void lapic_init_secondary();
/// Starts this (secondary) CPU's LAPIC timer at the boot CPU's rate; after lapic_timer_init() on
/// the boot CPU and lapic_init_secondary() on this one.
void lapic_timer_start_secondary();
/// Ends the interrupt this CPU is handling (a level-triggered one at its I/O APIC too).
void lapic_eoi();
/// Whether the boot CPU's LAPIC is enabled (lapic_timer_init() ran): only then does an
/// interrupt from the I/O APIC reach the CPU (a software-disabled LAPIC holds it back).
bool lapic_ready();
/// This CPU's APIC ID.
u32 lapic_id();
/// INIT (assert) to the CPU whose APIC ID is @p apic_id: it waits for a STARTUP.
void lapic_send_init(u32 apic_id);
/// STARTUP to @p apic_id: it starts in real mode at CS:IP = (@p page << 8):0, i.e. physical
/// page @p page (below 1 MiB).
void lapic_send_startup(u32 apic_id, u8 page);
/// The kernel's IPI (kIpiVector, fixed delivery) to @p apic_id.
void lapic_send_ipi(u32 apic_id);

}  // namespace pagoda::x86
