/// @file traps.hpp
/// @brief AArch64 exceptions: the vectors, decoded reports (ESR, FAR, the walk of FAR), IRQs.
#pragma once

#include "arch/aarch64/trap_frame.hpp"
#include "lib/format.hpp"

namespace pagoda::aarch64 {

/// Points VBAR_EL1 at the vectors (the boot stub did already; this makes it explicit).
void vectors_init();

/// @name ESR_EL1 fields (the layout is drawn in traps.cpp)
/// @{
inline constexpr u32 kEsrClassShift = 26;
inline constexpr u64 kEsrClassMask = 0x3f;
inline constexpr u64 kEsrIssMask = 0x1ff'ffff;    ///< ISS, bits 24:0
inline constexpr u64 kIssFaultStatusMask = 0x3f;  ///< DFSC/IFSC, bits 5:0
inline constexpr u64 kIssWnR = 1u << 6;           ///< data aborts: the access was a write
inline constexpr u64 kIssS1ptw = 1u << 7;         ///< the fault happened walking the tables
inline constexpr u64 kIssCm = 1u << 8;            ///< data aborts: a cache maintenance instruction
inline constexpr u64 kIssEa = 1u << 9;            ///< external abort type
inline constexpr u64 kIssFnV = 1u << 10;          ///< FAR is not valid
/// DFSC/IFSC with its level (bits 1:0) masked off: the four kinds of fault that carry a level.
inline constexpr u64 kFaultKindMask = 0x3c;
inline constexpr u64 kFaultAccessFlag = 0b001000;  ///< access flag fault, any level
inline constexpr u64 kFaultPermission = 0b001100;  ///< permission fault, any level
/// @}

/// @name Exception classes (ESR_EL1.EC) the kernel handles by name
/// @{
inline constexpr u64 kClassUnknown = 0x00;
inline constexpr u64 kClassSvc64 = 0x15;
inline constexpr u64 kClassInstructionAbortLower = 0x20;
inline constexpr u64 kClassInstructionAbortSame = 0x21;
inline constexpr u64 kClassDataAbortLower = 0x24;
inline constexpr u64 kClassDataAbortSame = 0x25;
/// @}

/// The kernel's name of exception class @p ec ("data abort, lower EL", ...).
const char* exception_class_name(u64 ec);

/// The exception class of @p esr.
constexpr u64 esr_class(u64 esr) { return (esr >> kEsrClassShift) & kEsrClassMask; }
/// True for instruction and data aborts (the classes whose ISS decode_abort_syndrome reads).
constexpr bool is_abort(u64 esr) {
  const u64 ec = esr_class(esr);
  return ec == kClassInstructionAbortLower || ec == kClassInstructionAbortSame || ec == kClassDataAbortLower ||
         ec == kClassDataAbortSame;
}
/// True for data aborts (their ISS has WnR and CM).
constexpr bool is_data_abort(u64 esr) {
  return esr_class(esr) == kClassDataAbortLower || esr_class(esr) == kClassDataAbortSame;
}

/// Writes the meaning of an abort's syndrome @p esr (an instruction or data abort), e.g.
/// "translation fault at level 0, write" (the shape is specified in traps.cpp).
void describe_abort(FormatSink& sink, u64 esr);

/// An interrupt handler for one GIC interrupt; runs with interrupts masked.
using IrqHandler = void (*)(TrapFrame& frame);

}  // namespace pagoda::aarch64
