/// @file gic.hpp
/// @brief The GICv2 interrupt controller: routing, enabling and dispatching interrupts.
#pragma once

#include "arch/aarch64/traps.hpp"
#include "mm/base/addr.hpp"

namespace pagoda::aarch64 {

/// Interrupt IDs this kernel can route: SGIs 0-15, PPIs 16-31, and the first SPIs.
inline constexpr u32 kMaxIntid = 256;
/// The SGI the kernel's inter-processor interrupt is (arch::send_ipi).
inline constexpr u32 kIpiSgi = 0;

/// Resets the GIC at @p distributor / @p cpu_interface: every interrupt disabled, the
/// distributor and this CPU's interface on, every priority let through.
void gic_init(PhysAddr distributor, PhysAddr cpu_interface);
/// This CPU's interface on, every priority let through, its banked SGIs and PPIs prioritised
/// (gic_init() does it for the boot CPU; a secondary CPU calls it for itself).
void gic_init_cpu();
/// Enables on this CPU the SGI or PPI @p intid (< 32), whose handler gic_enable() routed.
void gic_enable_banked(u32 intid);
/// Sends SGI @p intid (< 16) to the CPU whose interface number is @p cpu_interface.
void gic_send_sgi(u32 cpu_interface, u32 intid);
/// Routes @p intid to @p handler and enables it (to this CPU, for an SPI).
void gic_enable(u32 intid, IrqHandler handler);
/// Acknowledges the pending interrupt, runs its handler and ends it; called by the IRQ vector.
void gic_handle_irq(TrapFrame& frame);

/// Ends the interrupt being handled now (EOIR), before its handler returns: a handler that may
/// switch to another context (the timer's) calls it first, so that the GIC does not hold back
/// the next interrupt until this context runs again. gic_handle_irq() ends it otherwise.
void gic_end_of_interrupt();

}  // namespace pagoda::aarch64
