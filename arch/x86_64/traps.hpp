/// @file traps.hpp
/// @brief x86_64 exceptions and interrupts: the IDT, decoded fault reports, IRQ handlers.
#pragma once

#include "arch/x86_64/trap_frame.hpp"
#include "lib/format.hpp"

namespace pagoda::x86 {

/// First vector used for device interrupts (0-31 are the CPU's exceptions).
inline constexpr u8 kFirstIrqVector = 32;
inline constexpr u8 kTimerVector = 32;
inline constexpr u8 kSpuriousVector = 0xFF;

/// An interrupt handler for one vector; runs with interrupts disabled.
using IrqHandler = void (*)(TrapFrame& frame);

/// Builds and loads the IDT (all 256 vectors); interrupts stay disabled.
void idt_init();
/// Routes @p vector (>= kFirstIrqVector) to @p handler.
void set_irq_handler(u8 vector, IrqHandler handler);

/// Writes the decoded page-fault error code, e.g. "not-present page, write, supervisor".
void describe_page_fault_error(FormatSink& sink, u64 error);
/// Writes the decoded selector error code of #TS/#NP/#SS/#GP, e.g. "GDT selector 0x28".
void describe_selector_error(FormatSink& sink, u64 error);

}  // namespace pagoda::x86
