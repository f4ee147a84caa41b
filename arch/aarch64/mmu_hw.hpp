/// @file mmu_hw.hpp
/// @brief The AArch64 MMU instructions the address-space code uses, as a link-time seam.
///
/// arch/aarch64/mmu.cpp implements them with the TTBRs, SCTLR_EL1 and TLBI; the host tests link
/// a recording fake instead (kernel/tests/aarch64_hw_fake.cpp), so that the address-space logic
/// (arch/aarch64/address_space.cpp) runs on the build machine unchanged.
#pragma once

#include "mm/base/addr.hpp"

namespace pagoda::aarch64::hw {

/// What TTBR0_EL1 holds: the lower half's root and the ASID every non-global translation is
/// tagged with (TCR_EL1.A1 = 0: the ASID comes from TTBR0).
struct Ttbr0 {
  PhysAddr root;
  u16 asid = 0;
};

Ttbr0 read_ttbr0();
/// TTBR1_EL1's root: the kernel half's.
PhysAddr read_ttbr1();
/// The kernel's switch from the boot tables: TTBR1 = @p kernel_root, TTBR0 = @p lower_root with
/// ASID 0, SCTLR_EL1.WXN on (the boot map was writable and executable at once; the kernel's
/// own tables never are), every TLB entry dropped.
void load_kernel_roots(PhysAddr kernel_root, PhysAddr lower_root);
/// A process's switch: TTBR0 = @p root tagged with @p asid. No invalidation: the ASID keeps
/// other spaces' translations apart.
void load_ttbr0(PhysAddr root, u16 asid);
/// TTBR0 = @p empty_root (a lower half that maps nothing) under the ASID TTBR0 already holds:
/// nothing can be cached through it, and the TLB keeps what that ASID tags, on hardware as
/// under QEMU (which drops a vCPU's whole TLB when TTBR0's ASID changes, where hardware keeps
/// every ASID's entries). A CPU leaving a root it idled in (lab 8's lazy TLB) does this.
void load_empty_ttbr0(PhysAddr empty_root);
/// TTBR1 = @p root, every TLB entry dropped (the kernel half's translations are global): what
/// a space with a TTBR1 tree other than the kernel's does at its switch.
void load_ttbr1(PhysAddr root);
/// DSB ISHST: earlier table writes are visible to every table walker before what follows.
void write_barrier();
/// TLBI VAAE1IS: @p va's translations (and walks through its tables) under every ASID.
void invalidate_va_all_asids(VirtAddr va);
/// TLBI VAE1IS: @p va's non-global translations under @p asid (and walks through its tables).
void invalidate_va(VirtAddr va, u16 asid);
/// TLBI VAE1: the same in this CPU's TLB alone (not broadcast: the other CPUs keep theirs).
void invalidate_va_local(VirtAddr va, u16 asid);
/// TLBI ASIDE1: every non-global translation tagged with @p asid, in this CPU's TLB alone (the
/// other CPUs keep theirs): this CPU no longer caches @p asid (asid_may_be_cached()).
void invalidate_asid(u16 asid);
/// TLBI ASIDE1IS as a batch's full flush of a space that goes on (live or not): the same
/// invalidation, but @p asid stays marked as maybe cached (asid_may_be_cached()) until the
/// space's end drops it with invalidate_asid(). Whether a freed ASID was dropped then depends on
/// that end alone, not on how many pages a teardown's batch happened to unmap.
void flush_asid(u16 asid);
/// TLBI VMALLE1IS: every EL1&0 translation, global ones included.
void invalidate_all();
/// TLBI VMALLE1: every translation in this CPU's TLB alone (the other CPUs keep theirs): this CPU
/// caches no ASID any more (asid_may_be_cached()). Lab 8's ASID rollover has each CPU do it once,
/// at its first switch into the new generation.
void invalidate_all_local();
/// Whether this CPU's TLB may still hold translations tagged with @p asid: its TTBR0 was loaded
/// with it since its last invalidation that reached this CPU (invalidate_asid() here,
/// invalidate_all_local() here, or one of everything anywhere). Each CPU has its own TLB: a
/// freed ASID handed to a new space must not be cached on the CPU that loads it.
bool asid_may_be_cached(u16 asid);

}  // namespace pagoda::aarch64::hw
