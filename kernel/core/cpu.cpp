// The per-CPU area and the bring-up of the parked CPUs (core/cpu.hpp).
#include "core/cpu.hpp"

#include "core/arch.hpp"
#include "core/panic.hpp"
#include "lib/console.hpp"

namespace pagoda {
namespace {

/// Waits for a started CPU to come online before the boot CPU gives up on it. Each wait is one
/// arch::cpu_relax(), which under QEMU's round-robin TCG lets the other vCPU run: the measured
/// bring-up takes 0 to 2 (docs/boot.md), so this bound is only met by a CPU that never runs.
constexpr u64 kMaxOnlineWaits = 50'000'000;

/// Waits for a CPU told to stop (cpus_stop_others()) before the panicking CPU goes on without
/// it: as kMaxOnlineWaits, far more than an idle CPU takes to answer its IPI.
constexpr u64 kMaxStopWaits = 5'000'000;

Cpu g_cpus[kMaxCpus];
bool g_stopping = false;
alignas(16) u8 g_cpu_stacks[kMaxCpus - 1][kCpuStackSize];
/// What MailboxOp::LeaveSpace calls (cpu_set_leave_space()).
void (*g_leave_space)(uptr) = nullptr;
/// What each secondary CPU runs once online (cpus_start()'s @p idle).
void (*g_secondary_idle)() = nullptr;

SpinLock g_kernel_lock;
/// The CPU that holds g_kernel_lock, kNobody when none; written by its holder only.
constexpr u32 kNobody = ~0u;
u32 g_kernel_owner = kNobody;

bool is_online(const Cpu& c) { return __atomic_load_n(&c.online, __ATOMIC_ACQUIRE); }

}  // namespace

Cpu& cpu(u32 id) { return g_cpus[id < kMaxCpus ? id : 0]; }

Cpu& this_cpu() { return cpu(arch::cpu_id()); }

u32 cpus_online() {
  u32 n = 1;  // the boot CPU
  for (u32 id = 1; id < kMaxCpus; ++id) n += is_online(g_cpus[id]) ? 1 : 0;
  return n;
}

void cpus_start(u32 limit, void (*idle)()) {
  g_cpus[0].online = true;
  g_secondary_idle = idle;
  // From the moment another CPU may run kernel code, this one holds the kernel lock.
  const bool others = limit > 1 && arch::cpus_present() > 1;
  if (others) {
    __atomic_store_n(&pagoda_kernel_locking, true, __ATOMIC_RELEASE);
    (void)kernel_lock_enter();
  }
  for (u32 id = 1; id < arch::cpus_present() && id < limit && id < kMaxCpus; ++id) {
    Cpu& c = g_cpus[id];
    c.id = id;
    c.stack_bottom = reinterpret_cast<uptr>(g_cpu_stacks[id - 1]);
    c.stack_top = c.stack_bottom + kCpuStackSize;
    if (!arch::start_cpu(id, c.stack_top)) {
      println("smp: cpu {} refused to start; it stays parked", id);
      continue;
    }
    u64 waits = 0;
    while (!is_online(c) && waits < kMaxOnlineWaits) {
      // (interrupts are off here: a CPU that panics on its way up stops this one through the flag)
      if (cpus_stopping()) cpu_stop_here();
      arch::cpu_relax();
      ++waits;
    }
    if (is_online(c)) println("smp: cpu {} online after {} waits", id, waits);
    else println("smp: cpu {} started but not online after {} waits; going on without it", id, waits);
  }
  if (others && cpus_online() == 1) {  // none came: one CPU, no lock, as if it had none
    kernel_lock_leave();
    __atomic_store_n(&pagoda_kernel_locking, false, __ATOMIC_RELEASE);
  }
}

KernelLock detail::kernel_lock_try_locking() {
  const u32 me = arch::cpu_id();
  if (__atomic_load_n(&g_kernel_owner, __ATOMIC_RELAXED) == me) return KernelLock::Held;
  if (!g_kernel_lock.try_lock()) return KernelLock::Busy;
  __atomic_store_n(&g_kernel_owner, me, __ATOMIC_RELAXED);
  return KernelLock::Took;
}

KernelLock detail::kernel_lock_enter_locking() {
  KernelLock got = kernel_lock_try();
  if (got != KernelLock::Busy) return got;
  // The wait takes interrupts: the other CPU's IPIs are served (its shootdown, its stop), and
  // this CPU's ticks go on counting, which a holder waiting for ticks needs (no handler waits).
  const bool interrupts = arch::interrupts_save();
  arch::interrupts_enable();
  while ((got = kernel_lock_try()) == KernelLock::Busy) arch::cpu_relax();
  arch::interrupts_disable();
  arch::interrupts_restore(interrupts);
  return got;
}

void detail::kernel_lock_leave_locking() {
  if (__atomic_load_n(&g_kernel_owner, __ATOMIC_RELAXED) != arch::cpu_id()) return;
  __atomic_store_n(&g_kernel_owner, kNobody, __ATOMIC_RELAXED);
  g_kernel_lock.unlock();
}

bool cpu_timer_tick() {
  Cpu& c = this_cpu();
  c.ticks = c.ticks + 1;
  return c.id == 0;
}

namespace {

/// Takes the request @p m holds, if one was sent and not yet taken: true when there is one,
/// which this CPU then does (serve_mailbox()). Taken before it is done, since doing it may wait
/// (a Call that starts a shootdown) and serve this mailbox again meanwhile: the request it is
/// doing must not be done a second time.
bool take_request(Mailbox& m) {
  // LAB 8 BEGIN a request taken once: sent, not yet served, marked served before it is done
  const u64 sent = __atomic_load_n(&m.sent, __ATOMIC_ACQUIRE);
  if (sent == m.served) return false;
  m.served = sent;
  return true;
  // LAB 8 SKELETON
  // (void)m;
  // return false;
  // LAB 8 END
}

/// Acknowledges what serve_mailbox() did: the initiator may read `value` and go on, and what the
/// request dropped from this CPU's TLB may be given away.
void acknowledge_mailbox() {
  Mailbox& m = this_cpu().mailbox;
  // LAB 8 BEGIN the ack: every request taken so far, done, published after what it did
  __atomic_store_n(&m.acked, m.served, __ATOMIC_RELEASE);
  // LAB 8 SKELETON
  // (void)m;
  // LAB 8 END
}

/// A shootdown's request @p m, on its target: drops its pages (or every translation, past the
/// pages a request carries) from this CPU's TLB.
void drop_translations(const Mailbox& m) {
  // LAB 8 BEGIN a shootdown's target: its pages, or every translation, out of this CPU's TLB
  if (m.count == kShootdownAll) arch::invalidate_all_local();
  else
    for (usize i = 0; i < m.count; ++i) arch::invalidate_page_local(m.pages[i]);
  // LAB 8 SKELETON
  // (void)m;
  // LAB 8 END
}

/// Does what this CPU's mailbox asks, once: true when there was a request (then served).
bool serve_mailbox() {
  Mailbox& m = this_cpu().mailbox;
  if (!take_request(m)) return false;
  switch (m.op) {
    case MailboxOp::InvalidatePage: arch::invalidate_page_local(m.address); break;
    case MailboxOp::Read: m.value = *reinterpret_cast<volatile const u64*>(m.address); break;
    case MailboxOp::InvalidatePages: drop_translations(m); break;
    case MailboxOp::LeaveSpace:
      if (g_leave_space != nullptr) g_leave_space(m.address);
      break;
    case MailboxOp::Call: m.value = reinterpret_cast<u64 (*)()>(m.address)(); break;
    case MailboxOp::None: break;
  }
  return true;
}

}  // namespace

void cpu_set_leave_space(void (*leave)(uptr)) { g_leave_space = leave; }

bool cpus_stopping() { return __atomic_load_n(&g_stopping, __ATOMIC_ACQUIRE); }

void cpu_stop_here() {
  arch::interrupts_disable();
  __atomic_store_n(&this_cpu().stopped, true, __ATOMIC_RELEASE);
  for (;;) arch::wait_for_interrupt();  // with interrupts off: halted (x86_64 HLT; AArch64 WFI again)
}

u32 cpus_stop_others() {
  __atomic_store_n(&g_stopping, true, __ATOMIC_RELEASE);
  const Cpu& me = this_cpu();
  u32 running = 0;
  for (u32 id = 0; id < kMaxCpus; ++id) {
    Cpu& c = g_cpus[id];
    if (&c == &me || !is_online(c)) continue;
    arch::send_ipi(id);
    u64 waits = 0;
    while (!__atomic_load_n(&c.stopped, __ATOMIC_ACQUIRE) && waits < kMaxStopWaits) {
      arch::cpu_relax();
      ++waits;
    }
    if (!__atomic_load_n(&c.stopped, __ATOMIC_ACQUIRE)) ++running;
  }
  return running;
}

void cpu_ipi_received() {
  if (cpus_stopping()) cpu_stop_here();
  Cpu& c = this_cpu();
  c.ipis = c.ipis + 1;
  serve_mailbox();
}

void cpu_ipi_done() { acknowledge_mailbox(); }

namespace {

/// One turn of a wait with interrupts off (for a mailbox's lock, for an ack): stops here if a
/// panic elsewhere said so (its IPI cannot come in), and serves this CPU's own mailbox, since the
/// CPU waited for may be waiting for this one.
void wait_turn() {
  if (cpus_stopping()) cpu_stop_here();
  // LAB 8 BEGIN a wait serves this CPU's own mailbox: two CPUs asking each other both go on
  if (serve_mailbox()) acknowledge_mailbox();
  // LAB 8 SKELETON
  // // (the CPU waited for may be waiting for this one)
  // LAB 8 END
  arch::cpu_relax();
}

// (lock_mailbox(), await_ack() and send_request() are [[maybe_unused]]: in lab 8's skeleton
// nothing calls them until shootdown() and cpu_request() are written.)

/// Takes @p m's lock (interrupts off): another CPU's request to its owner may be in flight, and
/// that CPU may be waiting for this one, so this CPU serves its own mailbox while it waits.
[[maybe_unused]] void lock_mailbox(Mailbox& m) {
  while (!m.lock.try_lock()) wait_turn();
}

/// Waits (interrupts off) until @p m's owner acknowledged request @p sequence, serving this
/// CPU's own mailbox meanwhile: two CPUs waiting for each other both make progress.
[[maybe_unused]] void await_ack(Mailbox& m, u64 sequence) {
  // LAB 8 BEGIN waiting for one target's ack (interrupts off: wait_turn() each time)
  while (__atomic_load_n(&m.acked, __ATOMIC_ACQUIRE) != sequence) wait_turn();
  // LAB 8 SKELETON
  // (void)m;
  // (void)sequence;
  // LAB 8 END
}

/// Sends the request written in CPU @p target's mailbox @p m (its lock held since before the
/// writing): publishes it after what was written, and sends one IPI. Returns its sequence number,
/// the ack await_ack() waits for.
[[maybe_unused]] u64 send_request(u32 target, Mailbox& m) {
  // LAB 8 BEGIN a request published (release: after what it says), then its IPI
  const u64 sequence = m.sent + 1;
  __atomic_store_n(&m.sent, sequence, __ATOMIC_RELEASE);
  arch::send_ipi(target);
  return sequence;
  // LAB 8 SKELETON
  // (void)target;
  // (void)m;
  // return 0;
  // LAB 8 END
}

}  // namespace

u64 cpu_request(u32 target, MailboxOp op, uptr address) {
  Mailbox& m = cpu(target).mailbox;
  // LAB 8 BEGIN one request to one CPU: its mailbox locked (interrupts off), written, sent, its ack awaited, its value read before the lock goes
  const bool interrupts = arch::interrupts_save();
  lock_mailbox(m);
  m.op = op;
  m.address = address;
  await_ack(m, send_request(target, m));
  const u64 value = m.value;
  m.lock.unlock();
  arch::interrupts_restore(interrupts);
  return value;
  // LAB 8 SKELETON
  // (void)m;
  // (void)op;
  // (void)address;
  // panic("lab 8: write cpu_request() in kernel/core/cpu.cpp (labs/08-smp/README.md)");
  // LAB 8 END
}

void shootdown(u32 targets, const uptr* pages, usize count) {
  const u32 me = arch::cpu_id();
  u32 online = 0;
  for (u32 id = 0; id < kMaxCpus; ++id)
    if (id == 0 || is_online(g_cpus[id])) online |= u32{1} << id;
  if (online == u32{1} << me) return;  // one CPU online (labs 0-7): no one else to tell
  // LAB 8 BEGIN one request in each target's mailbox, one IPI each, then every ack awaited while this CPU serves its own
  targets &= online & ~(u32{1} << me);  // (not this CPU, not one offline)
  if (targets == 0) return;
  if (count > kShootdownPages) count = kShootdownAll;
  const bool interrupts = arch::interrupts_save();
  u64 sequence[kMaxCpus] = {};
  for (u32 id = 0; id < kMaxCpus; ++id) {
    if ((targets >> id & 1) == 0) continue;
    Mailbox& m = g_cpus[id].mailbox;
    lock_mailbox(m);
    m.op = MailboxOp::InvalidatePages;
    m.count = count;
    for (usize i = 0; count != kShootdownAll && i < count; ++i) m.pages[i] = pages[i];
    sequence[id] = send_request(id, m);
  }
  for (u32 id = 0; id < kMaxCpus; ++id) {
    if ((targets >> id & 1) == 0) continue;
    Mailbox& m = g_cpus[id].mailbox;
    await_ack(m, sequence[id]);
    m.lock.unlock();
  }
  arch::interrupts_restore(interrupts);
  // LAB 8 SKELETON
  // (void)targets;
  // (void)pages;
  // (void)count;
  // panic("lab 8: write shootdown() in kernel/core/cpu.cpp (labs/08-smp/README.md)");
  // LAB 8 END
}

void cpu_secondary_main(u32 id) {
  __atomic_store_n(&g_cpus[id].online, true, __ATOMIC_RELEASE);
  if (g_secondary_idle != nullptr && kernel_locking()) g_secondary_idle();
  arch::interrupts_enable();  // (the boot CPU gave up on it: it only idles)
  for (;;) arch::wait_for_interrupt();
}

}  // namespace pagoda

bool pagoda_kernel_locking = false;

void pagoda_kernel_lock_leave() { pagoda::kernel_lock_leave(); }
