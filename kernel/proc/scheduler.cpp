// The scheduler, the switch of roots and stacks, and the idle loop (see scheduler.hpp).
#include "proc/scheduler.hpp"

#include "core/arch.hpp"
#include "core/panic.hpp"
#include "mm/temp_map.hpp"
#include "mm/vm.hpp"
#include "proc/arch.hpp"
#include "proc/kernel_stack.hpp"
#include "proc/temp_map_calls.hpp"

namespace pagoda::proc {
namespace {

/// The process on the CPU; nullptr while the idle loop (or boot) runs.
Process* g_current = nullptr;
/// Where switch_context() left the idle loop's stack (the boot stack).
uptr g_idle_sp = 0;
u64 g_switches = 0;

/// The next ready process after @p after in table order (round robin), or nullptr.
Process* next_ready(const Process* after) {
  const Span<Process> table = process_table();
  // LAB 3 BEGIN round robin: the first Ready slot after @p after, wrapping around
  const usize start = after == nullptr ? 0 : usize(after - table.data()) + 1;
  for (usize k = 0; k < table.size(); ++k) {
    Process& p = table[(start + k) % table.size()];
    if (p.state == State::Ready) return &p;
  }
  return nullptr;
  // LAB 3 SKELETON
  // (void)after;
  // (void)table;
  // panic("lab 3: write next_ready() in kernel/proc/scheduler.cpp (labs/03-process-roots/README.md)");
  // LAB 3 END
}

/// Moves the CPU from the current context to @p next (nullptr: the idle loop): its root, its
/// kernel stack for traps from user mode, then its saved registers and stack.
void switch_to(Process* next) {
  Process* prev = g_current;
  if (prev == next) return;
  // Temp-map slots are a per-CPU stack: one held across a switch would be released by another
  // thread's code, out of order (mm/temp_map.hpp).
  if (const TempMapArea* temp = TempMapArea::current(); temp != nullptr && temp->depth() != 0)
    panic("switch_to: {} temp-map slot(s) still live across a context switch (a TempMap held while "
          "yielding or sleeping)", temp->depth());
  // LAB 3 BEGIN the switch, first half: the kernel stack for traps from user mode, then the root
  // The next process's kernel stack for traps from user mode first, so that activate()'s check
  // walks it in the new root too; then the root. We still run on prev's stack (or the boot
  // stack) until switch_context(): the new root must map it, which it does because kernel
  // stacks live in the shared kernel half. The idle loop runs in the kernel's own root.
  AddressSpace& space = next != nullptr ? next->space() : vm::kernel_space();
  if (next != nullptr) arch::set_kernel_stack(next->kstack.top().value());
  space.activate();
  // LAB 3 SKELETON
  // panic("lab 3: write the switch in switch_to() in kernel/proc/scheduler.cpp "
  //       "(labs/03-process-roots/README.md)");
  // LAB 3 END
  vm::set_current_space(next != nullptr ? &next->space() : nullptr);
  g_current = next;
  note_running_stack(next != nullptr ? next->kstack : KernelStack{});  // what traps from user mode must land on
  ++g_switches;
  // LAB 3 BEGIN the switch, second half: the context
  // Saves prev's callee-saved registers and stack pointer; returns on next's (the idle loop's
  // is the boot stack's).
  arch::switch_context(prev != nullptr ? &prev->saved_sp : &g_idle_sp, next != nullptr ? next->saved_sp : g_idle_sp);
  // LAB 3 SKELETON
  // (void)prev;
  // (void)g_idle_sp;
  // panic("lab 3: write the context switch at the end of switch_to() in kernel/proc/scheduler.cpp "
  //       "(labs/03-process-roots/README.md)");
  // LAB 3 END
}

/// Frees every process that has ended and has no parent to reap it (never the current one:
/// the idle loop runs this).
void reap_zombies() {
  for (Process& p : process_table())
    if (p.state == State::Zombie && p.parent == 0) (void)reap(p);
}

/// The process that adopts the children of @p ending: the first process (pid 1) while it lives
/// (and is not @p ending), else none (0: the idle loop reaps them).
u32 adopter(const Process& ending) {
  constexpr u32 kFirst = 1;
  const Process* first = find_process(kFirst);
  return first != nullptr && first != &ending && first->state != State::Zombie ? kFirst : 0;
}

/// Makes @p parent (a pid, 0 for none) Ready if it waits for a child.
void wake_waiter(u32 parent) {
  if (parent == 0) return;
  Process* p = find_process(parent);
  if (p != nullptr && p->state == State::Waiting) p->state = State::Ready;
}

bool any_process() {
  for (const Process& p : process_table())
    if (p.state != State::Free) return true;
  return false;
}

}  // namespace

Process* current() { return g_current; }

u64 ticks() { return arch::timer_ticks(); }

u64 switches() { return g_switches; }

void schedule() {
  // LAB 3 BEGIN give the CPU to the next ready process (the idle loop when there is none)
  // A running process that stays ready goes to the back of the round; one that ended, sleeps
  // or waits is left as it is. Nothing else ready: a running process carries on.
  Process* next = next_ready(g_current);
  if (g_current != nullptr && g_current->state == State::Running) {
    if (next == nullptr) return;
    g_current->state = State::Ready;
  }
  if (next == nullptr && g_current == nullptr) return;  // idle, and nothing to run
  if (next != nullptr) next->state = State::Running;
  switch_to(next);
  // LAB 3 SKELETON
  // (void)switch_to;
  // panic("lab 3: write schedule() in kernel/proc/scheduler.cpp (labs/03-process-roots/README.md)");
  // LAB 3 END
}

void sleep(u64 n) {
  Process* p = g_current;
  PAGODA_ASSERT(p != nullptr);
  p->wake_tick = ticks() + n;
  p->state = State::Sleeping;
  schedule();
}

void exit_current(const abi::ExitInfo& info) {
  Process* p = g_current;
  PAGODA_ASSERT(p != nullptr);
  p->exit = info;
  p->state = State::Zombie;
  // Its children go to the first process (or to the kernel); an adopter that waits may now
  // find a zombie among them.
  const u32 heir = adopter(*p);
  bool zombies = false;
  for (Process& child : process_table())
    if (child.state != State::Free && child.parent == p->pid) {
      child.parent = heir;
      zombies = zombies || child.state == State::Zombie;
    }
  if (zombies) wake_waiter(heir);
  wake_waiter(p->parent);
  schedule();
  panic("process {} ran again after it ended", p->pid);
}

void timer_tick(bool from_user) {
  const u64 now = ticks();
  for (Process& p : process_table())
    if (p.state == State::Sleeping && now >= p.wake_tick) p.state = State::Ready;
  if (!from_user) temp_map_timer_hook();  // lab 4's stress test: a temp map nested in a call's
  // LAB 3 BEGIN preemption: a tick that interrupted a process in user mode ends its turn
  // Only from user mode: kernel code is never preempted (it may hold a temporary mapping, or be
  // half-way through a change of the page tables).
  if (from_user && g_current != nullptr) schedule();
  // LAB 3 SKELETON
  // (void)from_user;
  // LAB 3 END
}

void run_processes() {
  for (;;) {
    reap_zombies();
    if (!any_process()) return;
    if (next_ready(nullptr) != nullptr) {
      schedule();
      continue;
    }
    arch::interrupts_enable();
    arch::wait_for_interrupt();
    arch::interrupts_disable();
  }
}

}  // namespace pagoda::proc
