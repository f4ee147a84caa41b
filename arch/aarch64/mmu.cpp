// AArch64 MMU control: the TTBRs, SCTLR_EL1.WXN and TLBI (the aarch64::hw seam of mmu_hw.hpp),
// the live roots, and what the boot stub leaves behind (mm/space/mmu.hpp).
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
#include "arch/aarch64/mmu_hw.hpp"
#include "arch/aarch64/platform.hpp"
#include "arch_impl/address_space.hpp"
#include "arch_impl/layout.hpp"
#include "arch_impl/page_table_format.hpp"
#include "core/stop.hpp"
#include "core/arch.hpp"
#include "core/cpu.hpp"
#include "dev/platform.hpp"
#include "mm/space/mmu.hpp"

extern "C" char boot_tables_start[], boot_tables_end[], boot_entry_stack_bottom[], boot_entry_stack_top[];

namespace pagoda {
namespace {

using Format = aarch64::PageTableFormat;

// The boot stub (boot.S) maps the window and the kernel image before the C++ runs; its slots
// and constants must be what the layout and the format say.
static_assert(Format::index(VirtAddr(arch::layout::kWindowBase), 0) == BOOT_WINDOW_L0_INDEX);
static_assert(Format::index(VirtAddr(arch::layout::kMmioBase), 0) == BOOT_MMIO_L0_INDEX);
static_assert(Format::index(VirtAddr(arch::layout::kKernelImageBase), 0) == BOOT_KERNEL_L0_INDEX);
static_assert(Format::index(VirtAddr(arch::layout::kKernelImageBase), 1) == BOOT_KERNEL_L1_INDEX);
static_assert(arch::layout::kWindowPhysBase == RAM_BASE, "the boot stub's window starts at the start of RAM");
static_assert(Format::entry_span(1) == u64{1} << AARCH64_L1_BLOCK_SHIFT);

constexpr u64 kGicRegisterBytes = 64 * KiB;
/// The device registers the kernel maps: the UART and the GIC's two parts from the device tree,
/// then what drivers add (add_device_range(): the swap disk's transport).
constexpr usize kMaxAddedDevices = 2;
PhysRange g_devices[3 + kMaxAddedDevices];
constinit PhysRange g_added_devices[kMaxAddedDevices] = {};
constinit usize g_added_count = 0;

u64 ttbr_value(PhysAddr root, u16 asid) { return root.value() | (u64(asid) << aarch64::kTtbrAsidShift); }

void tlbi_done() {
  aarch64::dsb_ish();
  aarch64::isb();
}

/// The ASIDs each CPU's TTBR0 was loaded with since they were last invalidated there
/// (g_asid_cached[c], bit n: ASID n on CPU c).
constexpr usize kAsidWords = aarch64::Aarch64AddressSpace::kAsids / 64;
u64 g_asid_cached[kMaxCpus][kAsidWords];

u64 cached_bit(u16 asid) { return u64{1} << (asid % 64); }

/// Forgets every ASID on every CPU.
void forget_cached_asids() {
  for (auto& cpu : g_asid_cached)
    for (u64& word : cpu) __atomic_store_n(&word, 0, __ATOMIC_RELAXED);
}

/// The word of this CPU's g_asid_cached that holds @p asid's bit.
u64& cached_word(u16 asid) { return g_asid_cached[arch::cpu_id()][asid / 64 % kAsidWords]; }

/// Every translation of every ASID, global ones included, dropped: what a new TTBR1 (or the
/// kernel's first roots) needs, since the old tables' entries may still be cached.
void invalidate_everything() {
  asm volatile("tlbi vmalle1is" ::: "memory");
  tlbi_done();
  forget_cached_asids();
}

}  // namespace

namespace aarch64::hw {

Ttbr0 read_ttbr0() {
  const u64 v = PAGODA_READ_SYSREG("ttbr0_el1");
  return {PhysAddr(v & Format::kAddressMask), u16(v >> kTtbrAsidShift)};
}

PhysAddr read_ttbr1() { return PhysAddr(PAGODA_READ_SYSREG("ttbr1_el1") & Format::kAddressMask); }

// Not inlined: a breakpoint here stops at the kernel's switch to its own tables.
[[gnu::noinline]] void load_kernel_roots(PhysAddr kernel_root, PhysAddr lower_root) {
  dsb_ishst();  // the new tables are written
  PAGODA_WRITE_SYSREG("ttbr1_el1", ttbr_value(kernel_root, 0));
  PAGODA_WRITE_SYSREG("ttbr0_el1", ttbr_value(lower_root, 0));
  isb();
  PAGODA_WRITE_SYSREG("sctlr_el1", PAGODA_READ_SYSREG("sctlr_el1") | kSctlrWxn);
  isb();
  invalidate_everything();  // nothing of the boot map may stay cached
}

// Not inlined: a breakpoint here stops at every switch of processes, with the root in x0.
[[PAGODA_STOP(load_ttbr0)]] void load_ttbr0(PhysAddr root, u16 asid) {
  PAGODA_WRITE_SYSREG("ttbr0_el1", ttbr_value(root, asid));
  isb();
  __atomic_fetch_or(&cached_word(asid), cached_bit(asid), __ATOMIC_RELAXED);
}

void load_empty_ttbr0(PhysAddr empty_root) {
  PAGODA_WRITE_SYSREG("ttbr0_el1", ttbr_value(empty_root, read_ttbr0().asid));
  isb();
}

[[gnu::noinline]] void load_ttbr1(PhysAddr root) {
  dsb_ishst();
  PAGODA_WRITE_SYSREG("ttbr1_el1", ttbr_value(root, 0));
  isb();
  invalidate_everything();
}

void write_barrier() { dsb_ishst(); }

/// The operand of a TLBI by address: VA[55:12] in bits 43:0, the ASID in bits 63:48.
u64 tlbi_operand(VirtAddr va, u16 asid) {
  return ((va.value() >> Format::kPageShift) & ((u64{1} << 44) - 1)) | (u64(asid) << kTtbrAsidShift);
}

void invalidate_va_all_asids(VirtAddr va) {
  asm volatile("tlbi vaae1is, %0" ::"r"(tlbi_operand(va, 0)) : "memory");
  tlbi_done();
}

void invalidate_va_local(VirtAddr va, u16 asid) {
  asm volatile("tlbi vae1, %0\n dsb nsh\n isb" ::"r"(tlbi_operand(va, asid)) : "memory");
}

void invalidate_va(VirtAddr va, u16 asid) {
  const u64 operand = tlbi_operand(va, asid);
  asm volatile("tlbi vae1is, %0" ::"r"(operand) : "memory");
  tlbi_done();
}

void flush_asid(u16 asid) {
  asm volatile("tlbi aside1is, %0" ::"r"(u64(asid) << kTtbrAsidShift) : "memory");
  tlbi_done();
}

void invalidate_asid(u16 asid) {
  asm volatile("tlbi aside1, %0\n dsb nsh\n isb" ::"r"(u64(asid) << kTtbrAsidShift) : "memory");
  __atomic_fetch_and(&cached_word(asid), ~cached_bit(asid), __ATOMIC_RELAXED);
}

void invalidate_all() { invalidate_everything(); }

void invalidate_all_local() {
  asm volatile("tlbi vmalle1\n dsb nsh\n isb" ::: "memory");
  for (u64& word : g_asid_cached[arch::cpu_id()]) __atomic_store_n(&word, 0, __ATOMIC_RELAXED);
}

bool asid_may_be_cached(u16 asid) { return (cached_word(asid) & cached_bit(asid)) != 0; }

}  // namespace aarch64::hw

namespace arch {

LiveRoots live_roots() {
  LiveRoots live;
  live.roots[0] = aarch64::hw::read_ttbr0().root;
  live.names[0] = "TTBR0";
  live.roots[1] = aarch64::hw::read_ttbr1();
  live.names[1] = "TTBR1";
  live.count = 2;
  return live;
}

void copy_page(void* to, const void* from) {
  // 64 bytes a turn through eight general registers (the kernel is built without FP/SIMD).
  u64 a, b, c, d, e, f, g, h;
  auto* end = static_cast<u8*>(to) + Format::kPageSize;
  asm volatile("1: ldp %[a], %[b], [%[src]]\n"
               "   ldp %[c], %[d], [%[src], #16]\n"
               "   ldp %[e], %[f], [%[src], #32]\n"
               "   ldp %[g], %[h], [%[src], #48]\n"
               "   add %[src], %[src], #64\n"
               "   stp %[a], %[b], [%[dst]]\n"
               "   stp %[c], %[d], [%[dst], #16]\n"
               "   stp %[e], %[f], [%[dst], #32]\n"
               "   stp %[g], %[h], [%[dst], #48]\n"
               "   add %[dst], %[dst], #64\n"
               "   cmp %[dst], %[end]\n"
               "   b.ne 1b\n"
               : [dst] "+r"(to), [src] "+r"(from), [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c), [d] "=&r"(d), [e] "=&r"(e),
                 [f] "=&r"(f), [g] "=&r"(g), [h] "=&r"(h)
               : [end] "r"(end)
               : "memory", "cc");
}

void zero_page(void* page) {
  auto* end = static_cast<u8*>(page) + Format::kPageSize;
  asm volatile("1: stp xzr, xzr, [%[dst]]\n"
               "   stp xzr, xzr, [%[dst], #16]\n"
               "   stp xzr, xzr, [%[dst], #32]\n"
               "   stp xzr, xzr, [%[dst], #48]\n"
               "   add %[dst], %[dst], #64\n"
               "   cmp %[dst], %[end]\n"
               "   b.ne 1b\n"
               : [dst] "+r"(page)
               : [end] "r"(end)
               : "memory", "cc");
}

PhysAddr live_root_for(VirtAddr va) {
  return Format::in_upper_range(va) ? aarch64::hw::read_ttbr1() : aarch64::hw::read_ttbr0().root;
}

Span<const PhysRange> device_ranges() {
  const aarch64::PlatformDevices& d = aarch64::platform_devices();
  usize n = 0;
  if (d.uart != PhysAddr()) g_devices[n++] = {d.uart, Format::kPageSize};
  if (d.gic_distributor != PhysAddr()) g_devices[n++] = {d.gic_distributor, kGicRegisterBytes};
  if (d.gic_cpu != PhysAddr()) g_devices[n++] = {d.gic_cpu, kGicRegisterBytes};
  for (usize i = 0; i < g_added_count; ++i) g_devices[n++] = g_added_devices[i];
  return {g_devices, n};
}

Result<void> add_device_range(PhysRange range) {
  if (g_added_count == kMaxAddedDevices) return Error(Error::Overflow, "the AArch64 list of devices to map is full");
  g_added_devices[g_added_count++] = range;
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
  const bool mmu = PAGODA_READ_SYSREG("sctlr_el1") & aarch64::kSctlrMmu;
  const bool has_pan = aarch64::cpu_has_pan();
  const bool pan = has_pan && (aarch64::read_pan() & aarch64::kPstatePan);
  // WXN comes on with the kernel's own tables (hw::load_kernel_roots): the boot map needs it off.
  format_to(sink, "SCTLR_EL1.M {}, PSTATE.PAN {}", mmu ? "on" : "OFF",
            pan       ? "on"
            : has_pan ? "OFF"
                      : "ABSENT (this CPU has no PAN)");
  return mmu && pan;
}

}  // namespace arch
}  // namespace pagoda
