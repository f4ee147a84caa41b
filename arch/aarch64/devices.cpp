// The AArch64 side of dev/platform.hpp: the virtio-mmio transports the device tree lists, device
// register access and DMA ordering. (add_device_range() is in mmu.cpp, beside the list it adds
// to.)
#include "arch/aarch64/platform.hpp"
#include "dev/platform.hpp"

namespace pagoda::arch {

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

}  // namespace pagoda::arch
