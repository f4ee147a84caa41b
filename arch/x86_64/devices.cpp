// The x86_64 side of dev/platform.hpp: QEMU microvm's virtio-mmio transports, device register
// access and DMA ordering. (add_device_range() is in mmu.cpp, beside the list it adds to.)
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

}  // namespace pagoda::arch
