/// @file traps.hpp
/// @brief x86_64 exceptions and interrupts: the IDT, decoded fault reports, IRQ handlers.
#pragma once

#include "arch/x86_64/trap_frame.hpp"
#include "lib/format.hpp"

namespace pagoda::x86 {

/// First vector used for device interrupts (0-31 are the CPU's exceptions).
inline constexpr u8 kFirstIrqVector = 32;
inline constexpr u8 kTimerVector = 32;
/// The swap disk's interrupt (arch::route_device_interrupt, through the I/O APIC).
inline constexpr u8 kDeviceVector = 48;
/// The kernel's one inter-processor interrupt (arch::send_ipi).
inline constexpr u8 kIpiVector = 0xF0;
inline constexpr u8 kSpuriousVector = 0xFF;

/// An interrupt handler for one vector; runs with interrupts disabled.
using IrqHandler = void (*)(TrapFrame& frame);

/// Builds and loads the IDT (all 256 vectors); interrupts stay disabled.
void idt_init();
/// Loads the IDT idt_init() built on this CPU (a secondary CPU shares the boot CPU's).
void idt_load();
/// Routes @p vector (>= kFirstIrqVector) to @p handler.
void set_irq_handler(u8 vector, IrqHandler handler);

/// @name Page-fault error code bits (the layout is drawn in traps.cpp)
/// @{
inline constexpr u64 kPfPresent = 1u << 0;      ///< 0: page not present; 1: protection violation
inline constexpr u64 kPfWrite = 1u << 1;        ///< the access was a write
inline constexpr u64 kPfUser = 1u << 2;         ///< the access came from user mode (CPL 3)
inline constexpr u64 kPfReserved = 1u << 3;     ///< a reserved bit was set in a paging entry
inline constexpr u64 kPfFetch = 1u << 4;        ///< the access was an instruction fetch
inline constexpr u64 kPfKey = 1u << 5;          ///< protection-key violation
inline constexpr u64 kPfShadowStack = 1u << 6;  ///< shadow-stack access
/// @}

/// Writes the decoded page-fault error code, e.g. "not-present page, write, supervisor".
void describe_page_fault_error(FormatSink& sink, u64 error);
/// Writes the decoded selector error code of \#TS/\#NP/\#SS/\#GP, e.g. "GDT selector 0x28".
void describe_selector_error(FormatSink& sink, u64 error);

}  // namespace pagoda::x86
