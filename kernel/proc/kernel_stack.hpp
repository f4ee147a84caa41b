/// @file kernel_stack.hpp
/// @brief Kernel stacks: one per process, in the kStackBase area, each above a guard that is
/// never mapped, mapped through the kernel's address space so that every root sees it.
///
/// A process runs its kernel code (system calls, interrupts from user mode, the context switch)
/// on a kernel stack of its own. The area starts at layout::kStackBase (kernel/mm/base/layout.hpp)
/// and is cut into slots of kKernelStackStride bytes; slot i is
///
///     kStackBase + i * stride                       + kKernelStackGuard           + stride
///     |<-------- guard: NEVER mapped ------->|<---- the stack: mapped rw- NX ---->|
///                                            ^ bottom                            ^ top (the
///                                              (an overflow runs off here into     first push
///                                               the guard and faults)              goes below)
///
/// The stack's pages are mapped through vm::kernel_space(): the kernel half is shared by every
/// root (x86_64: the same PML4 entries; AArch64: one TTBR1 root), so the stack exists in every
/// process's root. That matters twice: the context switch loads the next process's root while
/// it still runs on the previous process's stack, and an interrupt taken in user mode pushes
/// its frame on the interrupted process's stack through that process's root. A stack mapped
/// in one root only kills the machine at one of these two moments (labs/03-process-roots).
///
/// A stack that overflows writes into the guard; the fault cannot be delivered on the same
/// stack, so the CPU escalates (x86_64: \#DF, on its own IST stack; AArch64 has no such thing:
/// its vector entry checks SP against the guard before it pushes and moves to an overflow
/// stack, arch/aarch64/vectors.S), and the trap code asks guard_hit() whether the address was a
/// guard: then the report says "kernel stack overflow".
#pragma once

#include "core/cpu.hpp"
#include "lib/format.hpp"
#include "lib/result.hpp"
#include "lib/types.hpp"
#include "mm/base/addr.hpp"
#include "mm/base/layout.hpp"
#include "mm/base/page.hpp"

namespace pagoda::proc {

/// Pages of one kernel stack (16 KiB).
inline constexpr usize kKernelStackPages = 4;
inline constexpr u64 kKernelStackSize = kKernelStackPages * kPageSize;
/// The unmapped bytes below each stack (as large as the stack: a frame cannot jump over it).
inline constexpr u64 kKernelStackGuard = kKernelStackSize;
/// One slot: the guard, then the stack.
inline constexpr u64 kKernelStackStride = kKernelStackGuard + kKernelStackSize;
/// Slots in the area: one per process that can exist at once. Lab 6's wide fork needs 64
/// children beside their parent and the first process; a few more leave room for a shell's
/// background jobs. The area takes slots * 32 KiB of address space (2.5 MiB, far below the
/// image); a slot costs its 4 frames only while a process holds it.
inline constexpr usize kKernelStackSlots = 80;

static_assert(layout::kStackBase + kKernelStackSlots * kKernelStackStride <= layout::kKernelImageBase,
              "the kernel stacks fit below the kernel image");

/// One kernel stack: its slot and the frames behind its pages.
struct KernelStack {
  u32 slot = ~u32{0};
  PhysAddr frames[kKernelStackPages] = {};
  usize mapped = 0;  ///< how many of frames[] are mapped (all of them once created)

  bool valid() const { return slot != ~u32{0}; }
  /// The lowest address of the stack (the guard is just below).
  VirtAddr bottom() const { return VirtAddr(layout::kStackBase + slot * kKernelStackStride + kKernelStackGuard); }
  /// One past the highest address: the initial stack pointer.
  VirtAddr top() const { return bottom().offset(kKernelStackSize); }
  /// The first address of the guard below it.
  VirtAddr guard() const { return VirtAddr(layout::kStackBase + slot * kKernelStackStride); }
};

/// A free slot with every page mapped to a fresh, zeroed frame; NoMemory / Overflow (every slot
/// taken) with nothing left allocated.
[[nodiscard]] Result<KernelStack> create_kernel_stack();

/// Maps the pages of @p stack (slot chosen, frames not yet allocated) where every root sees them,
/// and nowhere else; on failure unmaps and frees what it did and returns the error. (The lab-3
/// part: see the file comment.)
[[nodiscard]] Result<void> map_kernel_stack(KernelStack& stack);

/// Unmaps @p stack, frees its frames and its slot. It must not be in use.
void destroy_kernel_stack(KernelStack& stack);

/// The stack [bottom, top) of the slot in use that holds @p address (its guard excluded); an
/// empty range (bottom == top == 0) when none does.
struct StackRange {
  uptr bottom = 0;
  uptr top = 0;
  u32 slot = 0;
  bool empty() const { return top <= bottom; }
};
StackRange stack_containing(uptr address);

/// The slot of the area that @p address lies in (its guard or its stack), or kKernelStackSlots
/// outside the area.
inline usize kernel_stack_slot(uptr address) {
  if (address < layout::kStackBase) return kKernelStackSlots;
  const u64 slot = (address - layout::kStackBase) / kKernelStackStride;
  return slot < kKernelStackSlots ? usize(slot) : kKernelStackSlots;
}

/// The stack [bottom, top) of slot @p slot (< kKernelStackSlots), whether or not it holds one.
inline StackRange kernel_stack_range(usize slot) {
  const uptr bottom = layout::kStackBase + slot * kKernelStackStride + kKernelStackGuard;
  return {bottom, bottom + kKernelStackSize, u32(slot)};
}

/// When @p address lies in the guard of a slot in use: that slot's stack (what ran over it);
/// empty otherwise.
StackRange guard_hit(uptr address);

/// True when slot @p slot holds a stack now.
bool kernel_stack_slot_used(usize slot);

/// @name The kernel stack of traps from user mode
/// A trap or system call from user mode lands on the kernel stack the switch set for the process
/// it interrupts (arch::set_kernel_stack(): TSS.RSP0 and the system-call stack on x86_64, the EL1
/// stack on AArch64). Set late, never, to the wrong end or to another process's stack, the trap
/// either cannot push its frame (x86_64: a double fault; AArch64: the vector's stack check) or,
/// worse, pushes it on a stack that is not the process's and silently corrupts it. These name
/// which, the cause first.
/// @{
/// Writes why @p top cannot be the kernel stack of a trap from the current process (one
/// sentence: "TSS.RSP0 is 0: ...", "... is the bottom of pid 1's kernel stack ...", "... is the
/// top of the kernel stack of slot 3, which belongs to pid 2 (ticker), not to pid 1 (hello) ...")
/// to @p sink and returns true; false (nothing written) when it is the top of that process's own
/// kernel stack. @p what names where the value was read ("TSS.RSP0").
bool explain_user_trap_stack(FormatSink& sink, const char* what, uptr top);

namespace detail {
/// The kernel stack [bottom, top) of the process running on each CPU (0, 0 in kernel context):
/// set at every switch (note_running_stack()), read at every trap from user mode.
struct RunningStack {
  uptr bottom = 0, top = 0;
};
inline PerCpu<RunningStack> g_running_stack;
void user_trap_frame_elsewhere(uptr frame, const char* what, uptr top);
}  // namespace detail

/// The ISA's trap code calls this for every trap and system call from user mode, before anything
/// else, with where the frame was pushed (@p frame: its lowest address) and the stack value it
/// came from (@p what, @p top: "TSS.RSP0", its value): panics, naming the cause, when the frame is
/// not on the current process's own kernel stack. Two compares when it is.
/// (@p top is read only then: it may be a per-CPU value's proxy, read at a cost.)
template <class Top> inline void check_user_trap_frame(uptr frame, const char* what, const Top& top) {
  const detail::RunningStack& running = detail::g_running_stack.here();
  if (frame - running.bottom < running.top - running.bottom) [[likely]]
    return;
  detail::user_trap_frame_elsewhere(frame, what, uptr(top));
}

/// Records @p stack (invalid: none, the idle loop) as the running process's kernel stack, for
/// check_user_trap_frame(); the scheduler calls it with every switch.
inline void note_running_stack(const KernelStack& stack) {
  detail::g_running_stack.here() = {stack.valid() ? stack.bottom().value() : 0,
                                    stack.valid() ? stack.top().value() : 0};
}

/// Writes where the kernel address @p va lies, for the report of a kernel fault at it: "on the
/// kernel stack of slot 2 [b, t), pid 3 (spin), its top page", "in the guard page below the
/// kernel stack of slot 2", "in the physical window (physical 0x123000)", "in the lower half"...
void describe_address(FormatSink& sink, uptr va);

/// Makes the pre-switch check (AddressSpace::activate()) refuse a switch into a process's root
/// while the kernel stack set for traps from user mode is not that process's own (proc::init()).
void judge_user_trap_stacks_at_switches();
/// @}

}  // namespace pagoda::proc
