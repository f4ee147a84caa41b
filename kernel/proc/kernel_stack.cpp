// Kernel stacks in the kStackBase area (see kernel_stack.hpp); their words (a wrong stack for
// traps from user mode, where a kernel address lies) are kernel_stack_report.cpp's.
#include "proc/kernel_stack.hpp"

#include "core/last_failure.hpp"
#include "core/panic.hpp"
#include "mm/vm.hpp"
#include "proc/process.hpp"

namespace pagoda::proc {
namespace {

/// Which slots hold a stack (slot i: [kStackBase + i * stride, + stride)).
bool g_used[kKernelStackSlots];

/// Unmaps the pages of @p stack that are mapped and frees their frames.
void release_pages(KernelStack& stack) {
  // LAB 3 BEGIN unmap a kernel stack's pages and free their frames
  // Through the kernel's space, as they were mapped: every root loses them at once (the kernel
  // half is shared). Each page must still map the frame recorded for it.
  AddressSpace& kernel = vm::kernel_space();
  for (usize i = 0; i < stack.mapped; ++i) {
    const Result<PhysAddr> was = kernel.unmap(stack.bottom().offset(i * kPageSize));
    if (was.is_error() || was.value() != stack.frames[i])
      panic("kernel stack slot {}: page {} is not mapped to its frame {:#x}", stack.slot, i, stack.frames[i].value());
    vm::frames().free(stack.frames[i]);
    stack.frames[i] = PhysAddr();
  }
  stack.mapped = 0;
  // LAB 3 SKELETON
  // (void)stack;
  // panic("lab 3: write release_pages() in kernel/proc/kernel_stack.cpp (labs/03-process-roots/README.md)");
  // LAB 3 END
}

}  // namespace

Result<KernelStack> create_kernel_stack() {
  KernelStack stack;
  // LAB 3 BEGIN take a free slot and map its stack
  for (usize i = 0; i < kKernelStackSlots; ++i) {
    if (g_used[i]) continue;
    stack.slot = u32(i);
    break;
  }
  if (!stack.valid()) return Error(Error::Overflow, "every kernel stack slot is taken");
  g_used[stack.slot] = true;
  const Result<void> mapped = map_kernel_stack(stack);
  if (mapped.is_error()) {
    g_used[stack.slot] = false;
    return mapped.error();
  }
  return stack;
  // LAB 3 SKELETON
  // (void)stack;
  // return Error(Error::NotImplemented, "lab 3: write create_kernel_stack() in kernel/proc/kernel_stack.cpp "
  //                                     "(labs/03-process-roots/README.md)");
  // LAB 3 END
}

Result<void> map_kernel_stack(KernelStack& stack) {
  // LAB 3 BEGIN map a kernel stack where every root sees it
  // Through the kernel's space: the kernel half is shared, so every root sees these pages; the
  // guard below stays unmapped. Frames the window reaches, so that they can be zeroed.
  AddressSpace& kernel = vm::kernel_space();
  for (usize i = 0; i < kKernelStackPages; ++i) {
    const Result<PhysAddr> frame = vm::frames().allocate_below(vm::reachable_limit());
    if (frame.is_error()) {
      release_pages(stack);
      return frame.error();
    }
    vm::zero_frame(frame.value());
    const Result<void> mapped = kernel.map(stack.bottom().offset(i * kPageSize), frame.value(),
                                           vm::kernel_perms(kKernelData));  // global
    if (mapped.is_error()) {
      vm::frames().free(frame.value());
      release_pages(stack);
      return mapped.error();
    }
    stack.frames[i] = frame.value();
    stack.mapped = i + 1;
  }
  return {};
  // LAB 3 SKELETON
  // (void)stack;
  // return Error(Error::NotImplemented, "lab 3: write map_kernel_stack() in kernel/proc/kernel_stack.cpp "
  //                                     "(labs/03-process-roots/README.md)");
  // LAB 3 END
}

namespace {

/// After the teardown of the stack of @p slot: when the slot is free again yet one of its pages
/// is still mapped, the kernel's own words (printed, kept for fault-why): the stack's frames were
/// freed, or its slot given back, while its pages stayed mapped.
void check_given_back(usize slot) {
  if (slot >= kKernelStackSlots || g_used[slot]) return;
  const StackRange r = kernel_stack_range(slot);
  for (uptr va = r.bottom; va < r.top; va += kPageSize) {
    const Walk walk = vm::kernel_space().query(VirtAddr(va));
    if (!walk.mapped()) continue;
    const FreeCheck check = vm::frames().check_free(walk.pa);  // not Ok: the frame is not in use
    const bool freed = check == FreeCheck::NeverAllocated || check == FreeCheck::DoubleFree;
    FailureLine line;
    format_to(line,
              "proc: kernel stack slot {} was given back, yet its page {:#x} is still mapped to frame {:#x}{}: "
              "the stack's frames were freed (or its slot given back) while its pages stayed mapped",
              slot, va, walk.pa.value(), freed ? ", which the allocator holds free" : "");
    return;
  }
}

}  // namespace

void destroy_kernel_stack(KernelStack& stack) {
  if (!stack.valid()) return;
  const u32 slot = stack.slot;
  const uptr sp = reinterpret_cast<uptr>(__builtin_frame_address(0));
  if (sp >= stack.bottom().value() && sp < stack.top().value())
    panic("destroying kernel stack slot {} while running on it", stack.slot);
  // LAB 3 BEGIN give back the stack's pages, then its slot
  release_pages(stack);
  g_used[stack.slot] = false;
  stack.slot = ~u32{0};
  // LAB 3 SKELETON
  // (void)release_pages;
  // panic("lab 3: write destroy_kernel_stack() in kernel/proc/kernel_stack.cpp (labs/03-process-roots/README.md)");
  // LAB 3 END
  check_given_back(slot);
}

StackRange stack_containing(uptr address) {
  const usize slot = kernel_stack_slot(address);
  if (slot == kKernelStackSlots || !g_used[slot]) return {};
  const StackRange r = kernel_stack_range(slot);
  return address >= r.bottom ? r : StackRange{};
}

StackRange guard_hit(uptr address) {
  const usize slot = kernel_stack_slot(address);
  if (slot == kKernelStackSlots || !g_used[slot]) return {};
  const StackRange r = kernel_stack_range(slot);
  return address < r.bottom ? r : StackRange{};
}

bool kernel_stack_slot_used(usize slot) { return slot < kKernelStackSlots && g_used[slot]; }

}  // namespace pagoda::proc

// The process layout the grader and the tools read from the ELF instead of copying it
// (lib/facts.hpp; grade/pagoda_grade/symbols.py fact()).
#include "arch_impl/user_space.hpp"
#include "lib/facts.hpp"
#include "proc/loader.hpp"

namespace pagoda::proc {
namespace {
PAGODA_FACT(kernel_stack_size, kKernelStackSize)
PAGODA_FACT(kernel_stack_guard, kKernelStackGuard)
PAGODA_FACT(kernel_stack_stride, kKernelStackStride)
PAGODA_FACT(kernel_stack_slots, kKernelStackSlots)
PAGODA_FACT(user_end, arch::UserSpace::kEnd)
PAGODA_FACT(user_stack_top, kUserStackTop)
PAGODA_FACT(user_stack_pages, kUserStackPages)
}  // namespace
}  // namespace pagoda::proc
