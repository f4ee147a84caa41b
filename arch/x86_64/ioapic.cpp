// microvm's I/O APICs: one redirection entry written per routed line (see ioapic.hpp).
//
//   I/O APIC registers (indirect: write the index to IOREGSEL, then read or write IOWIN)
//   0x00 IOREGSEL   0x10 IOWIN
//   index 0x01 version     bits 23:16: the highest redirection entry (pins - 1), 7:0 version
//   index 0x10 + 2n        redirection entry n, low half: bits 7:0 vector, 10:8 delivery mode
//                          (000 fixed), bit 11 destination mode (0 physical), bit 13 polarity
//                          (0 active high), bit 14 remote IRR, bit 15 trigger (1 level),
//                          bit 16 mask
//   index 0x11 + 2n        high half: bits 31:24 the destination APIC ID
#include "arch/x86_64/ioapic.hpp"

#include "mm/base/layout.hpp"

namespace pagoda::x86 {
namespace {

/// microvm's I/O APICs: where each one's registers are and its first GSI.
struct IoApic {
  u64 base;
  u32 first_gsi;
};
constexpr IoApic kIoApics[] = {{0xfec0'0000, 0}, {0xfec1'0000, kMicrovmVirtioGsiBase}};

constexpr u32 kRegSelect = 0x00, kRegWindow = 0x10;
constexpr u32 kIndexVersion = 0x01, kIndexRedirection = 0x10;
constexpr u32 kLevelTriggered = 1u << 15;

volatile u32* reg(const IoApic& a, u32 offset) {
  return reinterpret_cast<volatile u32*>(layout::kMmioBase + a.base + offset);
}
u32 read(const IoApic& a, u32 index) {
  *reg(a, kRegSelect) = index;
  return *reg(a, kRegWindow);
}
void write(const IoApic& a, u32 index, u32 value) {
  *reg(a, kRegSelect) = index;
  *reg(a, kRegWindow) = value;
}

}  // namespace

bool ioapic_route(u32 gsi, u8 vector, u32 apic_id) {
  for (const IoApic& a : kIoApics) {
    if (gsi < a.first_gsi) continue;
    const u32 pin = gsi - a.first_gsi;
    // An absent I/O APIC reads as unassigned memory (zeros): no version, no pins.
    const u32 version = read(a, kIndexVersion);
    if ((version & 0xff) == 0 || pin > ((version >> 16) & 0xff)) continue;
    // The high half first: the entry is unmasked only once its destination is right.
    write(a, kIndexRedirection + 2 * pin + 1, apic_id << 24);
    write(a, kIndexRedirection + 2 * pin, kLevelTriggered | vector);
    return true;
  }
  return false;
}

}  // namespace pagoda::x86
