/// @file ioapic.hpp
/// @brief The I/O APICs of QEMU's microvm: routing a device's interrupt line (a GSI) to a
/// vector on one CPU.
///
/// microvm has one I/O APIC at 0xfec00000 for GSIs 0-23 and, with ACPI on and `ioapic2` not
/// off (QEMU's default since 6.1), a second at 0xfec10000 for GSIs 24-47, where its 24
/// virtio-mmio transports' lines are (transport i, at 0xfeb00000 + 512 i, on GSI 24 + i).
/// Nothing else of the I/O APICs is used: the legacy PICs stay masked, every other pin stays
/// as QEMU resets it (masked).
#pragma once

#include "lib/types.hpp"

namespace pagoda::x86 {

/// The first GSI of microvm's second I/O APIC: its virtio-mmio transports' lines start here.
inline constexpr u32 kMicrovmVirtioGsiBase = 24;

/// Routes GSI @p gsi, a level-triggered, active-high line, to @p vector on the CPU whose APIC
/// ID is @p apic_id (fixed delivery, physical destination), unmasked. Reached through the boot
/// map's device area: call it before vm::init() (the line needs no register access after, the
/// LAPIC's EOI ends a level-triggered interrupt at the I/O APIC too). False, with nothing
/// written, when no I/O APIC of the machine has that GSI (the second one is absent, or has
/// fewer pins).
[[nodiscard]] bool ioapic_route(u32 gsi, u8 vector, u32 apic_id);

}  // namespace pagoda::x86
