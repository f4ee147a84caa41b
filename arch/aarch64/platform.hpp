/// @file platform.hpp
/// @brief What the AArch64 boot path learns about the machine, for the drivers after it.
#pragma once

#include "arch/aarch64/fdt.hpp"
#include "arch/aarch64/trap_frame.hpp"

namespace pagoda::aarch64 {

/// Records the devices the device tree described (start.cpp, once).
void set_platform_devices(const PlatformDevices& devices);
/// The devices the device tree described.
const PlatformDevices& platform_devices();

/// A pointer to physical memory [pa, pa + size) through the boot stub's window onto RAM (in
/// TTBR1, never the identity), or nullptr outside it. Only while TTBR1 holds the boot map
/// (before the kernel's own tables).
void* boot_window_ptr(PhysAddr pa, usize size);

/// True when @p frame is shutdown()'s semihosting call trapping as an undefined instruction
/// (QEMU without -semihosting): the frame then resumes after it, and shutdown() powers off
/// through PSCI instead.
bool semihosting_trapped(TrapFrame& frame);

/// Before .bss is cleared (boot.S): writes "PANIC: @p line" straight to the boot UART
/// (PL011_BASE, through the boot stub's identity map) and exits QEMU with the failure status.
/// Touches no global state.
[[noreturn]] void boot_stop(StringView line);

}  // namespace pagoda::aarch64
