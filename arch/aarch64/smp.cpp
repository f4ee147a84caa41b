// Secondary CPUs on AArch64: the device tree lists them (fdt.cpp), PSCI CPU_ON starts them (by
// HVC, the conduit QEMU's virt names) at smp.S, and the per-CPU side of core/arch.hpp.
//
//   PSCI CPU_ON (SMC64 function 0xC4000003): x1 the target's MPIDR affinity, x2 the PHYSICAL
//   entry address, x3 a context id handed to the new CPU in x0; returns 0 (SUCCESS) or a
//   negative error (-4 ALREADY_ON, -2 INVALID_PARAMETERS, ...) in x0.
#include "arch/aarch64/boot_defs.h"
#include "arch/aarch64/cpu.hpp"
#include "arch/aarch64/gic.hpp"
#include "arch/aarch64/platform.hpp"
#include "arch/aarch64/timer.hpp"
#include "arch_impl/address_space.hpp"
#include "core/arch.hpp"
#include "core/cpu.hpp"
#include "core/panic.hpp"
#include "lib/facts.hpp"

extern "C" char aarch64_secondary_entry[], __kernel_virt_offset[];

/// What smp.S reads, first through its physical address (MMU off), then its high one (its fields
/// in this order; take_own_state() alone reads cntkctl).
struct SecondaryParams {
  pagoda::u64 mair, tcr, identity, ttbr1, sctlr, stack, ttbr0, cpu, cntkctl;
};
extern "C" constinit SecondaryParams aarch64_secondary_params = {};

namespace pagoda::aarch64 {

// The user ASIDs a generation hands out (1 .. kAsids - 1): lab 8's grader makes that many spaces
// to force a rollover.
PAGODA_FACT(user_asids, Aarch64AddressSpace::kAsids - 1)

namespace {

constexpr u64 kPsciCpuOn = 0xC4000003;
constexpr u64 kMpidrAffinity = 0xff00ffffffull;  // Aff3, Aff2, Aff1, Aff0

/// The temporary identity a secondary CPU turns its MMU on in: L0[0] -> L1, one 1 GiB block over
/// the RAM smp.S is in, read-only and executable at EL1.
alignas(AARCH64_PAGE_SIZE) u64 g_identity_l0[AARCH64_ENTRIES_PER_TABLE];
alignas(AARCH64_PAGE_SIZE) u64 g_identity_l1[AARCH64_ENTRIES_PER_TABLE];

u64 image_phys(const void* p) { return reinterpret_cast<u64>(p) - reinterpret_cast<u64>(__kernel_virt_offset); }

/// Writes [p, p + size) back to the point of coherency: the new CPU reads it with its caches off.
void clean_to_poc(const void* p, usize size) {
  const u64 line = 4u << ((PAGODA_READ_SYSREG("ctr_el0") >> 16) & 0xf);
  for (u64 a = reinterpret_cast<u64>(p) & ~(line - 1); a < reinterpret_cast<u64>(p) + size; a += line)
    asm volatile("dc cvac, %0" ::"r"(a) : "memory");
  dsb_ish();
}

i64 psci_cpu_on(u64 mpidr, u64 entry, u64 context) {
  register u64 x0 asm("x0") = kPsciCpuOn;
  register u64 x1 asm("x1") = mpidr;
  register u64 x2 asm("x2") = entry;
  register u64 x3 asm("x3") = context;
  asm volatile("hvc #0" : "+r"(x0) : "r"(x1), "r"(x2), "r"(x3) : "memory");
  return i64(x0);
}

}  // namespace

/// What secondary CPU @p cpu owns, set up on it before it runs anything (IRQs masked): its
/// per-CPU slot (TPIDRRO_EL0 = @p cpu * arch::kCpuSlotStride: the slot of aarch64_user_trap_sp
/// its exceptions from EL0 take SP_EL1 from, vectors.S, and its PerCpu data), the boot CPU's
/// protections (SCTLR_EL1 as aarch64_secondary_params.sctlr holds it: WXN on, SPAN clear, so
/// every exception sets PSTATE.PAN; and PSTATE.PAN now), the boot CPU's CNTKCTL_EL1 (EL0 reads
/// the virtual counter: user/lib's cycle counter), its GIC CPU interface with the IPI's SGI, and
/// its own virtual timer at the boot CPU's rate.
void take_own_state(u32 cpu) {
  // LAB 8 BEGIN this CPU's own slot (its trap stack), its protections, its GIC interface and timer
  PAGODA_WRITE_SYSREG("tpidrro_el0", u64(cpu) * arch::kCpuSlotStride);
  PAGODA_WRITE_SYSREG("sctlr_el1", aarch64_secondary_params.sctlr);
  PAGODA_WRITE_SYSREG("cntkctl_el1", aarch64_secondary_params.cntkctl);
  isb();
  arch::invalidate_all_local();  // (a TLB entry may hold the WXN it was filled under)
  asm volatile("msr s3_0_c4_c2_3, %0" ::"r"(kPstatePan) : "memory");  // PSTATE.PAN
  gic_init_cpu();
  gic_enable_banked(kIpiSgi);
  timer_init_secondary(platform_devices().timer_virtual_intid);
  // LAB 8 SKELETON
  // (void)cpu;
  // panic("lab 8: write take_own_state() in arch/aarch64/smp.cpp (labs/08-smp/README.md)");
  // LAB 8 END
}
}  // namespace pagoda::aarch64

/// Where smp.S calls, on the CPU's own stack with the kernel's roots, the MMU on and no
/// protections yet: what this CPU owns (take_own_state()), then the idle loop.
extern "C" [[noreturn]] void aarch64_secondary_start(pagoda::u32 cpu) {
  using namespace pagoda;
  using namespace pagoda::aarch64;
  take_own_state(cpu);
  cpu_secondary_main(cpu);
}

namespace pagoda::arch {

using namespace aarch64;

void cpu_relax() { asm volatile("yield" ::: "memory"); }

bool interrupts_save() {
  const bool enabled = (PAGODA_READ_SYSREG("daif") & (1u << 7)) == 0;  // DAIF.I
  irq_disable();
  return enabled;
}

void interrupts_restore(bool enabled) {
  if (enabled) irq_enable();
}

u32 cpu_id() {
  const PlatformDevices& d = platform_devices();
  const u64 me = PAGODA_READ_SYSREG("mpidr_el1") & kMpidrAffinity;
  for (u32 i = 0; i < d.cpu_count && i < kMaxCpus; ++i)
    if (d.cpu_mpidr[i] == me) return i;
  return 0;
}

u32 cpus_present() {
  const usize n = platform_devices().cpu_count;
  return n == 0 ? 1 : u32(min(n, usize(kMaxCpus)));
}

bool start_cpu(u32 id, uptr stack_top) {
  if (id == 0 || id >= cpus_present()) return false;
  // The identity of the GiB smp.S runs in before its MMU is on.
  const u64 entry = image_phys(aarch64_secondary_entry);
  const u64 gib = entry >> AARCH64_L1_BLOCK_SHIFT;
  for (u64& e : g_identity_l0) e = 0;
  for (u64& e : g_identity_l1) e = 0;
  g_identity_l0[0] = image_phys(g_identity_l1) | AARCH64_DESC_VALID | AARCH64_DESC_TABLE;
  g_identity_l1[gib] = (gib << AARCH64_L1_BLOCK_SHIFT) | AARCH64_DESC_VALID |
                       (AARCH64_ATTR_NORMAL << AARCH64_DESC_ATTR_SHIFT) | AARCH64_DESC_SH_INNER | AARCH64_DESC_AF |
                       AARCH64_DESC_AP_RO | (u64{1} << AARCH64_DESC_UXN_BIT);
  aarch64_secondary_params = {
      .mair = PAGODA_READ_SYSREG("mair_el1"),
      .tcr = PAGODA_READ_SYSREG("tcr_el1"),
      .identity = image_phys(g_identity_l0),
      .ttbr1 = PAGODA_READ_SYSREG("ttbr1_el1"),
      .sctlr = PAGODA_READ_SYSREG("sctlr_el1"),
      .stack = stack_top,
      .ttbr0 = PAGODA_READ_SYSREG("ttbr0_el1"),
      .cpu = id,
      .cntkctl = PAGODA_READ_SYSREG("cntkctl_el1"),
  };
  clean_to_poc(&aarch64_secondary_params, sizeof aarch64_secondary_params);
  clean_to_poc(g_identity_l0, sizeof g_identity_l0);
  clean_to_poc(g_identity_l1, sizeof g_identity_l1);
  return psci_cpu_on(platform_devices().cpu_mpidr[id], entry, image_phys(&aarch64_secondary_params)) == 0;
}

void invalidate_page_local(uptr va) {
  // VA[55:12] in bits 43:0, every ASID; no IS: this CPU's TLB alone.
  asm volatile("tlbi vaae1, %0\n dsb nsh\n isb" ::"r"((va >> AARCH64_PAGE_SHIFT) & ((u64{1} << 44) - 1)) : "memory");
}

void invalidate_all_local() { asm volatile("tlbi vmalle1\n dsb nsh\n isb" ::: "memory"); }

void send_ipi(u32 id) {
  if (id < cpus_present()) gic_send_sgi(id, kIpiSgi);
}

}  // namespace pagoda::arch
