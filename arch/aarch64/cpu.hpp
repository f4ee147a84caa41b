/// @file cpu.hpp
/// @brief AArch64 instructions the kernel needs, as inline functions: system registers,
/// barriers, interrupt masking.
#pragma once

#include "lib/types.hpp"

namespace pagoda::aarch64 {

/// Reads the system register named @p reg (an assembler name such as "esr_el1").
#define PAGODA_READ_SYSREG(reg)                         \
  ({                                                    \
    ::pagoda::u64 _pagoda_value;                        \
    asm volatile("mrs %0, " reg : "=r"(_pagoda_value)); \
    _pagoda_value;                                      \
  })
/// Writes @p value to the system register named @p reg.
#define PAGODA_WRITE_SYSREG(reg, value) asm volatile("msr " reg ", %0" ::"r"(::pagoda::u64(value)) : "memory")

inline void isb() { asm volatile("isb" ::: "memory"); }
/// Waits until every earlier memory access and table write is visible to the whole
/// inner-shareable domain (other cores and their table walkers).
inline void dsb_ish() { asm volatile("dsb ish" ::: "memory"); }
inline void dsb_ishst() { asm volatile("dsb ishst" ::: "memory"); }

inline void irq_enable() { asm volatile("msr daifclr, #2" ::: "memory"); }
inline void irq_disable() { asm volatile("msr daifset, #2" ::: "memory"); }
inline void wfi() { asm volatile("wfi" ::: "memory"); }

inline u64 current_el() { return (PAGODA_READ_SYSREG("CurrentEL") >> 2) & 3; }

/// @name Translation registers (their layouts are drawn in the page-table format header)
/// @{
inline constexpr u64 kTtbrBaseMask = 0x0000'ffff'ffff'fffeull;  ///< BADDR, bits 47:1
inline constexpr u32 kTtbrAsidShift = 48;
inline constexpr u64 kSctlrMmu = 1u << 0;
inline constexpr u64 kSctlrWxn = 1u << 19;
inline constexpr u64 kPstatePan = 1u << 22;
inline constexpr u32 kIdMmfr1PanShift = 20;
/// @}

/// The PAN register (S3_0_C4_C2_3, named by encoding so that an ARMv8.0 assembler takes it).
inline u64 read_pan() { return PAGODA_READ_SYSREG("s3_0_c4_c2_3"); }
inline bool cpu_has_pan() { return ((PAGODA_READ_SYSREG("id_aa64mmfr1_el1") >> kIdMmfr1PanShift) & 0xf) != 0; }

}  // namespace pagoda::aarch64
