// x86_64 MMU control: CR3, INVLPG, CR4.PGE (the x86::hw seam of mmu_hw.hpp), the live root,
// and what the boot stub leaves behind (mm/space/mmu.hpp).
#include "arch/x86_64/boot_defs.h"
#include "arch/x86_64/cpu.hpp"
#include "arch/x86_64/mmu_hw.hpp"
#include "arch_impl/layout.hpp"
#include "arch_impl/page_table_format.hpp"
#include "core/stop.hpp"
#include "dev/platform.hpp"
#include "mm/space/mmu.hpp"

extern "C" char boot_tables_start[], boot_tables_end[], boot_entry_stack_bottom[], boot_entry_stack_top[];

namespace pagoda {
namespace {

using Format = x86::PageTableFormat;

// The boot stub (boot.S) maps the window and the kernel image before the C++ runs; its slots
// and constants must be what the layout and the format say.
static_assert(Format::index(VirtAddr(arch::layout::kWindowBase), 0) == BOOT_WINDOW_PML4_INDEX);
static_assert(Format::index(VirtAddr(arch::layout::kMmioBase), 0) == BOOT_MMIO_PML4_INDEX);
static_assert(Format::index(VirtAddr(arch::layout::kKernelImageBase), 0) == BOOT_KERNEL_PML4_INDEX);
static_assert(Format::index(VirtAddr(arch::layout::kKernelImageBase), 1) == BOOT_KERNEL_PDPT_INDEX);
static_assert(arch::layout::kWindowPhysBase == 0, "the boot stub's window starts at physical 0");

constexpr u64 kCr0WriteProtect = 1u << 16;
constexpr u64 kCr4GlobalPages = 1u << 7;
constexpr u64 kEferNoExecuteEnable = 1u << 11;
/// The local APIC's registers (one page); where IA32_APIC_BASE points after reset.
constexpr u64 kLapicBase = 0xfee0'0000;

/// The device registers the kernel maps: the local APIC, then what drivers add
/// (add_device_range(): the swap disk's transport).
constexpr usize kMaxDevices = 4;
constinit PhysRange g_devices[kMaxDevices] = {{PhysAddr(kLapicBase), Format::kPageSize}};
constinit usize g_device_count = 1;

void write_cr3(u64 value) { asm volatile("mov %0, %%cr3" ::"r"(value) : "memory"); }
void write_cr4(u64 value) { asm volatile("mov %0, %%cr4" ::"r"(value) : "memory"); }

}  // namespace

namespace x86::hw {

PhysAddr read_root() { return PhysAddr(read_cr3() & Format::kAddressMask); }

// Not inlined: a breakpoint here stops at every switch of roots, with the new root in RDI
// (docs/debugging.md).
[[PAGODA_STOP(load_root)]] void load_root(PhysAddr root) { write_cr3(root.value()); }

void invalidate_page(VirtAddr va) { asm volatile("invlpg (%0)" ::"r"(va.value()) : "memory"); }

void flush_tlb(bool global) {
  const u64 cr4 = read_cr4();
  if (global && (cr4 & kCr4GlobalPages)) {
    write_cr4(cr4 & ~kCr4GlobalPages);  // clearing PGE drops every TLB entry, global ones too
    write_cr4(cr4);
    return;
  }
  write_cr3(read_cr3());
}

}  // namespace x86::hw

namespace arch {

LiveRoots live_roots() {
  LiveRoots live;
  live.roots[0] = x86::hw::read_root();
  live.names[0] = "CR3";
  live.count = 1;
  return live;
}

PhysAddr live_root_for(VirtAddr) { return x86::hw::read_root(); }

// Both loops move 64 bytes a pass rather than `rep movsq`/`rep stosq`'s 8: under QEMU's TCG each
// step of a rep is one more pass through its translated block, and these two ran 512 of them a
// page (most of the boot's guest work, and of every fork's and swap-in's copy).
void copy_page(void* to, const void* from) {
  auto* dst = static_cast<u64*>(to);
  const auto* src = static_cast<const u64*>(from);
  for (usize i = 0; i < Format::kPageSize / sizeof(u64); i += 8) {
    u64 a, b, c, d;
    asm volatile("movq 0(%[s]), %[a]\n movq 8(%[s]), %[b]\n movq 16(%[s]), %[c]\n movq 24(%[s]), %[d]\n"
                 "movq %[a], 0(%[t])\n movq %[b], 8(%[t])\n movq %[c], 16(%[t])\n movq %[d], 24(%[t])\n"
                 "movq 32(%[s]), %[a]\n movq 40(%[s]), %[b]\n movq 48(%[s]), %[c]\n movq 56(%[s]), %[d]\n"
                 "movq %[a], 32(%[t])\n movq %[b], 40(%[t])\n movq %[c], 48(%[t])\n movq %[d], 56(%[t])"
                 : [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c), [d] "=&r"(d)
                 : [s] "r"(src + i), [t] "r"(dst + i)
                 : "memory");
  }
}

void zero_page(void* page) {
  auto* dst = static_cast<u64*>(page);
  for (usize i = 0; i < Format::kPageSize / sizeof(u64); i += 8)
    asm volatile("movq %[z], 0(%[t])\n movq %[z], 8(%[t])\n movq %[z], 16(%[t])\n movq %[z], 24(%[t])\n"
                 "movq %[z], 32(%[t])\n movq %[z], 40(%[t])\n movq %[z], 48(%[t])\n movq %[z], 56(%[t])"
                 :
                 : [z] "r"(u64{0}), [t] "r"(dst + i)
                 : "memory");
}

Span<const PhysRange> device_ranges() { return {g_devices, g_device_count}; }

Result<void> add_device_range(PhysRange range) {
  if (g_device_count == kMaxDevices) return Error(Error::Overflow, "the x86_64 list of devices to map is full");
  g_devices[g_device_count++] = range;
  return {};
}

PhysRange boot_page_tables() {
  const u64 start = reinterpret_cast<u64>(boot_tables_start);
  return {PhysAddr(start), reinterpret_cast<u64>(boot_tables_end) - start};
}

PhysRange boot_entry_stack() {
  // Linked low (.boot.stack): its addresses are physical, and the boot identity maps them.
  const u64 bottom = reinterpret_cast<u64>(boot_entry_stack_bottom);
  return {PhysAddr(bottom), reinterpret_cast<u64>(boot_entry_stack_top) - bottom};
}

bool paging_controls_ok(FormatSink& sink) {
  const bool nx = x86::rdmsr(x86::kMsrEfer) & kEferNoExecuteEnable;
  const bool wp = x86::read_cr0() & kCr0WriteProtect;
  format_to(sink, "EFER.NXE {}, CR0.WP {}", nx ? "on" : "OFF", wp ? "on" : "OFF");
  return nx && wp;
}

}  // namespace arch
}  // namespace pagoda
