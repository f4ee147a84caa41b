// Secondary CPUs on x86_64: finding them (ACPI's MADT), starting them (INIT-SIPI-SIPI through the
// LAPIC into ap_trampoline.S), and the per-CPU side of core/arch.hpp.
//
//   RSDP ("RSD PTR ", 16-byte aligned in the BIOS area [0xE0000, 0x100000))
//     +0 signature[8]  +8 checksum  +9 oemid[6]  +15 revision  +16 u32 RSDT address
//     (revision >= 2: +20 u32 length, +24 u64 XSDT address)
//   RSDT / XSDT: a 36-byte table header (+0 signature[4], +4 u32 length), then table addresses
//   (u32 in the RSDT, u64 in the XSDT)
//   MADT ("APIC"): header, +36 u32 LAPIC address, +40 u32 flags, then entries from +44:
//     +0 u8 type  +1 u8 length; type 0 (a CPU's LAPIC): +2 u8 ACPI id, +3 u8 APIC ID,
//     +4 u32 flags (bit 0 enabled, bit 1 online capable)
// QEMU's microvm (QEMU 7.2) has an MP table too, whose entry count is 0: the MADT is read instead.
#include "arch/x86_64/boot_defs.h"
#include "arch/x86_64/cpu.hpp"
#include "arch/x86_64/gdt.hpp"
#include "arch/x86_64/lapic.hpp"
#include "arch/x86_64/mmu_hw.hpp"
#include "arch/x86_64/page_table_format.hpp"
#include "arch/x86_64/smp.hpp"
#include "arch/x86_64/traps.hpp"
#include "arch/x86_64/user_mode.hpp"
#include "core/arch.hpp"
#include "core/cpu.hpp"
#include "core/panic.hpp"
#include "dev/platform.hpp"
#include "lib/console.hpp"
#include "lib/facts.hpp"
#include "lib/string.hpp"
#include "mm/base/layout.hpp"
#include "mm/vm.hpp"

extern "C" char x86_ap_trampoline[], x86_ap_trampoline_end[], x86_ap_params[], __kernel_virt_offset[];
extern "C" char x86_syscall_entry_cpu1[];
extern "C" [[noreturn]] void x86_ap_start(pagoda::u32 cpu, pagoda::u64 kernel_root);

namespace pagoda::x86 {

// No user ASIDs on x86_64: every CR3 write flushes the TLB's non-global entries (no PCID: QEMU's
// TCG does not offer it), so lab 8's grader has no generation to roll over.
PAGODA_FACT(user_asids, 0)

namespace {

constexpr u64 kBiosAreaStart = 0xE0000, kBiosAreaEnd = 0x100000;
constexpr u64 kTableHeader = 36, kMadtEntries = 44;
constexpr u8 kMadtLocalApic = 0;
constexpr u32 kMadtEnabled = 1u << 0, kMadtOnlineCapable = 1u << 1;
constexpr u32 kMsrKernelGsBase = 0xC0000102;
constexpr u32 kMsrStar = 0xC0000081, kMsrSfmask = 0xC0000084;
[[maybe_unused]] constexpr u32 kMsrLstar = 0xC0000082;  // (take_own_state(), lab 8's, uses it)
static_assert(kMaxCpus == 2, "x86_ap_start() gives CPU 1 the one secondary system-call entry");
constexpr u64 kEferActive = 1u << 10;  // EFER.LMA: read-only, set by the CPU itself

/// What the trampoline reads, at x86_ap_params in its copy (ap_trampoline.S, same order).
struct [[gnu::packed]] ApParams {
  u32 root;
  u32 efer;
  u64 stack;
  u64 kernel_root;
  u64 entry;
  u64 cpu;
};

/// The APIC IDs of the CPUs the MADT lists, the boot CPU first.
u32 g_apic_ids[kMaxCpus];
u32 g_cpus_present = 1;

/// What a secondary CPU copies from the boot CPU: its protections and system-call entry.
struct BootCpuState {
  u64 cr4, efer, star, sfmask;
};
BootCpuState g_boot_state;

/// The temporary root a secondary CPU enters long mode on: the kernel's half of the kernel's
/// root, and the first 2 MiB identity-mapped for the trampoline. In the image (.bss), so below
/// 4 GiB, as a 32-bit CR3 needs.
alignas(X86_PAGE_SIZE) u64 g_ap_pml4[X86_ENTRIES_PER_TABLE];
alignas(X86_PAGE_SIZE) u64 g_ap_pdpt[X86_ENTRIES_PER_TABLE];
alignas(X86_PAGE_SIZE) u64 g_ap_pd[X86_ENTRIES_PER_TABLE];

const u8* boot_window(u64 pa) { return reinterpret_cast<const u8*>(layout::kWindowBase + pa); }
u32 read32(const u8* p) { return u32(p[0]) | u32(p[1]) << 8 | u32(p[2]) << 16 | u32(p[3]) << 24; }
u64 read64(const u8* p) { return read32(p) | u64(read32(p + 4)) << 32; }

bool checksum_ok(const u8* p, usize size) {
  u8 sum = 0;
  for (usize i = 0; i < size; ++i) sum = u8(sum + p[i]);
  return sum == 0;
}

/// The MADT's physical address, or 0 when the firmware gave none.
u64 find_madt() {
  constexpr usize kRsdpV1Size = 20;
  for (u64 pa = kBiosAreaStart; pa < kBiosAreaEnd; pa += 16) {
    const u8* rsdp = boot_window(pa);
    if (memcmp(rsdp, "RSD PTR ", 8) != 0 || !checksum_ok(rsdp, kRsdpV1Size)) continue;
    // ACPI 2.0 and later (microvm's): the XSDT, of 64-bit addresses; else the RSDT's 32-bit ones.
    const bool extended = rsdp[15] >= 2 && read64(rsdp + 24) != 0;
    const u64 table_list = extended ? read64(rsdp + 24) : read32(rsdp + 16);
    const u32 entry_size = extended ? 8 : 4;
    if (table_list == 0 || table_list >= u64(BOOT_MAP_GIB) * GiB) return 0;
    const u32 length = read32(boot_window(table_list) + 4);
    for (u32 at = kTableHeader; at + entry_size <= length; at += entry_size) {
      const u8* slot = boot_window(table_list) + at;
      const u64 table = extended ? read64(slot) : read32(slot);
      if (table != 0 && table < u64(BOOT_MAP_GIB) * GiB && memcmp(boot_window(table), "APIC", 4) == 0) return table;
    }
    return 0;
  }
  return 0;
}

u64 image_phys(const void* p) { return reinterpret_cast<u64>(p) - reinterpret_cast<u64>(__kernel_virt_offset); }

void write_cr3(u64 value) { asm volatile("mov %0, %%cr3" ::"r"(value) : "memory"); }
[[maybe_unused]] void write_cr4(u64 value) { asm volatile("mov %0, %%cr4" ::"r"(value) : "memory"); }

}  // namespace

/// What secondary CPU @p cpu owns, set up on it before it runs anything (interrupts off):
/// its own GDT and TSS (the TSS holds the RSP0 its traps from ring 3 land on and its IST stacks:
/// gdt_init()), the IDT, the boot CPU's protections (CR4: SMEP, SMAP, UMIP, as g_boot_state
/// holds them; EFER, NXE with it, came with the trampoline), its own system-call entry (LSTAR: x86_syscall_entry_cpu1, which
/// takes its kernel stack from this CPU's slot, with STAR and SFMASK as the boot CPU's), its
/// LAPIC (the IPIs) and its own timer at the boot CPU's rate.
void take_own_state(u32 cpu) {
  // LAB 8 BEGIN this CPU's own TSS and trap stacks, its protections, its system-call entry, its LAPIC and timer
  gdt_init(cpu, cpu);
  idt_load();
  write_cr4(g_boot_state.cr4);
  wrmsr(kMsrStar, g_boot_state.star);
  wrmsr(kMsrLstar, reinterpret_cast<u64>(x86_syscall_entry_cpu1));
  wrmsr(kMsrSfmask, g_boot_state.sfmask);
  lapic_init_secondary();
  lapic_timer_start_secondary();
  // LAB 8 SKELETON
  // (void)cpu;
  // panic("lab 8: write take_own_state() in arch/x86_64/smp.cpp (labs/08-smp/README.md)");
  // LAB 8 END
}

void smp_discover(const BootInfo& boot) {
  const u64 madt = find_madt();
  if (madt == 0) return;
  const u32 length = read32(boot_window(madt) + 4);
  u32 found = 0;
  for (u32 at = kMadtEntries; at + 2 <= length;) {
    const u8* entry = boot_window(madt + at);
    if (entry[1] < 2) break;  // a malformed entry: stop rather than loop
    if (entry[0] == kMadtLocalApic && (read32(entry + 4) & (kMadtEnabled | kMadtOnlineCapable)) && found < kMaxCpus)
      g_apic_ids[found++] = entry[3];
    at += entry[1];
  }
  // The boot CPU first, whatever the MADT's order: its APIC ID is CPUID 1's EBX[31:24].
  const u32 boot_apic = cpuid(1).ebx >> 24;
  for (u32 i = 1; i < found; ++i)
    if (g_apic_ids[i] == boot_apic) g_apic_ids[i] = exchange(g_apic_ids[0], g_apic_ids[i]);
  // The trampoline's page must be RAM nobody else uses: usable in the map, below 1 MiB.
  bool trampoline_free = false;
  for (const MemoryRegion& r : boot.memory)
    if (r.type == MemoryType::Usable && r.base.value() <= AP_TRAMPOLINE_BASE &&
        AP_TRAMPOLINE_BASE + X86_PAGE_SIZE <= r.end().value())
      trampoline_free = true;
  if (found <= 1 || !trampoline_free) return;
  // The boot CPU reaches the trampoline's page through the device area (the window leaves the
  // first MiB out).
  if (arch::add_device_range({PhysAddr(AP_TRAMPOLINE_BASE), X86_PAGE_SIZE}).is_error()) return;
  g_cpus_present = found;
}

}  // namespace pagoda::x86

/// Where the trampoline jumps, on the CPU's own stack, still in the temporary root: this CPU
/// takes the kernel's root and its per-CPU identity, then what it must own itself
/// (take_own_state()), then idles (cpu_secondary_main).
extern "C" [[noreturn]] void x86_ap_start(pagoda::u32 cpu, pagoda::u64 kernel_root) {
  using namespace pagoda;
  using namespace pagoda::x86;
  write_cr3(kernel_root);
  wrmsr(kMsrKernelGsBase, cpu);  // arch::cpu_id()
  take_own_state(cpu);
  cpu_secondary_main(cpu);
}

namespace pagoda::arch {

using namespace x86;

void cpu_relax() { pause(); }

bool interrupts_save() {
  const bool enabled = read_rflags() & kRflagsIf;
  cli();
  return enabled;
}

void interrupts_restore(bool enabled) {
  if (enabled) sti();
}

u32 cpu_id() { return u32(rdmsr(kMsrKernelGsBase)); }

u32 cpus_present() { return g_cpus_present; }

bool start_cpu(u32 id, uptr stack_top) {
  if (id == 0 || id >= g_cpus_present) return false;
  syscalls_take_kernel_lock();  // CPU 0's system calls too, before this one can run any
  g_boot_state = {read_cr4(), rdmsr(kMsrEfer), rdmsr(kMsrStar), rdmsr(kMsrSfmask)};

  // The temporary root: the kernel's half as the kernel's root has it, the first 2 MiB identity.
  const PhysAddr kernel_root(read_cr3() & PageTableFormat::kAddressMask);
  const auto* root = static_cast<const u64*>(vm::phys_to_ptr(kernel_root, X86_PAGE_SIZE));
  if (root == nullptr) return false;
  constexpr usize kHalf = X86_ENTRIES_PER_TABLE / 2;
  for (usize i = 0; i < X86_ENTRIES_PER_TABLE; ++i) g_ap_pml4[i] = i >= kHalf ? root[i] : 0;
  g_ap_pml4[0] = image_phys(g_ap_pdpt) | X86_PTE_P | X86_PTE_W;
  g_ap_pdpt[0] = image_phys(g_ap_pd) | X86_PTE_P | X86_PTE_W;
  g_ap_pd[0] = X86_PTE_P | X86_PTE_W | X86_PTE_PS;

  // The trampoline, and what it reads, in the page below 1 MiB.
  auto* page = static_cast<u8*>(vm::device_ptr(PhysAddr(AP_TRAMPOLINE_BASE)));
  const usize size = usize(x86_ap_trampoline_end - x86_ap_trampoline);
  memcpy(page, x86_ap_trampoline, size);
  auto* params = reinterpret_cast<ApParams*>(page + (x86_ap_params - x86_ap_trampoline));
  params->root = u32(image_phys(g_ap_pml4));
  params->efer = u32(g_boot_state.efer & ~kEferActive);
  params->stack = stack_top;
  params->kernel_root = kernel_root.value();
  params->entry = reinterpret_cast<u64>(&x86_ap_start);
  params->cpu = id;
  asm volatile("mfence" ::: "memory");

  // INIT, then STARTUP twice (the second is ignored by a CPU the first started).
  const u32 apic = g_apic_ids[id];
  lapic_send_init(apic);
  for (int i = 0; i < 2; ++i) lapic_send_startup(apic, u8(AP_TRAMPOLINE_BASE >> X86_PAGE_SHIFT));
  return true;
}

void invalidate_page_local(uptr va) { asm volatile("invlpg (%0)" ::"r"(va) : "memory"); }

void invalidate_all_local() { x86::hw::flush_tlb(true); }

void send_ipi(u32 id) {
  if (id < g_cpus_present) lapic_send_ipi(g_apic_ids[id]);
}

}  // namespace pagoda::arch
