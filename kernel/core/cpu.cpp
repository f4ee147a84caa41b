// The per-CPU area and the bring-up of the parked CPUs (core/cpu.hpp).
#include "core/cpu.hpp"

#include "core/arch.hpp"
#include "lib/console.hpp"

namespace pagoda {
namespace {

/// Waits for a started CPU to come online before the boot CPU gives up on it. Each wait is one
/// arch::cpu_relax(), which under QEMU's round-robin TCG lets the other vCPU run: the measured
/// bring-up takes a few hundred (docs/boot.md), so this bound is only met by a CPU that never runs.
constexpr u64 kMaxOnlineWaits = 50'000'000;

Cpu g_cpus[kMaxCpus];
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

void cpu_ipi_received() {
  Cpu& c = this_cpu();
  c.ipis = c.ipis + 1;
}

void cpu_secondary_main(u32 id) {
  __atomic_store_n(&g_cpus[id].online, true, __ATOMIC_RELEASE);
  arch::interrupts_enable();
  for (;;) arch::wait_for_interrupt();
}

}  // namespace pagoda
