// AArch64 MMU control: the translation registers, TLB maintenance, what the boot stub leaves.
//
//   TTBR0_EL1 / TTBR1_EL1                      SCTLR_EL1 (bits Pagoda sets)
//   63     48 47                       1  0    0 M    MMU on          12 I   instruction cache
//   +--------+--------------------------+---+  2 C    data cache      19 WXN writable => never
//   |  ASID  | BADDR: the root table    |CnP|  3 SA   SP alignment          executable
//   +--------+--------------------------+---+  23 SPAN 0: exceptions set PSTATE.PAN
//   TTBR0 translates the lower range (user), TTBR1 the upper (kernel); TCR_EL1 sizes both
//   (T0SZ = T1SZ = 16: 48 bits each) and says how walks are cached (boot_defs.h).
#include "arch/aarch64/boot_defs.h"
#include "arch/aarch64/cpu.hpp"
#include "arch/aarch64/platform.hpp"
#include "arch_impl/page_table_format.hpp"
#include "core/arch.hpp"
#include "mm/layout.hpp"

extern "C" char boot_tables_start[], boot_tables_end[];

namespace pagoda::arch {

// The boot stub (boot.S) maps the kernel image before the C++ runs; its slots must be where
// kernel/mm/layout.hpp says the image is, and its MAIR where the format's AttrIndx points.
static_assert(PageTableFormat::index(VirtAddr(layout::kKernelImageBase), 0) == BOOT_KERNEL_L0_INDEX);
static_assert(PageTableFormat::index(VirtAddr(layout::kKernelImageBase), 1) == BOOT_KERNEL_L1_INDEX);
static_assert(PageTableFormat::kAttrNormal == MAIR_ATTR_NORMAL && PageTableFormat::kAttrDevice == MAIR_ATTR_DEVICE &&
              PageTableFormat::kAttrNormalNonCacheable == MAIR_ATTR_NORMAL_NC);
static_assert(PageTableFormat::entry_span(1) == u64{1} << L1_BLOCK_SHIFT);

namespace {

/// TLB maintenance for this CPU's EL1&0 regime. Every invalidation is preceded by a barrier
/// that makes the table writes visible to the walker, and followed by one that waits for it.
class Aarch64Tlb final : public TlbInvalidator {
 public:
  void invalidate_page(VirtAddr va) override {
    aarch64::dsb_ishst();
    asm volatile("tlbi vaae1is, %0" ::"r"(va.value() >> PageTableFormat::kPageShift) : "memory");
    aarch64::dsb_ish();
    aarch64::isb();
  }
  void invalidate_all() override {
    aarch64::dsb_ishst();
    asm volatile("tlbi vmalle1is" ::: "memory");
    aarch64::dsb_ish();
    aarch64::isb();
  }
};

constinit Aarch64Tlb g_tlb;
constexpr u64 kGicRegisterBytes = 64 * KiB;
PhysRange g_devices[3];

}  // namespace

PhysAddr active_root() {
  // The root that changes per address space: TTBR0 (TTBR1 always holds the kernel's).
  return PhysAddr(PAGODA_READ_SYSREG("ttbr0_el1") & aarch64::kTtbrBaseMask & PageTableFormat::kAddressMask);
}

void activate_root(PhysAddr root) {
  PAGODA_WRITE_SYSREG("ttbr0_el1", root.value());
  aarch64::isb();
  g_tlb.invalidate_all();
}

TlbInvalidator& tlb() { return g_tlb; }

Span<const PhysRange> device_ranges() {
  const aarch64::PlatformDevices& d = aarch64::platform_devices();
  usize n = 0;
  if (d.uart != PhysAddr()) g_devices[n++] = {d.uart, PageTableFormat::kPageSize};
  if (d.gic_distributor != PhysAddr()) g_devices[n++] = {d.gic_distributor, kGicRegisterBytes};
  if (d.gic_cpu != PhysAddr()) g_devices[n++] = {d.gic_cpu, kGicRegisterBytes};
  return {g_devices, n};
}

PhysRange boot_page_tables() {
  const u64 start = reinterpret_cast<u64>(boot_tables_start);
  return {PhysAddr(start), reinterpret_cast<u64>(boot_tables_end) - start};
}

bool paging_controls_ok(FormatSink& sink) {
  const u64 sctlr = PAGODA_READ_SYSREG("sctlr_el1");
  const bool mmu = sctlr & aarch64::kSctlrMmu;
  const bool has_pan = aarch64::cpu_has_pan();
  const bool pan = has_pan && (aarch64::read_pan() & aarch64::kPstatePan);
  format_to(sink, "SCTLR_EL1.M {}, PSTATE.PAN {}, SCTLR_EL1.WXN {}", mmu ? "on" : "OFF",
            pan ? "on" : has_pan ? "OFF" : "ABSENT (this CPU has no PAN)", (sctlr & aarch64::kSctlrWxn) ? "on" : "off");
  return mmu && pan;
}

}  // namespace pagoda::arch
