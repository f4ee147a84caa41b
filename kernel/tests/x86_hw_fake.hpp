// The host's stand-in for the x86_64 MMU instructions (arch/x86_64/mmu_hw.hpp): a CR3 register
// and a log of what was asked, so that the address-space tests see every root switch and
// invalidation; and the critical ranges the pre-switch check asks the arch for (mm/space/mmu.hpp).
#pragma once

#include <string>
#include <vector>

#include "mm/base/addr.hpp"
#include "mm/space/critical_ranges.hpp"

namespace pagoda::x86::hw::fake {

struct Cpu {
  PhysAddr cr3;
  std::vector<std::string> log;  ///< "load 0x...", "invlpg 0x...", "flush", "flush global"
  /// What arch::critical_ranges() reports (none by default: activate() checks only the half).
  std::vector<CriticalRange> critical;
  /// What arch::switch_stacks() reports (no known stack by default: every switch walks).
  SwitchStacks stacks;
};

/// The simulated CPU (reset it in each test).
Cpu& cpu();

}  // namespace pagoda::x86::hw::fake
