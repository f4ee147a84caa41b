// What an AArch64 CPU needs mapped the instant after a TTBR is loaded (mm/space/mmu.hpp,
// mm/space/critical_ranges.hpp), as of now, most telling first:
//
//   the running stack          the whole stack SP is on when the kernel knows it (boot_stack,
//                              the entry stack, a process's kernel stack); else SP's page
//                              and a trap frame's room below SP                             rw-
//   the current instruction    the ones after the TTBR writes, in aarch64::hw::load_ttbr0()
//                              and hw::load_kernel_roots()                                  r-x
//   the vectors                VBAR_EL1's table (2 KiB, 16 entries)                          r-x
//   the trap entry             aarch64_trap_entry, where every vector branches              r-x
//   the user-mode trap stack   the EL1 stack set for the next process (set_kernel_stack(),
//                              before its root is loaded): where its next trap from EL0 lands rw-
//   the kernel text            __text_start .. __text_end                                   r-x
//
// An exception taken from EL1 stays on SP_EL1, the running stack (no IST, no TSS): the vectors,
// the trap entry and that stack are all the CPU needs to report a fault. Missing any of them,
// the first exception faults again at its own vector: AArch64's exception loop (docs/boot.md).
#include "arch/aarch64/mmu_hw.hpp"
#include "arch/aarch64/cpu.hpp"
#include "arch/aarch64/trap_frame.hpp"
#include "mm/space/mmu.hpp"
#include "mm/base/page.hpp"
#include "proc/arch.hpp"
#include "proc/kernel_stack.hpp"

extern "C" char __text_start[], __text_end[], aarch64_vectors[], aarch64_trap_entry[], boot_stack_bottom[],
    boot_stack_top[], boot_entry_stack_bottom[], boot_entry_stack_top[];

namespace pagoda::arch {
namespace {

/// Room below the stack pointer for the trap frame the vectors push before any C++ runs.
constexpr u64 kTrapFrameRoom = TRAP_FRAME_SIZE;
/// The vector table: 16 entries of 128 bytes.
constexpr u64 kVectorTableSize = 2048;

u64 read_sp() {
  u64 sp;
  asm volatile("mov %0, sp" : "=r"(sp));
  return sp;
}

constexpr Access kWrite{.write = true};
constexpr Access kExecute{.execute = true};

VirtAddr va(const void* p) { return VirtAddr(reinterpret_cast<u64>(p)); }

/// The known stack holding @p sp: the boot stub's entry stack, the kernel's boot_stack, or a
/// process's kernel stack; empty for another.
proc::StackRange stack_of(u64 sp) {
  const auto in = [sp](const char* bottom, const char* top) {
    return sp > reinterpret_cast<u64>(bottom) && sp <= reinterpret_cast<u64>(top);
  };
  if (in(boot_stack_bottom, boot_stack_top))
    return {reinterpret_cast<uptr>(boot_stack_bottom), reinterpret_cast<uptr>(boot_stack_top), 0};
  const proc::StackRange process = proc::stack_containing(sp - 1);
  if (!process.empty()) return process;
  if (in(boot_entry_stack_bottom, boot_entry_stack_top))
    return {reinterpret_cast<uptr>(boot_entry_stack_bottom), reinterpret_cast<uptr>(boot_entry_stack_top), 0};
  return {};
}

}  // namespace

void critical_ranges(CriticalRanges& out) {
  const u64 sp = read_sp();
  // On a stack the kernel knows (its own boot_stack, the boot stub's low entry stack before the
  // kernel leaves it, a process's kernel stack), all of it (a later switch on the same stack is
  // then proven: switch_stacks()); on another, SP's page and the room below it.
  const proc::StackRange stack = stack_of(sp);
  const u64 low = stack.empty() ? sp - kTrapFrameRoom : stack.bottom;
  const u64 high = stack.empty() ? align_up(sp + 1, kPageSize) : stack.top;
  out.add("the running stack", VirtAddr(low), high - low, kWrite, VirtAddr(sp));
  if (stack.bottom == reinterpret_cast<uptr>(boot_entry_stack_bottom)) out.note_last(kBootEntryStackNote);

  out.add("the current instruction (load_ttbr0)", va(reinterpret_cast<const void*>(&aarch64::hw::load_ttbr0)), 1,
          kExecute);
  out.add("the current instruction (kernel roots)", va(reinterpret_cast<const void*>(&aarch64::hw::load_kernel_roots)),
          1, kExecute);
  const u64 vbar = PAGODA_READ_SYSREG("vbar_el1");
  out.add("the vectors (VBAR_EL1)", VirtAddr(vbar), kVectorTableSize, kExecute);
  out.add("the trap entry", va(aarch64_trap_entry), 1, kExecute);
  if (const uptr top = arch::kernel_stack()) {
    // The whole kernel stack a trap from EL0 will use: the next process's (set before its root
    // is loaded; AddressSpace::activate() checks first that it is that process's).
    const proc::StackRange next = proc::stack_containing(top - 1);
    const u64 next_low = next.empty() ? top - kTrapFrameRoom : next.bottom;
    out.add("the kernel stack for traps from user mode (the EL1 stack)", VirtAddr(next_low), top - next_low, kWrite,
            VirtAddr(top - 1));
  }
  out.add("the kernel text", va(__text_start), u64(__text_end - __text_start), kExecute);
}

SwitchStacks switch_stacks() {
  SwitchStacks now;
  now.sp = read_sp();
  const proc::StackRange stack = stack_of(now.sp);
  now.stack_bottom = stack.bottom;
  now.stack_top = stack.top;
  now.user_trap_top = arch::kernel_stack();
  now.user_trap_what = "the EL1 stack";
  return now;
}

}  // namespace pagoda::arch
