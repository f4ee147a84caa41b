/// @file kernel_stack_report.cpp
/// @brief The words of kernel stacks (kernel_stack.cpp): why a stack value cannot be the kernel
/// stack of a trap from user mode (explain_user_trap_stack(), and the pre-switch check's judge of
/// it), the panic of a trap frame pushed on the wrong stack, and where a kernel address lies, for
/// the report of a kernel fault (describe_address()).

#include "proc/kernel_stack.hpp"

#include "core/panic.hpp"
#include "mm/vm.hpp"
#include "proc/process.hpp"

namespace pagoda::proc {

namespace {

/// The process whose kernel stack is in slot @p slot, or nullptr.
const Process* owner_of_slot(usize slot) {
  for (const Process& p : process_table())
    if (p.state != State::Free && p.kstack.valid() && p.kstack.slot == slot) return &p;
  return nullptr;
}

/// explain_user_trap_stack() for process @p p; @p live: the trap happens now (so the stack must
/// be mapped in the live root), not at a switch before the process's root is loaded.
bool explain_for(FormatSink& sink, const char* what, uptr top, const Process* p, bool live) {
  if (p == nullptr) {
    format_to(sink, "{} is {:#x}, but no process is running: a trap from user mode with no current process", what, top);
    return true;
  }
  const uptr want = p->kstack.valid() ? p->kstack.top().value() : 0;
  const uptr want_bottom = p->kstack.valid() ? p->kstack.bottom().value() : 0;
  const auto whose = [&](usize slot) {
    if (const Process* o = owner_of_slot(slot)) {
      if (o == p) format_to(sink, "pid {} ({}) itself", o->pid, o->name_view());
      else format_to(sink, "pid {} ({})", o->pid, o->name_view());
    } else {
      format_to(sink, "no process (the slot is {}: a stack that was freed)",
                kernel_stack_slot_used(slot) ? "in use" : "free");
    }
  };
  const auto theirs = [&] {
    format_to(sink,
              "pid {} ({}), whose kernel stack is [{:#x}, {:#x}): the switch to pid {} did not set its kernel "
              "stack (arch::set_kernel_stack(top of its stack), before its root is loaded)",
              p->pid, p->name_view(), want_bottom, want, p->pid);
  };
  if (top == want && want != 0) {
    if (!live || vm::mapped_now(VirtAddr(top - sizeof(u64)))) return false;
    format_to(sink,
              "{} is {:#x}, the top of pid {} ({})'s kernel stack, but the page below it is not mapped in the "
              "live root: the kernel stack is missing from the root that runs the process",
              what, top, p->pid, p->name_view());
    return true;
  }
  if (top == 0 && !live) {
    format_to(sink,
              "{} is still 0 when the root of pid {} ({}) is loaded: nothing wrote its kernel stack for traps "
              "from user mode there, neither a call of arch::set_kernel_stack() before the load nor the function "
              "itself ({} must hold the top of its kernel stack, {:#x}, from the load on: a trap may come)",
              what, p->pid, p->name_view(), what, want);
    return true;
  }
  if (top == 0) {
    format_to(sink,
              "{} is 0: no kernel stack was set for traps from user mode when pid {} ({}) was switched to (it "
              "must be the top of its kernel stack, {:#x}, set before the process's root is loaded)",
              what, p->pid, p->name_view(), want);
    return true;
  }
  const usize slot = kernel_stack_slot(top - 1);
  if (slot < kKernelStackSlots) {
    const StackRange r = kernel_stack_range(slot);
    if (top <= r.bottom) {
      format_to(sink, "{} is {:#x}, at the bottom of the kernel stack of slot {} [{:#x}, {:#x}) of ", what, top, slot,
                r.bottom, r.top);
      whose(slot);
      format_to(sink,
                ": the first push lands in the guard page below it; a stack grows down, so {} must be the "
                "stack's top, {:#x}",
                what, r.top);
      return true;
    }
    format_to(sink, "{} is {:#x}, on the kernel stack of slot {} [{:#x}, {:#x}), which belongs to ", what, top, slot,
              r.bottom, r.top);
    whose(slot);
    if (owner_of_slot(slot) == p) {
      format_to(sink, ", but not its top {:#x}: the frame would not be where the trap code looks for it", r.top);
      return true;
    }
    format_to(sink, ", not to ");
    theirs();
    return true;
  }
  format_to(sink, "{} is {:#x}, on no process's kernel stack (the kStackBase area is [{:#x}, {:#x})), not on that of ",
            what, top, layout::kStackBase, layout::kStackBase + kKernelStackSlots * kKernelStackStride);
  theirs();
  return true;
}

/// AddressSpace's judge of the kernel stack of traps from user mode at a switch (its owner is
/// a process id).
bool judge_at_switch(u32 owner, u64 top, const char* what, FormatSink& why) {
  const Process* p = find_process(owner);
  if (p == nullptr) return false;  // a space no process owns yet: nothing to judge by
  return explain_for(why, what, top, p, false);
}

}  // namespace

bool explain_user_trap_stack(FormatSink& sink, const char* what, uptr top) {
  return explain_for(sink, what, top, current(), true);
}

void describe_address(FormatSink& sink, uptr va) {
  if (va < layout::kKernelHalfBase) {
    format_to(sink, "in the lower half (a process's own half; nothing of the kernel lives there after lab 2)");
    const Span<const u64> used = vm::frames().used_bitmap();
    const AddressSpace* space = vm::current_space();
    if (va / kPageSize < used.size() * 64 && (space == nullptr || space->is_kernel()))
      format_to(sink,
                "; {:#x} is below the top of RAM: a physical address used as a pointer? (phys_to_ptr() gives "
                "the window's address of a frame)",
                va);
    // A process that is not live maps it: the kernel wrote it through its user address (seed 003).
    for (Process& p : process_table()) {
      if (!p.has_space() || &p.space() == space) continue;  // a space being loaded is Free yet
      const Walk walk = p.space().query(VirtAddr(va).align_down(kPageSize));
      if (!walk.mapped()) continue;
      format_to(sink,
                "; pid {} ({}) maps it in its own root {:#x}, which is not live: a process that is not live is "
                "reached through its own tables and temporary mappings of its frames (lab 4), never through its "
                "user addresses",
                p.pid, p.name_view(), walk.root.value());
      break;
    }
    return;
  }
  const usize slot = kernel_stack_slot(va);
  if (slot < kKernelStackSlots) {
    const StackRange r = kernel_stack_range(slot);
    const Process* o = owner_of_slot(slot);
    if (va < r.bottom)
      format_to(sink, "in the guard page below the kernel stack of slot {} [{:#x}, {:#x})", slot, r.bottom, r.top);
    else
      format_to(sink, "on the kernel stack of slot {} [{:#x}, {:#x}), page {} of {}{}", slot, r.bottom, r.top,
                (va - r.bottom) / kPageSize, kKernelStackPages, va >= r.top - kPageSize ? " (its top page)" : "");
    if (o != nullptr) format_to(sink, ", pid {} ({})", o->pid, o->name_view());
    else format_to(sink, ", a slot {}", kernel_stack_slot_used(slot) ? "in use" : "no process holds");
    return;
  }
  if (va >= layout::kStackBase && va < layout::kKernelImageBase)
    format_to(sink, "in the kernel-stack area, past its slots");
  else if (va >= layout::kKernelImageBase) format_to(sink, "in the kernel image");
  else if (va >= layout::kTempMapBase)
    format_to(sink, "in the temp-map area (slot {})", (va - layout::kTempMapBase) / kPageSize);
  else if (va >= layout::kMmioBase)
    format_to(sink, "in the device area (device register at physical {:#x})", va - layout::kMmioBase);
  else if (va >= layout::kWindowBase + layout::kWindowSize)
    format_to(sink, "above the physical window (RAM there is reached only through temporary mappings)");
  else if (va >= layout::kWindowBase)
    format_to(sink, "in the physical window (physical {:#x})", va - layout::kWindowBase + layout::kWindowPhysBase);
  else format_to(sink, "in the kernel half, below the physical window");
}

void judge_user_trap_stacks_at_switches() { AddressSpace::set_trap_stack_judge(judge_at_switch); }

void detail::user_trap_frame_elsewhere(uptr frame, const char* what, uptr top) {
  const Process* p = current();
  if (p != nullptr && p->kstack.valid() && frame >= p->kstack.bottom().value() && frame < p->kstack.top().value()) {
    note_running_stack(p->kstack);  // its stack moved since the last switch (exec): right after all
    return;
  }
  char why[400];
  BufferSink sink(why, sizeof why);
  if (!explain_user_trap_stack(sink, what, top)) format_to(sink, "{} is right, but the frame is at {:#x}", what, frame);
  println("TRAP FROM USER MODE ON THE WRONG KERNEL STACK: the frame at {:#x} is not on the running process's own "
          "kernel stack, so it overwrites whatever that stack holds: {}",
          frame, sink.view());
  panic("the kernel stack for traps from user mode is wrong: {}", sink.view());
}

}  // namespace pagoda::proc
