// The generic timer's EL1 virtual timer (CNTV) drives the kernel tick.
//
//   CNTFRQ_EL0      the counter's frequency in Hz (62.5 MHz on QEMU 7.2)
//   CNTVCT_EL0      the virtual count: the system counter minus CNTVOFF_EL2 (0 without EL2)
//   CNTV_CVAL_EL0   compare value: the timer fires when CNTVCT >= CVAL
//   CNTV_CTL_EL0    bit 0 ENABLE, bit 1 IMASK (1: no interrupt), bit 2 ISTATUS (condition met)
//
// Why the virtual timer and not the physical one (CNTP): it is the timer an EL1 kernel always
// owns. EL2 (a hypervisor, or QEMU with virtualization=on) may trap EL1's use of the physical
// timer (CNTHCTL_EL2.EL1PCEN), never the virtual one, and under KVM the virtual timer is the
// one the host saves and restores for the guest. Without EL2 the two count the same.
// The interrupt is level-sensitive: it stays asserted until CVAL moves past the count, so the
// handler moves it one period on (from the previous deadline, so ticks do not drift).
#include "arch/aarch64/timer.hpp"

#include "arch/aarch64/cpu.hpp"
#include "arch/aarch64/gic.hpp"
#include "core/cpu.hpp"
#include "core/panic.hpp"
#include "proc/arch.hpp"

namespace pagoda::aarch64 {
namespace {

constexpr u64 kCtlEnable = 1u << 0;

u64 g_period = 0;
volatile u64 g_ticks = 0;

void on_tick(TrapFrame& frame) {
  const u64 now = PAGODA_READ_SYSREG("cntvct_el0");
  u64 next = PAGODA_READ_SYSREG("cntv_cval_el0") + g_period;
  if (next <= now) next = now + g_period;  // fell behind (a debugger stopped us): skip ahead
  PAGODA_WRITE_SYSREG("cntv_cval_el0", next);
  if (cpu_timer_tick()) g_ticks = g_ticks + 1;  // the kernel's clock is the boot CPU's timer
  // Ended before the tick may switch processes: the next tick must not wait for this one's
  // process to run again.
  gic_end_of_interrupt();
  // Sleepers wake; a process interrupted in EL0 gives the CPU to the next one (on its CPU).
  proc::timer_tick(frame.from_el() == 0);
}

}  // namespace

void timer_init(u32 hz, u32 intid) {
  const u64 frequency = PAGODA_READ_SYSREG("cntfrq_el0");
  if (frequency == 0 || hz == 0) panic("timer: counter frequency {} Hz, asked for {} Hz", frequency, hz);
  if (intid == 0) panic("timer: the device tree names no virtual timer interrupt");
  g_period = frequency / hz;
  gic_enable(intid, on_tick);
  PAGODA_WRITE_SYSREG("cntv_cval_el0", PAGODA_READ_SYSREG("cntvct_el0") + g_period);
  PAGODA_WRITE_SYSREG("cntv_ctl_el0", kCtlEnable);
  isb();
}

void timer_init_secondary(u32 intid) {
  PAGODA_ASSERT(g_period != 0);
  gic_enable_banked(intid);
  PAGODA_WRITE_SYSREG("cntv_cval_el0", PAGODA_READ_SYSREG("cntvct_el0") + g_period);
  PAGODA_WRITE_SYSREG("cntv_ctl_el0", kCtlEnable);
  isb();
}

u64 timer_ticks() { return g_ticks; }

bool timer_running() { return g_period != 0; }

}  // namespace pagoda::aarch64
