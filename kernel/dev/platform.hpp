/// @file platform.hpp
/// @brief What the device drivers of kernel/dev/ need from the arch: where the machine's
/// virtio-mmio transports are, how device registers are read and written, how the CPU's
/// writes to memory a device reads by DMA are ordered, and how a device's interrupt reaches
/// its driver while the CPU waits for it.
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

/// What a device's interrupt calls (route_device_interrupt()); runs with interrupts disabled,
/// on the CPU the line is routed to. The arch ends the interrupt at its controller after it.
using DeviceInterruptHandler = void (*)();

/// Routes the interrupt line of the virtio-mmio transport @p transport (one of
/// virtio_mmio_transports()) to @p handler on the boot CPU (CPU 0), enabled: x86_64 through
/// microvm's I/O APIC, AArch64 as the GIC SPI the device tree gives the transport. Once per
/// transport, before vm::init(). False, with nothing changed, when the arch has no route for
/// it (the driver then polls).
[[nodiscard]] bool route_device_interrupt(PhysRange transport, DeviceInterruptHandler handler);

/// Whether a driver may halt for a routed device interrupt now: once timer_init() has run (on
/// x86_64 it enables the LAPIC, without which no interrupt reaches the CPU; on both the tick
/// then ends a halt that no device ends, so a wait can give up). Before, a driver polls.
bool device_interrupts_ready();

/// Called with interrupts disabled, after the caller saw that what it waits for has not
/// happened yet: halts the CPU until an interrupt is pending, lets its handler run, and returns
/// with interrupts disabled again (x86_64 `sti; hlt; cli`: STI's one-instruction shadow keeps
/// an interrupt from arriving before HLT; AArch64 `wfi` with IRQs masked, which a pending IRQ
/// still wakes, then unmasked and masked again). No interrupt that becomes pending after the
/// caller's check is lost: it ends the halt. The caller checks again, in a loop.
void wait_for_device();

/// The cycle counter in the user programs' counts (user/lib: x86_64 RDTSC, AArch64 CNTVCT_EL0
/// in nanoseconds); under QEMU's `-icount shift=0` one count is one guest instruction, or a
/// nanosecond of the host's time while the CPU is halted.
u64 device_clock();

}  // namespace pagoda::arch
