// The per-CPU area and the bring-up of the parked CPUs (core/cpu.hpp).
#include "core/cpu.hpp"

#include "core/arch.hpp"
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

bool is_online(const Cpu& c) { return __atomic_load_n(&c.online, __ATOMIC_ACQUIRE); }

}  // namespace

Cpu& cpu(u32 id) { return g_cpus[id < kMaxCpus ? id : 0]; }

Cpu& this_cpu() { return cpu(arch::cpu_id()); }

u32 cpus_online() {
  u32 n = 1;  // the boot CPU
  for (u32 id = 1; id < kMaxCpus; ++id) n += is_online(g_cpus[id]) ? 1 : 0;
  return n;
}

void cpus_start(u32 limit) {
  g_cpus[0].online = true;
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
      arch::cpu_relax();
      ++waits;
    }
    if (is_online(c)) println("smp: cpu {} online after {} waits", id, waits);
    else println("smp: cpu {} started but not online after {} waits; going on without it", id, waits);
  }
}

bool cpu_timer_tick() {
  Cpu& c = this_cpu();
  c.ticks = c.ticks + 1;
  return c.id == 0;
}

namespace {

/// Does what this CPU's mailbox asks, once: true when there was a request (then served).
bool serve_mailbox() {
  Mailbox& m = this_cpu().mailbox;
  const u64 sent = __atomic_load_n(&m.sent, __ATOMIC_ACQUIRE);
  if (sent == m.served) return false;
  switch (m.op) {
    case MailboxOp::InvalidatePage: arch::invalidate_page_local(m.address); break;
    case MailboxOp::Read: m.value = *reinterpret_cast<volatile const u64*>(m.address); break;
    case MailboxOp::None: break;
  }
  m.served = sent;
  return true;
}

/// Acknowledges what serve_mailbox() did: the initiator may read `value` and go on.
void acknowledge_mailbox() {
  Mailbox& m = this_cpu().mailbox;
  __atomic_store_n(&m.acked, m.served, __ATOMIC_RELEASE);
}

}  // namespace

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

u64 cpu_request(u32 target, MailboxOp op, uptr address) {
  Mailbox& m = cpu(target).mailbox;
  const bool interrupts = arch::interrupts_save();
  while (!m.lock.try_lock()) {  // another CPU's request to it is in flight: serve ours meanwhile
    if (cpus_stopping()) cpu_stop_here();
    if (serve_mailbox()) acknowledge_mailbox();
    arch::cpu_relax();
  }
  m.op = op;
  m.address = address;
  const u64 sequence = m.sent + 1;
  __atomic_store_n(&m.sent, sequence, __ATOMIC_RELEASE);
  arch::send_ipi(target);
  while (__atomic_load_n(&m.acked, __ATOMIC_ACQUIRE) != sequence) {
    if (cpus_stopping()) cpu_stop_here();
    if (serve_mailbox()) acknowledge_mailbox();
    arch::cpu_relax();
  }
  const u64 value = m.value;
  m.lock.unlock();
  arch::interrupts_restore(interrupts);
  return value;
}

void cpu_secondary_main(u32 id) {
  __atomic_store_n(&g_cpus[id].online, true, __ATOMIC_RELEASE);
  arch::interrupts_enable();
  for (;;) arch::wait_for_interrupt();
}

}  // namespace pagoda
