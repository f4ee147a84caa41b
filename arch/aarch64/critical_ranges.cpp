// What an AArch64 CPU needs mapped the instant after a TTBR is loaded (mm/mmu.hpp,
// mm/critical_ranges.hpp), as of now, most telling first:
//
//   the running stack          SP's page, a trap frame's room below SP and, on the boot stack,
//                              everything up to its top (the callers' frames)               rw-
//   the current instruction    the ones after the TTBR writes, in aarch64::hw::load_ttbr0()
//                              and hw::load_kernel_roots()                                  r-x
//   the vectors                VBAR_EL1's table (2 KiB, 16 entries)                          r-x
//   the trap entry             aarch64_trap_entry, where every vector branches              r-x
//   the kernel text            __text_start .. __text_end                                   r-x
//
// An exception taken from EL1 stays on SP_EL1, the running stack (no IST, no TSS): the vectors,
// the trap entry and that stack are all the CPU needs to report a fault. Missing any of them,
// the first exception faults again at its own vector: AArch64's exception loop (docs/boot.md).
#include "arch/aarch64/mmu_hw.hpp"
#include "arch/aarch64/cpu.hpp"
#include "arch/aarch64/trap_frame.hpp"
#include "mm/mmu.hpp"
#include "mm/page.hpp"

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

}  // namespace

void critical_ranges(CriticalRanges& out) {
  const u64 sp = read_sp();
  // The kernel's own stack (boot_stack) or the boot stub's low entry stack, before the kernel
  // leaves it (vm::enter_kernel_space()).
  const bool on_entry_stack =
      sp > reinterpret_cast<u64>(boot_entry_stack_bottom) && sp <= reinterpret_cast<u64>(boot_entry_stack_top);
  const u64 bottom = reinterpret_cast<u64>(on_entry_stack ? boot_entry_stack_bottom : boot_stack_bottom);
  const u64 top = reinterpret_cast<u64>(on_entry_stack ? boot_entry_stack_top : boot_stack_top);
  const bool on_boot_stack = sp > bottom && sp <= top;
  // On one of those, all of it that is in use; on another (lab 3's per-process kernel
  // stacks) SP's page and the room below it.
  const u64 low = on_boot_stack ? max<u64>(bottom, sp - kTrapFrameRoom) : sp - kTrapFrameRoom;
  const u64 high = on_boot_stack ? top : align_up(sp + 1, kPageSize);
  out.add("the running stack", VirtAddr(low), high - low, kWrite, VirtAddr(sp));

  out.add("the current instruction (load_ttbr0)", va(reinterpret_cast<const void*>(&aarch64::hw::load_ttbr0)), 1,
          kExecute);
  out.add("the current instruction (kernel roots)",
          va(reinterpret_cast<const void*>(&aarch64::hw::load_kernel_roots)), 1, kExecute);
  const u64 vbar = PAGODA_READ_SYSREG("vbar_el1");
  out.add("the vectors (VBAR_EL1)", VirtAddr(vbar), kVectorTableSize, kExecute);
  out.add("the trap entry", va(aarch64_trap_entry), 1, kExecute);
  out.add("the kernel text", va(__text_start), u64(__text_end - __text_start), kExecute);
}

}  // namespace pagoda::arch
