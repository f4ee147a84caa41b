// The AArch64 side of dev/platform.hpp: the virtio-mmio transports the device tree lists, device
// register access, DMA ordering and the transports' interrupts (GIC SPIs). (add_device_range()
// is in mmu.cpp, beside the list it adds to.)
#include "arch/aarch64/cpu.hpp"
#include "arch/aarch64/gic.hpp"
#include "arch/aarch64/platform.hpp"
#include "arch/aarch64/timer.hpp"
#include "core/stop.hpp"
#include "dev/platform.hpp"

namespace pagoda::arch {
namespace {

/// INTIDs from here on are SPIs: a device's lines (below are the banked SGIs and PPIs).
constexpr u32 kFirstSpiIntid = 32;

DeviceInterruptHandler g_device_handler = nullptr;

}  // namespace

Span<const PhysRange> virtio_mmio_transports() {
  const aarch64::PlatformDevices& d = aarch64::platform_devices();
  return {d.virtio_mmio, d.virtio_mmio_count};
}

// Device registers are Device-nGnRnE memory (ordered among themselves); the queue and the frames
// are normal memory. `dmb osh` orders both kinds as every observer in the outer-shareable
// domain sees them, devices doing DMA included: what is written to memory before a device is
// told about it, and what a device wrote before the driver saw it say so.
u32 mmio_read32(uptr address) {
  asm volatile("dmb osh" ::: "memory");
  return *reinterpret_cast<const volatile u32*>(address);
}

void mmio_write32(uptr address, u32 value) {
  asm volatile("dmb osh" ::: "memory");
  *reinterpret_cast<volatile u32*>(address) = value;
}

void dma_barrier() { asm volatile("dmb osh" ::: "memory"); }

// gic_handle_irq() ends the interrupt after the handler (which has acknowledged it at the
// device, so the level-sensitive line is low by then).
bool route_device_interrupt(PhysRange transport, DeviceInterruptHandler handler) {
  const aarch64::PlatformDevices& d = aarch64::platform_devices();
  if (g_device_handler != nullptr || d.gic_distributor == PhysAddr()) return false;
  for (usize i = 0; i < d.virtio_mmio_count; ++i) {
    const u32 intid = d.virtio_mmio_intid[i];
    if (d.virtio_mmio[i].base != transport.base || intid < kFirstSpiIntid || intid >= aarch64::kMaxIntid) continue;
    g_device_handler = handler;
    aarch64::gic_enable(intid, [](aarch64::TrapFrame&) { g_device_handler(); });
    return true;
  }
  return false;
}

bool device_interrupts_ready() { return aarch64::timer_running(); }

// WFI wakes on a pending IRQ even while PSTATE.I masks it; unmasking then takes it.
[[PAGODA_STOP(wait_for_device)]] void wait_for_device() {
  asm volatile("wfi; msr daifclr, #2; isb; msr daifset, #2" ::: "memory");
}

u64 device_clock() {
  aarch64::isb();
  const u64 count = PAGODA_READ_SYSREG("cntvct_el0"), frequency = PAGODA_READ_SYSREG("cntfrq_el0");
  if (frequency == 0) return count;
  constexpr u64 kNanosPerSecond = 1'000'000'000;
  return count / frequency * kNanosPerSecond + count % frequency * kNanosPerSecond / frequency;
}

}  // namespace pagoda::arch
