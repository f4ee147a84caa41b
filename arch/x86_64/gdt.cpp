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
#include "lib/facts.hpp"
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
/// Where TSS.RSP0 sits in g_tss: the grader reads the kernel stack of the next trap from ring 3
/// there (grade/test_lab3.py).
PAGODA_FACT(tss_rsp0_offset, __builtin_offsetof(Tss, rsp))

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
constexpr usize kGdtEntries = 7;  // null, kcode, kdata, udata, ucode, tss (2 slots)

alignas(16) u8 g_ist_stacks[kIstStacks][kIstStackSize];
Tss g_tss;
u64 g_gdt[kGdtEntries];

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
  for (usize i = 0; i < kIstStacks; ++i) {
    const StackBounds ist{reinterpret_cast<uptr>(g_ist_stacks[i]),
                          reinterpret_cast<uptr>(g_ist_stacks[i] + kIstStackSize)};
    if (a >= ist.bottom && a < ist.top) return ist;
  }
  return {};
}

StackBounds ist_stack(u8 ist) {
  if (ist == 0 || ist > kIstStacks || g_tss.ist[ist - 1] == 0) return {};
  return {uptr(g_tss.ist[ist - 1] - kIstStackSize), uptr(g_tss.ist[ist - 1])};
}

uptr tss_rsp0() { return g_tss.rsp[0]; }

void set_tss_rsp0(uptr top) { g_tss.rsp[0] = top; }

StackBounds tss_bytes() { return {reinterpret_cast<uptr>(&g_tss), reinterpret_cast<uptr>(&g_tss) + sizeof g_tss}; }

void gdt_init() {
  for (usize i = 0; i < kIstStacks; ++i)
    g_tss.ist[i] = reinterpret_cast<u64>(g_ist_stacks[i] + kIstStackSize);  // slot i+1
  g_tss.iomap_base = sizeof(Tss);                                           // no I/O permission bitmap

  const u64 base = reinterpret_cast<u64>(&g_tss);
  const u64 limit = sizeof(Tss) - 1;
  g_gdt[0] = 0;
  g_gdt[kKernelCode >> 3] = GDT_KERNEL_CODE64;
  g_gdt[kKernelData >> 3] = GDT_KERNEL_DATA;
  g_gdt[kUserData >> 3] = kUserData64;
  g_gdt[kUserCode >> 3] = kUserCode64;
  g_gdt[kTssSelector >> 3] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (kTssTypeAvailable << 40) |
                             kDescriptorPresent | (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
  g_gdt[(kTssSelector >> 3) + 1] = base >> 32;

  const DescriptorPointer pointer{sizeof g_gdt - 1, reinterpret_cast<u64>(g_gdt)};
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
               :
               : "m"(pointer), "i"(u64(kKernelCode)), "r"(u32(kKernelData)), "r"(u32(kTssSelector))
               : "rax", "memory");
}

}  // namespace pagoda::x86
