/// @file platform.hpp
/// @brief What the device drivers of kernel/dev/ need from the arch: where the machine's
/// virtio-mmio transports are, how device registers are read and written, and how the CPU's
/// writes to memory a device reads by DMA are ordered.
///
/// Implemented by `arch/<isa>/devices.cpp`. How each ISA finds the transports is its own
/// business: x86_64's `microvm` has them at fixed addresses (the driver probes each), AArch64's
/// `virt` lists them in the device tree (docs/boot.md, "The swap disk").
#pragma once

#include "lib/result.hpp"
#include "lib/types.hpp"
#include "mm/base/addr.hpp"

namespace pagoda::arch {

/// The register windows of the machine's virtio-mmio transports, in the order the kernel probes
/// them: the transport QEMU gives its first `-device` comes first. Empty when the machine has
/// none. Valid from kmain() on.
Span<const PhysRange> virtio_mmio_transports();

/// Adds the device registers @p range to those the kernel maps uncached in its own address
/// space (device_ranges(), mm/space/mmu.hpp): a driver found a device there. Must be called
/// before vm::init() builds the kernel's map; Overflow when the arch's list of devices is full.
[[nodiscard]] Result<void> add_device_range(PhysRange range);

/// Reads the 32-bit device register at kernel address @p address (uncached device memory),
/// after every earlier access of this CPU to memory and devices is done.
u32 mmio_read32(uptr address);

/// Writes @p value to the 32-bit device register at kernel address @p address, after every
/// earlier write of this CPU to memory is visible to devices (so that a device told to look at
/// a queue by this write sees what was put there before).
void mmio_write32(uptr address, u32 value);

/// Orders this CPU's accesses to memory a device reads or writes by DMA: every access before it
/// is done, as a device sees it, before any access after it.
void dma_barrier();

}  // namespace pagoda::arch
