/// @file smp.hpp
/// @brief The CPUs the firmware lists (ACPI's MADT), for arch::start_cpu() (smp.cpp).
#pragma once

#include "boot/bootinfo.hpp"

namespace pagoda::x86 {

/// Reads the MADT through the boot window (before the kernel's own root) and keeps the APIC IDs
/// of up to kMaxCpus CPUs. With more than one, and the trampoline's page free RAM in @p boot's
/// map, adds that page to the device ranges the kernel maps (before vm::init); otherwise
/// arch::cpus_present() stays 1.
void smp_discover(const BootInfo& boot);

}  // namespace pagoda::x86
