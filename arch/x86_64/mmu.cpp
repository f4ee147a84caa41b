// x86_64 MMU control: CR3, INVLPG, and what the boot stub leaves behind.
#include "arch/x86_64/boot_defs.h"
#include "arch/x86_64/cpu.hpp"
#include "arch_impl/page_table_format.hpp"
#include "core/arch.hpp"
#include "mm/layout.hpp"

extern "C" char boot_tables_start[], boot_tables_end[];

namespace pagoda::arch {

// The boot stub (boot.S) maps the window and the kernel image before the C++ runs; its slots
// must be where kernel/mm/layout.hpp says those areas are.
static_assert(PageTableFormat::index(VirtAddr(layout::kWindowBase), 0) == BOOT_WINDOW_PML4_INDEX);
static_assert(PageTableFormat::index(VirtAddr(layout::kKernelImageBase), 0) == BOOT_KERNEL_PML4_INDEX);
static_assert(PageTableFormat::index(VirtAddr(layout::kKernelImageBase), 1) == BOOT_KERNEL_PDPT_INDEX);

namespace {

constexpr u64 kCr3AddressMask = 0x000f'ffff'ffff'f000ull;
constexpr u64 kCr0WriteProtect = 1u << 16;
constexpr u64 kEferNoExecuteEnable = 1u << 11;
/// The local APIC's registers (one page); where IA32_APIC_BASE points after reset.
constexpr u64 kLapicBase = 0xfee0'0000;

class X86Tlb final : public TlbInvalidator {
 public:
  void invalidate_page(VirtAddr va) override {
    asm volatile("invlpg (%0)" ::"r"(va.value()) : "memory");
  }
  void invalidate_all() override { asm volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory"); }
};

constinit X86Tlb g_tlb;
constinit PhysRange g_devices[] = {{PhysAddr(kLapicBase), 4 * KiB}};

}  // namespace

PhysAddr active_root() { return PhysAddr(x86::read_cr3() & kCr3AddressMask); }

void activate_root(PhysAddr root) { asm volatile("mov %0, %%cr3" ::"r"(root.value()) : "memory"); }

TlbInvalidator& tlb() { return g_tlb; }

Span<const PhysRange> device_ranges() { return {g_devices, array_size(g_devices)}; }

PhysRange boot_page_tables() {
  const u64 start = reinterpret_cast<u64>(boot_tables_start);
  return {PhysAddr(start), reinterpret_cast<u64>(boot_tables_end) - start};
}

bool paging_controls_ok(FormatSink& sink) {
  const bool nx = x86::rdmsr(x86::kMsrEfer) & kEferNoExecuteEnable;
  const bool wp = x86::read_cr0() & kCr0WriteProtect;
  format_to(sink, "EFER.NXE {}, CR0.WP {}", nx ? "on" : "OFF", wp ? "on" : "OFF");
  return nx && wp;
}

}  // namespace pagoda::arch
