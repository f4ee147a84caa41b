// The x86_64 side of dev/platform.hpp: QEMU microvm's virtio-mmio transports, device register
// access, DMA ordering and the transports' interrupts (through the I/O APIC, ioapic.hpp).
// (add_device_range() is in mmu.cpp, beside the list it adds to.)
#include "arch/x86_64/cpu.hpp"
#include "arch/x86_64/ioapic.hpp"
#include "arch/x86_64/lapic.hpp"
#include "arch/x86_64/traps.hpp"
#include "core/stop.hpp"
#include "dev/platform.hpp"

namespace pagoda::arch {
namespace {

/// microvm's virtio-mmio transports: 512 bytes each from 0xfeb00000, 24 of them with its second
/// I/O APIC (QEMU's default since 6.1; 8 without it). QEMU gives the first -device the highest
/// one, so they are listed from the top down. Probing one that a QEMU does not have reads
/// unassigned memory (zeros), which no magic matches.
constexpr u64 kVirtioMmioBase = 0xfeb0'0000;
constexpr u64 kVirtioMmioSize = 0x200;
constexpr usize kVirtioMmioCount = 24;

struct Transports {
  PhysRange ranges[kVirtioMmioCount];
  constexpr Transports() {
    for (usize i = 0; i < kVirtioMmioCount; ++i)
      ranges[i] = {PhysAddr(kVirtioMmioBase + (kVirtioMmioCount - 1 - i) * kVirtioMmioSize), kVirtioMmioSize};
  }
};
constexpr Transports kTransports;

DeviceInterruptHandler g_device_handler = nullptr;

void on_device_interrupt(x86::TrapFrame&) {
  g_device_handler();
  x86::lapic_eoi();
}

}  // namespace

Span<const PhysRange> virtio_mmio_transports() { return {kTransports.ranges, kVirtioMmioCount}; }

// x86 keeps this CPU's stores in order, and its loads in order, and device registers are mapped
// uncached (never combined or reordered): the compiler is all that must be held back.
u32 mmio_read32(uptr address) {
  asm volatile("" ::: "memory");
  return *reinterpret_cast<const volatile u32*>(address);
}

void mmio_write32(uptr address, u32 value) {
  asm volatile("" ::: "memory");
  *reinterpret_cast<volatile u32*>(address) = value;
}

void dma_barrier() { asm volatile("" ::: "memory"); }

bool route_device_interrupt(PhysRange transport, DeviceInterruptHandler handler) {
  const u64 base = transport.base.value();
  if (g_device_handler != nullptr || base < kVirtioMmioBase || (base - kVirtioMmioBase) % kVirtioMmioSize != 0 ||
      (base - kVirtioMmioBase) / kVirtioMmioSize >= kVirtioMmioCount)
    return false;
  // Transport i's line is GSI 24 + i, on the second I/O APIC (ioapic.hpp); the boot CPU's
  // APIC ID from CPUID (its LAPIC is not enabled yet).
  const u32 gsi = x86::kMicrovmVirtioGsiBase + u32((base - kVirtioMmioBase) / kVirtioMmioSize);
  const u32 boot_apic_id = x86::cpuid(1).ebx >> 24;
  g_device_handler = handler;
  x86::set_irq_handler(x86::kDeviceVector, on_device_interrupt);
  if (x86::ioapic_route(gsi, x86::kDeviceVector, boot_apic_id)) return true;
  x86::set_irq_handler(x86::kDeviceVector, nullptr);
  g_device_handler = nullptr;
  return false;
}

bool device_interrupts_ready() { return x86::lapic_ready(); }

[[PAGODA_STOP(wait_for_device)]] void wait_for_device() { asm volatile("sti; hlt; cli" ::: "memory"); }

u64 device_clock() {
  u32 lo, hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (u64(hi) << 32) | lo;
}

}  // namespace pagoda::arch
