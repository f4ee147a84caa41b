// The host's stand-in for the AArch64 MMU instructions (arch/aarch64/mmu_hw.hpp): TTBR0 (root
// and ASID), TTBR1, WXN, and a log of what was asked, so that the address-space tests see every
// switch of roots, barrier and invalidation; and the critical ranges the pre-switch check asks
// the arch for (mm/space/mmu.hpp).
#pragma once

#include <bitset>
#include <string>
#include <vector>

#include "arch/aarch64/mmu_hw.hpp"
#include "arch_impl/address_space.hpp"
#include "mm/space/critical_ranges.hpp"

namespace pagoda::aarch64::hw::fake {

struct Cpu {
  Ttbr0 ttbr0;
  PhysAddr ttbr1;
  bool wxn = false;
  /// "kernel roots 0x.. 0x..", "ttbr0 0x.. asid n", "barrier", "tlbi va 0x.." (every ASID),
  /// "tlbi va 0x.. asid n", "tlbi asid n", "tlbi all"
  std::vector<std::string> log;
  /// What arch::critical_ranges() reports (none by default: activate() checks only the half).
  std::vector<CriticalRange> critical;
  /// What arch::switch_stacks() reports (no known stack by default: every switch walks).
  SwitchStacks stacks;
  /// The ASIDs TTBR0 was loaded with since they were last invalidated (asid_may_be_cached()).
  std::bitset<Aarch64AddressSpace::kAsids> cached_asids;
};

/// The simulated CPU host::g_cpu names (reset it in each test).
Cpu& cpu();

}  // namespace pagoda::aarch64::hw::fake
