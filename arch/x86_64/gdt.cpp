// The long-mode GDT and the TSS.
//
// A 64-bit TSS holds no task state, only stack pointers: RSP0 for entries from user mode
// (lab 3) and IST1..7, stacks the CPU switches to unconditionally for chosen vectors. The
// double fault gets its own, so that a fault caused by a bad stack is still reported instead
// of escalating to a triple fault.
//
//   TSS descriptor (16 bytes, system segment type 9 = available 64-bit TSS)
//   63      56 55 52 51  48 47 46 45 44 43  40 39      32 31           16 15            0
//   +---------+-----+------+--+-----+--+------+---------+---------------+---------------+
//   |base 31:24|flags|lim19:16|P| DPL |0 | type |base 23:16|   base 15:0   |  limit 15:0   |
//   +---------+-----+------+--+-----+--+------+---------+---------------+---------------+
//   |                  reserved                        |          base 63:32            |
#include "arch/x86_64/gdt.hpp"

#include "arch/x86_64/boot_defs.h"
#include "core/arch.hpp"
#include "core/cpu.hpp"
#include "proc/kernel_stack.hpp"

extern "C" char boot_stack_bottom[], boot_stack_top[], boot_entry_stack_bottom[], boot_entry_stack_top[];

namespace pagoda::x86 {
namespace {

struct [[gnu::packed]] Tss {
  u32 reserved0;
  u64 rsp[3];
  u64 reserved1;
  u64 ist[7];
  u64 reserved2;
  u16 reserved3;
  u16 iomap_base;
};
static_assert(sizeof(Tss) == 104);

struct [[gnu::packed]] DescriptorPointer {
  u16 limit;
  u64 base;
};

constexpr u64 kUserData64 = 0x00cff2000000ffff;  // flat data, DPL 3
constexpr u64 kUserCode64 = 0x00affa000000ffff;  // 64-bit code, DPL 3
constexpr u64 kTssTypeAvailable = 0x9;
constexpr u64 kDescriptorPresent = 1ull << 47;
constexpr usize kIstStackSize = 16 * KiB;
constexpr usize kIstStacks = 3;
constexpr u64 kLdtType = 0x2;
/// null, kcode, kdata, udata, ucode, tss (2 slots); then, in the GDT of CPU c >= 1, an empty LDT's
/// descriptor (2 slots) at selector c * X86_CPU_SLOT_STRIDE: the CPU's LDTR, which
/// arch::this_cpu_slot() reads (CPU 0's LDTR is null: 0).
constexpr u16 kLdtSelector(u32 cpu) { return u16(cpu * X86_CPU_SLOT_STRIDE); }
constexpr usize kGdtEntries = kMaxCpus == 1 ? 7 : (kLdtSelector(kMaxCpus - 1) >> 3) + 2;
static_assert(kLdtSelector(1) >> 3 >= 7, "the LDT descriptors come after the TSS's");

/// Each CPU has its own GDT, TSS and IST stacks: a TSS holds the CPU's RSP0 and its IST stacks,
/// and a busy TSS descriptor cannot be loaded by a second CPU (LTR marks it busy).
alignas(16) u8 g_ist_stacks[kMaxCpus][kIstStacks][kIstStackSize];
/// The boot CPU's TSS (the grader finds each CPU's through its TR, never by this name).
Tss g_tss;
Tss g_secondary_tss[kMaxCpus - 1];
u64 g_gdt[kMaxCpus][kGdtEntries];

/// The TSS each CPU's TR names (gdt_init()): the one its RSP0 and IST stacks are read from.
Tss* g_loaded_tss[kMaxCpus];

Tss& tss_of(u32 cpu) { return cpu == 0 || cpu >= kMaxCpus ? g_tss : g_secondary_tss[cpu - 1]; }
Tss& this_tss() {
  const u32 cpu = arch::cpu_id();
  return cpu < kMaxCpus && g_loaded_tss[cpu] != nullptr ? *g_loaded_tss[cpu] : g_tss;
}

}  // namespace

bool is_kernel_stack_address(uptr a) { return !kernel_stack_bounds(a).empty(); }

bool on_entry_stack(uptr a) {
  return a >= reinterpret_cast<uptr>(boot_entry_stack_bottom) && a < reinterpret_cast<uptr>(boot_entry_stack_top);
}

StackBounds kernel_stack_bounds(uptr a) {
  const StackBounds boot{reinterpret_cast<uptr>(boot_stack_bottom), reinterpret_cast<uptr>(boot_stack_top)};
  if (a >= boot.bottom && a < boot.top) return boot;
  const proc::StackRange process = proc::stack_containing(a);  // a process's kernel stack
  if (!process.empty()) return {process.bottom, process.top};
  // The boot stub's low entry stack, until vm::enter_kernel_space() leaves it.
  const StackBounds entry{reinterpret_cast<uptr>(boot_entry_stack_bottom),
                          reinterpret_cast<uptr>(boot_entry_stack_top)};
  if (a >= entry.bottom && a < entry.top) return entry;
  for (u32 c = 0; c < kMaxCpus; ++c) {
    for (usize i = 0; i < kIstStacks; ++i) {
      const StackBounds ist{reinterpret_cast<uptr>(g_ist_stacks[c][i]),
                            reinterpret_cast<uptr>(g_ist_stacks[c][i] + kIstStackSize)};
      if (a >= ist.bottom && a < ist.top) return ist;
    }
    const Cpu& other = cpu(c);  // a secondary CPU's own kernel stack
    if (other.stack_top != 0 && a >= other.stack_bottom && a < other.stack_top)
      return {other.stack_bottom, other.stack_top};
  }
  return {};
}

StackBounds ist_stack(u8 ist) {
  const Tss& tss = this_tss();
  if (ist == 0 || ist > kIstStacks || tss.ist[ist - 1] == 0) return {};
  return {uptr(tss.ist[ist - 1] - kIstStackSize), uptr(tss.ist[ist - 1])};
}

uptr tss_rsp0() { return this_tss().rsp[0]; }

void set_tss_rsp0(uptr top) { this_tss().rsp[0] = top; }

StackBounds tss_bytes() {
  const Tss& tss = this_tss();
  return {reinterpret_cast<uptr>(&tss), reinterpret_cast<uptr>(&tss) + sizeof tss};
}

void gdt_init(u32 cpu, u32 tss_cpu) {
  PAGODA_ASSERT(cpu < kMaxCpus && tss_cpu < kMaxCpus);
  Tss& tss = tss_of(tss_cpu);
  g_loaded_tss[cpu] = &tss;
  u64* gdt = g_gdt[cpu];
  for (usize i = 0; i < kIstStacks; ++i)
    tss.ist[i] = reinterpret_cast<u64>(g_ist_stacks[tss_cpu][i] + kIstStackSize);  // slot i+1
  tss.iomap_base = sizeof(Tss);                                                    // no I/O permission bitmap

  const u64 base = reinterpret_cast<u64>(&tss);
  const u64 limit = sizeof(Tss) - 1;
  gdt[0] = 0;
  gdt[kKernelCode >> 3] = GDT_KERNEL_CODE64;
  gdt[kKernelData >> 3] = GDT_KERNEL_DATA;
  gdt[kUserData >> 3] = kUserData64;
  gdt[kUserCode >> 3] = kUserCode64;
  gdt[kTssSelector >> 3] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (kTssTypeAvailable << 40) |
                           kDescriptorPresent | (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
  gdt[(kTssSelector >> 3) + 1] = base >> 32;
  // An LDT with no entries (limit 0: every LDT selector faults) whose selector says which CPU this is.
  for (usize i = 7; i < kGdtEntries; ++i) gdt[i] = 0;
  const u16 ldt = kLdtSelector(cpu);
  if (ldt != 0) gdt[ldt >> 3] = (kLdtType << 40) | kDescriptorPresent;

  const DescriptorPointer pointer{sizeof g_gdt[0] - 1, reinterpret_cast<u64>(gdt)};
  asm volatile("lgdt %0\n"
               "pushq %1\n"  // reload CS with a far return
               "leaq 1f(%%rip), %%rax\n"
               "pushq %%rax\n"
               "lretq\n"
               "1:\n"
               "movw %w2, %%ds\n"
               "movw %w2, %%es\n"
               "movw %w2, %%ss\n"
               "ltr %w3\n"
               "lldt %w4\n"
               :
               : "m"(pointer), "i"(u64(kKernelCode)), "r"(u32(kKernelData)), "r"(u32(kTssSelector)), "r"(u32(ldt))
               : "rax", "memory");
}

}  // namespace pagoda::x86
