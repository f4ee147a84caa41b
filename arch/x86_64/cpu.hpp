/// @file cpu.hpp
/// @brief x86_64 instructions the kernel needs, as inline functions: port I/O, MSRs, control
/// registers, interrupts.
#pragma once

#include "lib/types.hpp"

namespace pagoda::x86 {

inline void outb(u16 port, u8 value) { asm volatile("outb %0, %1" ::"a"(value), "Nd"(port)); }
inline void outl(u16 port, u32 value) { asm volatile("outl %0, %1" ::"a"(value), "Nd"(port)); }
inline u8 inb(u16 port) {
  u8 value;
  asm volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
  return value;
}

inline u64 rdmsr(u32 msr) {
  u32 lo, hi;
  asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return (u64(hi) << 32) | lo;
}
inline void wrmsr(u32 msr, u64 value) { asm volatile("wrmsr" ::"c"(msr), "a"(u32(value)), "d"(u32(value >> 32))); }

inline u64 read_cr0() {
  u64 v;
  asm volatile("mov %%cr0, %0" : "=r"(v));
  return v;
}
inline u64 read_cr2() {
  u64 v;
  asm volatile("mov %%cr2, %0" : "=r"(v));
  return v;
}
inline u64 read_cr3() {
  u64 v;
  asm volatile("mov %%cr3, %0" : "=r"(v));
  return v;
}
inline u64 read_cr4() {
  u64 v;
  asm volatile("mov %%cr4, %0" : "=r"(v));
  return v;
}

inline void cli() { asm volatile("cli" ::: "memory"); }
inline void sti() { asm volatile("sti" ::: "memory"); }
inline void hlt() { asm volatile("hlt" ::: "memory"); }
inline void pause() { asm volatile("pause"); }

inline u64 read_rflags() {
  u64 v;
  asm volatile("pushfq; popq %0" : "=r"(v));
  return v;
}

struct CpuidResult {
  u32 eax, ebx, ecx, edx;
};
inline CpuidResult cpuid(u32 leaf, u32 subleaf = 0) {
  CpuidResult r;
  asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
  return r;
}

/// The CPU's physical address width, MAXPHYADDR: CPUID 0x80000008 EAX[7:0], or 36 when the CPU
/// has no such leaf (Intel SDM Vol. 3A, 4.1.4).
inline u32 physical_address_bits() {
  constexpr u32 kAddressSizes = 0x8000'0008;
  if (cpuid(0x8000'0000).eax < kAddressSizes) return 36;
  return cpuid(kAddressSizes).eax & 0xff;
}

inline constexpr u32 kMsrApicBase = 0x1B;
inline constexpr u32 kMsrEfer = 0xC0000080;
inline constexpr u64 kRflagsIf = 1u << 9;
/// RFLAGS.AC: with SMAP on, the kernel may touch user pages only while it is set (STAC/CLAC).
inline constexpr u64 kRflagsAc = 1u << 18;

}  // namespace pagoda::x86
