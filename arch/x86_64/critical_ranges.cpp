// What an x86_64 CPU needs mapped the instant after CR3 is loaded (mm/space/mmu.hpp,
// mm/space/critical_ranges.hpp), as of now, most telling first:
//
//   the running stack          the whole stack RSP is on when the kernel knows it (the boot
//                              stack, an IST stack, a process's kernel stack); else RSP's
//                              page and a trap frame's room below it                       rw-
//   the current instruction    the one after the CR3 write, in x86::hw::load_root()        r-x
//   the trap entry             x86_vector_stubs .. x86_trap_entry_end (vectors.S)          r-x
//   the IDT, the GDT           where IDTR and GDTR point (SIDT, SGDT)                      r--
//   the TSS                    the task state segment (RSP0, the IST pointers)             r--
//   the IST stacks             #DF, NMI, #MC: the CPU switches to them unconditionally     rw-
//   the user-mode trap stack   TSS.RSP0's whole kernel stack, once a process was scheduled: rw-
//                              the next process's (set before its root is loaded), where its
//                              next trap from ring 3 pushes its frame
//   the kernel text            __text_start .. __text_end                                  r-x
//
// An exception right after the switch needs the IDT, the GDT (for CS), the TSS (IST, RSP0),
// the trap entry and a stack to push the frame onto; any of them missing turns the first
// exception into a double fault and then a triple fault.
#include "arch/x86_64/gdt.hpp"
#include "arch/x86_64/mmu_hw.hpp"
#include "mm/space/mmu.hpp"
#include "mm/base/page.hpp"
#include "proc/kernel_stack.hpp"

extern "C" char __text_start[], __text_end[], x86_vector_stubs[], x86_trap_entry_end[], boot_entry_stack_bottom[];

namespace pagoda::arch {
namespace {

/// Room below the stack pointer for what an exception pushes before any C++ runs: SS, RSP,
/// RFLAGS, CS, RIP, the error code and the vector, and the 15 registers x86_trap_common saves
/// (22 x 8 = 176 bytes), rounded up.
constexpr u64 kTrapFrameRoom = 256;

struct [[gnu::packed]] DescriptorTableRegister {
  u16 limit;
  u64 base;
};

u64 read_rsp() {
  u64 rsp;
  asm volatile("mov %%rsp, %0" : "=r"(rsp));
  return rsp;
}

constexpr Access kWrite{.write = true};
constexpr Access kExecute{.execute = true};
constexpr Access kRead{};

VirtAddr va(const void* p) { return VirtAddr(reinterpret_cast<u64>(p)); }

}  // namespace

void critical_ranges(CriticalRanges& out) {
  const u64 rsp = read_rsp();
  const x86::StackBounds stack = x86::kernel_stack_bounds(rsp);
  // On a stack the kernel knows (the boot stack, an IST stack, a process's kernel stack), all
  // of it (a later switch on the same stack, at another depth, is then proven: switch_stacks());
  // on another (a fixture's) RSP's page and the room below it.
  const u64 low = stack.empty() ? rsp - kTrapFrameRoom : stack.bottom;
  const u64 high = stack.empty() ? align_up(rsp + 1, kPageSize) : stack.top;
  out.add("the running stack", VirtAddr(low), high - low, kWrite, VirtAddr(rsp));
  if (stack.bottom == reinterpret_cast<uptr>(boot_entry_stack_bottom)) out.note_last(kBootEntryStackNote);

  const VirtAddr next_instruction = va(reinterpret_cast<const void*>(&x86::hw::load_root));
  out.add("the current instruction", next_instruction, 1, kExecute);
  out.add("the trap entry", va(x86_vector_stubs), u64(x86_trap_entry_end - x86_vector_stubs), kExecute);

  DescriptorTableRegister idtr{}, gdtr{};
  asm volatile("sidt %0" : "=m"(idtr));
  asm volatile("sgdt %0" : "=m"(gdtr));
  out.add("the IDT", VirtAddr(idtr.base), u64(idtr.limit) + 1, kRead);
  out.add("the GDT", VirtAddr(gdtr.base), u64(gdtr.limit) + 1, kRead);
  const x86::StackBounds tss = x86::tss_bytes();
  out.add("the TSS", VirtAddr(tss.bottom), tss.top - tss.bottom, kRead);

  constexpr struct {
    u8 ist;
    const char* what;
  } kIst[] = {{x86::kIstDoubleFault, "the #DF stack (IST1)"},
              {x86::kIstNmi, "the NMI stack (IST2)"},
              {x86::kIstMachineCheck, "the #MC stack (IST3)"}};
  for (const auto& s : kIst) {
    const x86::StackBounds b = x86::ist_stack(s.ist);
    if (!b.empty()) out.add(s.what, VirtAddr(b.bottom), b.top - b.bottom, kWrite, VirtAddr(b.top - 1));
  }
  if (const uptr rsp0 = x86::tss_rsp0()) {
    // The whole kernel stack a trap from ring 3 will use: the next process's, since the
    // scheduler sets RSP0 before it loads that process's root (AddressSpace::activate() checks
    // first that it is that process's).
    const x86::StackBounds next = x86::kernel_stack_bounds(rsp0 - 1);
    const u64 next_low = next.empty() ? rsp0 - kTrapFrameRoom : next.bottom;
    out.add("the kernel stack for traps from user mode (TSS.RSP0)", VirtAddr(next_low), rsp0 - next_low, kWrite,
            VirtAddr(rsp0 - 1));
  }

  out.add("the kernel text", va(__text_start), u64(__text_end - __text_start), kExecute);
}

SwitchStacks switch_stacks() {
  SwitchStacks now;
  now.sp = read_rsp();
  const x86::StackBounds stack = x86::kernel_stack_bounds(now.sp);
  now.stack_bottom = stack.bottom;
  now.stack_top = stack.top;
  now.user_trap_top = x86::tss_rsp0();
  now.user_trap_what = "TSS.RSP0";
  return now;
}

}  // namespace pagoda::arch
