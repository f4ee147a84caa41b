/// @file mmu_hw.hpp
/// @brief The x86_64 MMU instructions the address-space code uses, as a link-time seam.
///
/// arch/x86_64/mmu.cpp implements them with CR3, INVLPG and CR4.PGE; the host tests link a
/// recording fake instead (kernel/tests/x86_hw_fake.cpp), so that the address-space logic
/// (arch/x86_64/address_space.cpp) runs on the build machine unchanged.
#pragma once

#include "mm/base/addr.hpp"

namespace pagoda::x86::hw {

/// The root the CPU translates through now (CR3's address bits).
PhysAddr read_root();
/// Loads @p root into CR3; the CPU drops every non-global TLB entry and walk-cache entry.
void load_root(PhysAddr root);
/// INVLPG @p va: drops its TLB entry (global or not) and every walk-cache entry.
void invalidate_page(VirtAddr va);
/// Drops every non-global TLB entry (a CR3 reload); with @p global, global ones too (CR4.PGE
/// toggled off and on, when it is on).
void flush_tlb(bool global);

}  // namespace pagoda::x86::hw
