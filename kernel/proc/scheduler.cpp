// The scheduler, the switch of roots and stacks, and the idle loop (see scheduler.hpp).
#include "proc/scheduler.hpp"

#include "core/arch.hpp"
#include "core/panic.hpp"
#include "core/stop.hpp"
#include "lib/facts.hpp"
#include "mm/tempmap/temp_map.hpp"
#include "mm/vm.hpp"
#include "lib/console.hpp"
#include "proc/arch.hpp"
#include "proc/kernel_stack.hpp"
#include "proc/temp_map_calls.hpp"
#include "proc/terminal.hpp"

namespace pagoda::proc {
namespace {

/// The process on this CPU (detail::g_current_of's slot); nullptr while its idle loop runs.
ThisCpu<detail::g_current_of> g_current;
/// Where switch_context() left each CPU's idle loop's stack (the boot CPU's: the boot stack).
PerCpu<uptr> g_idle_sp_of;
ThisCpu<g_idle_sp_of> g_idle_sp;
u64 g_switches = 0;
/// The tick count when each CPU last moved to another context: when its current turn began.
[[gnu::used]] PerCpu<u64> g_turn_began_of;  // (kept, and its stores, with nothing reading it: the grader does)
ThisCpu<g_turn_began_of> g_turn_began;
/// Ticks a turn counts before a tick from user mode may end it. The first tick counted in a turn
/// may have fallen due before the process ran a single instruction: while the kernel switched to
/// it, interrupts off (on a busy host, or with a debugger's breakpoint in the scheduler's page,
/// the switch can outlast a whole period), taken the moment the process enters user mode. Ended
/// there, the process would lose its turn, turn after turn. The second tick falls due a period
/// after the first, while the process runs.
constexpr u64 kTicksPerTurn = 2;
PAGODA_FACT(ticks_per_turn, kTicksPerTurn)  // the grader times each spinner's turn (grade/test_lab3.py)

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

/// Whether @p p runs on this CPU: the one it is pinned to (Process::cpu).
bool runs_here(const Process& p) { return p.cpu == this_cpu().id; }

/// Two CPUs: the next ready process after @p after in table order (round robin) that runs on
/// this CPU, or nullptr. (Lab 8's pick; next_ready() is lab 3's, for one CPU.)
Process* next_ready_here(const Process* after) {
  const Span<Process> table = process_table();
  // LAB 8 BEGIN this CPU's round robin: the first Ready slot after @p after that runs here (runs_here())
  const usize n = table.size(), first = after == nullptr ? 0 : usize(after - table.data()) + 1;
  for (usize k = 0; k < n; ++k) {
    Process& candidate = table[(first + k) % n];
    if (candidate.state == State::Ready && runs_here(candidate)) return &candidate;
  }
  return nullptr;
  // LAB 8 SKELETON
  // (void)after;
  // (void)table;
  // (void)runs_here;
  // panic("lab 8: write next_ready_here() in kernel/proc/scheduler.cpp (labs/08-smp/README.md)");
  // LAB 8 END
}

/// Whether a process is ready to run on this CPU (lab 3's next_ready() while one CPU runs).
bool ready_here() { return (cpus_online() > 1 ? next_ready_here(nullptr) : next_ready(nullptr)) != nullptr; }

/// Moves the CPU from the current context to @p next (nullptr: the idle loop): its kernel stack
/// for traps from user mode, then its root, then its saved registers and stack.
void switch_to(Process* next) {
  Process* prev = g_current;
  if (prev == next) return;
  // Temp-map slots are a per-CPU stack: one held across a switch would be released by another
  // thread's code, out of order (mm/tempmap/temp_map.hpp).
  if (const TempMapArea* temp = TempMapArea::current(); temp != nullptr && temp->depth() != 0)
    panic("switch_to: {} temp-map slot(s) still live across a context switch (a TempMap held while "
          "yielding or sleeping)",
          temp->depth());
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
  g_turn_began = ticks();
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

/// Whether the current turn has counted kTicksPerTurn ticks: a tick may end it.
bool turn_is_over() { return ticks() - g_turn_began >= kTicksPerTurn; }

// LAB 6 BEGIN helpers for exit_current(), if you want any (who adopts the children, waking a waiting parent)
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
// LAB 6 SKELETON
// LAB 6 END

/// Nothing is ready: wait for the next interrupt, without the kernel lock (two CPUs: the other
/// may run kernel code meanwhile); the caller takes it again. Never inlined: the lab-6 grader
/// stops here to see who waits for what when no process can run (a parent waiting for a child
/// that has ended and was never told).
[[PAGODA_STOP(idle_until_interrupt)]] void idle_until_interrupt() {
  kernel_lock_leave();
  arch::interrupts_enable();
  arch::wait_for_interrupt();
  arch::interrupts_disable();
}

/// Two CPUs: schedule() on this CPU, among the processes that run on it. A running process that
/// stays ready goes to the back of the round; one that ended, sleeps or waits is left as it is.
/// It is made Ready before switch_to() saves its context: safe, because this CPU holds the kernel
/// lock from here until the context it switches to lets it go, and no other CPU picks it anyway.
void schedule_here() {
  // LAB 8 BEGIN schedule() on two CPUs: this CPU's next process; the running one, if it stays ready, to the back
  Process* const prev = g_current;
  Process* const next = next_ready_here(prev);
  const bool carries_on = prev != nullptr && prev->state == State::Running;
  if (next == nullptr && (carries_on || prev == nullptr)) return;  // nothing else to run here
  if (next != nullptr) next->state = State::Running;
  if (carries_on) prev->state = State::Ready;
  switch_to(next);
  // LAB 8 SKELETON
  // panic("lab 8: write schedule_here() in kernel/proc/scheduler.cpp (labs/08-smp/README.md)");
  // LAB 8 END
}

/// Marks @p p as killed with @p how (the first kill wins) and wakes it if it sleeps or waits.
void mark_killed(Process& p, abi::Termination how) {
  if (p.state == State::Free || p.state == State::Zombie || p.kill_pending) return;
  p.kill_pending = true;
  p.kill_how = how;
  if (p.state == State::Sleeping || p.state == State::Waiting) p.state = State::Ready;
}

/// Whether @p p descends from process @p ancestor (parent links, at most one per slot).
bool descends_from(const Process& p, u32 ancestor) {
  u32 up = p.parent;
  for (usize hops = 0; up != 0 && hops < kMaxProcesses; ++hops) {
    if (up == ancestor) return true;
    const Process* q = find_process(up);
    if (q == nullptr) return false;
    up = q->parent;
  }
  return false;
}

bool any_process() {
  for (const Process& p : process_table())
    if (p.state != State::Free) return true;
  return false;
}

}  // namespace

PerCpu<Process*> detail::g_current_of;

Process* current_for_debugger() { return current(); }

usize reap_zombies() {
  usize freed = 0;
  for (Process& p : process_table())
    if (p.state == State::Zombie && p.parent == 0 && &p != g_current) {
      (void)reap(p);
      ++freed;
    }
  return freed;
}

u64 ticks() { return arch::timer_ticks(); }

u64 switches() { return g_switches; }

void schedule() {
  // A killed process that would sleep or wait dies instead (nothing of the kernel's is held
  // across a block: a safe place to end).
  if (g_current != nullptr && g_current->kill_pending &&
      (g_current->state == State::Sleeping || g_current->state == State::Waiting)) {
    g_current->state = State::Running;
    die_if_killed();
  }
  if (cpus_online() > 1) {  // two CPUs: each picks among its own processes (lab 3's pick is for one)
    schedule_here();
    return;
  }
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

[[PAGODA_STOP(exit_current)]] void exit_current(const abi::ExitInfo& info) {
  Process* p = g_current;
  PAGODA_ASSERT(p != nullptr);
  // LAB 6 BEGIN exit: the status kept in a zombie, the children adopted, the waiting parent woken
  // The process keeps its memory and its kernel stack: it runs on both until schedule() leaves
  // it for good; its parent's wait() (or the idle loop) frees them. Its children go to the first
  // process (or to the kernel); an adopter that waits may now find a zombie among them.
  p->exit = info;
  p->state = State::Zombie;
  const u32 heir = adopter(*p);
  bool zombies = false;
  for (Process& child : process_table())
    if (child.state != State::Free && child.parent == p->pid) {
      child.parent = heir;
      zombies = zombies || child.state == State::Zombie;
    }
  if (zombies) wake_waiter(heir);
  wake_waiter(p->parent);
  // LAB 6 SKELETON
  // // A naive exit until you write lab 6's (labs/06-fork/README.md): the status is kept, every
  // // child goes to the kernel (the idle loop reaps a zombie without a parent), no waiting parent
  // // is woken. (Labs 3 to 5 use exit: it prints nothing here, so as not to cut their lines.)
  // p->exit = info;
  // p->state = State::Zombie;
  // for (Process& child : process_table())
  //   if (child.state != State::Free && child.parent == p->pid) child.parent = 0;
  // LAB 6 END
  schedule();
  panic("process {} ran again after it ended: it was made Ready (or left Running) after its exit made it a zombie "
        "(schedule() puts back to Ready only the process that was Running; one that ended, sleeps or waits keeps its "
        "state)",
        p->pid);
}

Result<void> kill(u32 pid, abi::Termination how, bool tree) {
  Process* target = find_process(pid);
  if (target == nullptr || target->state == State::Zombie) return Error(Error::NotFound, "no such process");
  // Every victim is marked before any dies: the parent links of the tree are intact.
  if (tree)
    for (Process& p : process_table())
      if (p.state != State::Free && &p != target && descends_from(p, pid)) mark_killed(p, how);
  mark_killed(*target, how);
  return {};
}

void die_if_killed() {
  Process* p = g_current;
  if (p == nullptr || !p->kill_pending) return;
  console_release_line(p->pid);  // it may have died waiting for input
  exit_current(abi::ExitInfo{.code = -1, .how = u32(p->kill_how), .address = 0});
}

[[PAGODA_STOP(timer_tick)]] void timer_tick(bool from_user) {
  // Two CPUs: the boot CPU's ticks keep the clock, wake sleepers and read the terminal; a second
  // CPU's tick only ends a turn on it (its idle loop looks for work after every interrupt). The
  // tick's work is kernel work: it waits for the next tick while the other CPU holds the lock.
  const bool boot_cpu = this_cpu().id == 0;
  if (!boot_cpu && !from_user) return;
  const KernelLock lock = kernel_lock_try();
  if (lock == KernelLock::Busy) return;
  if (boot_cpu) {
    terminal_poll();  // typed input, and Ctrl-C for the foreground process
    const u64 now = ticks();
    for (Process& p : process_table())
      if (p.state == State::Sleeping && now >= p.wake_tick) p.state = State::Ready;
    if (!from_user) temp_map_timer_hook();  // lab 4's stress test: a temp map nested in a call's
  }
  if (from_user && g_current != nullptr) die_if_killed();  // on its way back to user mode
  // LAB 3 BEGIN preemption: a tick that interrupted a process in user mode ends its turn, once the turn is over
  // Only from user mode: kernel code is never preempted (it may hold a temporary mapping, or be
  // half-way through a change of the page tables). And only a turn that is over (turn_is_over():
  // its first tick may have come before the process ran at all).
  if (from_user && g_current != nullptr && turn_is_over()) schedule();
  // LAB 3 SKELETON
  // // lab 3 (optional until preempt_user): this skeleton stops nothing, because every lab's kernel
  // // takes timer ticks. Until you write it nothing is preempted: a program that never makes a
  // // system call keeps the CPU, and lab 3's preempt_user test says so.
  // (void)from_user;
  // (void)turn_is_over;
  // LAB 3 END
  if (from_user && g_current != nullptr) die_if_killed();  // killed while others ran
  // The lock taken here goes now; one taken in user mode goes on its return there (vectors.S).
  if (lock == KernelLock::Took && !from_user) kernel_lock_leave();
}

void run_processes() {
  vm::set_reclaimer(&reap_zombies);  // (a fault that finds no frame frees the ended orphans first)
  for (;;) {
    reap_zombies();
    if (!any_process()) return;
    if (ready_here()) {
      schedule();
      continue;
    }
    idle_until_interrupt();
    (void)kernel_lock_enter();
  }
}

void run_secondary() {
  for (;;) {
    if (kernel_lock_try() != KernelLock::Busy) {
      while (next_ready_here(nullptr) != nullptr) schedule();
    }
    idle_until_interrupt();  // (takes no lock after: the next turn of the loop tries for it)
  }
}

}  // namespace pagoda::proc
