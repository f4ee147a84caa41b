// The local APIC timer, calibrated against the legacy PIT, drives the kernel tick.
//
//   LAPIC registers (offsets from the base in IA32_APIC_BASE; 32-bit, 16-byte aligned)
//   0x020 ID                  bits 31:24: this CPU's APIC ID
//   0x0B0 EOI                 write 0 to end the current interrupt
//   0x300 ICR low             bits 7:0 vector, 10:8 delivery mode (000 fixed, 101 INIT,
//                             110 STARTUP), bit 12 delivery pending, bit 14 level assert
//   0x310 ICR high            bits 31:24: the destination's APIC ID (write it first: the
//                             write of ICR low sends)
//   0x0F0 spurious vector     bit 8 = APIC software enable, bits 7:0 = spurious vector
//   0x320 LVT timer           bits 7:0 vector, bit 16 mask, bits 18:17 mode (01 = periodic)
//   0x380 initial count       0x390 current count       0x3E0 divide configuration
//
// The PIT (channel 0, 1.193182 MHz) is only a stopwatch here: we latch and read its counter
// while the LAPIC counts down once, then program the LAPIC for the wanted rate. The 8259 PICs
// are masked so that only the LAPIC delivers interrupts.
#include "arch/x86_64/lapic.hpp"

#include "arch/x86_64/cpu.hpp"
#include "arch/x86_64/page_table_format.hpp"
#include "arch/x86_64/traps.hpp"
#include "core/cpu.hpp"
#include "core/panic.hpp"
#include "mm/vm.hpp"
#include "proc/arch.hpp"

namespace pagoda::x86 {
namespace {

/// IA32_APIC_BASE holds the page-aligned physical base in the bits of a page-table address.
constexpr u64 kApicBaseMask = PageTableFormat::kAddressMask;
constexpr u64 kApicBaseEnable = 1u << 11;

constexpr u32 kRegId = 0x020, kRegIcrLow = 0x300, kRegIcrHigh = 0x310;
constexpr u32 kIcrInit = 0x5u << 8, kIcrStartup = 0x6u << 8, kIcrAssert = 1u << 14, kIcrPending = 1u << 12;
constexpr u32 kRegEoi = 0x0B0, kRegSpurious = 0x0F0, kRegLvtTimer = 0x320, kRegInitialCount = 0x380,
              kRegCurrentCount = 0x390, kRegDivide = 0x3E0;
constexpr u32 kSpuriousEnable = 1u << 8;
constexpr u32 kLvtMasked = 1u << 16;
constexpr u32 kLvtPeriodic = 1u << 17;
constexpr u32 kDivideBy16 = 0x3;

constexpr u16 kPicMasterData = 0x21, kPicSlaveData = 0xA1;
constexpr u8 kPicMaskAll = 0xFF;

constexpr u16 kPitChannel0 = 0x40, kPitCommand = 0x43;
constexpr u8 kPitChannel0Mode2LoHi = 0x34;  // channel 0, lobyte/hibyte, rate generator
constexpr u8 kPitLatchChannel0 = 0x00;
constexpr u32 kPitHz = 1193182;
constexpr u32 kCalibrationMs = 2;  // boot time matters more than a precise tick (see docs/boot.md)
constexpr u32 kCalibrationPitTicks = kPitHz / 1000 * kCalibrationMs;
/// Reads of an unchanging PIT after which we decide there is no PIT.
constexpr u32 kPitDeadReads = 1000000;
/// QEMU's LAPIC counts at 1 GHz before the divider: the fallback when there is no PIT.
constexpr u64 kFallbackLapicHz = 1000000000ull / 16;

volatile u32* g_lapic = nullptr;
volatile u64 g_ticks = 0;
/// The timer's initial count for the kernel's tick, as the boot CPU calibrated it: every CPU's
/// LAPIC timer counts at the same rate.
u32 g_tick_count = 0;

u32 read_reg(u32 offset) { return g_lapic[offset / sizeof(u32)]; }
void write_reg(u32 offset, u32 value) { g_lapic[offset / sizeof(u32)] = value; }

u16 read_pit() {
  outb(kPitCommand, kPitLatchChannel0);
  const u8 lo = inb(kPitChannel0);
  const u8 hi = inb(kPitChannel0);
  return u16(lo | (hi << 8));
}

/// LAPIC counts (after the divider) per second, measured against the PIT; 0 without a PIT.
u64 measure_lapic_hz() {
  outb(kPitCommand, kPitChannel0Mode2LoHi);
  outb(kPitChannel0, 0);  // reload value 0 = 65536
  outb(kPitChannel0, 0);

  write_reg(kRegLvtTimer, kLvtMasked);
  write_reg(kRegInitialCount, ~u32{0});
  u16 previous = read_pit();
  u32 elapsed = 0, unchanged = 0;
  const u32 start = read_reg(kRegCurrentCount);
  while (elapsed < kCalibrationPitTicks) {
    const u16 now = read_pit();
    if (now == previous && ++unchanged > kPitDeadReads) return 0;
    elapsed += u16(previous - now);  // counts down, wraps at 65536
    previous = now;
  }
  const u32 lapic_elapsed = start - read_reg(kRegCurrentCount);
  write_reg(kRegInitialCount, 0);
  return u64(lapic_elapsed) * kPitHz / elapsed;
}

void on_timer(TrapFrame& frame) {
  if (cpu_timer_tick()) g_ticks = g_ticks + 1;  // the kernel's clock is the boot CPU's timer
  write_reg(kRegEoi, 0);
  // Sleepers wake; a process interrupted in ring 3 gives the CPU to the next one (on its CPU).
  proc::timer_tick(frame.cpl() == 3);
}

/// The kernel's IPI: serve the mailbox, end the interrupt, then acknowledge. Until the EOI the
/// LAPIC holds this vector in service, and with it every vector of its priority or below: this
/// CPU's timer, and the next IPI (whose initiator would wait for its ack for ever).
void on_ipi(TrapFrame&) {
  // LAB 8 BEGIN the IPI handler: the mailbox served, the interrupt ended, then the ack
  cpu_ipi_received();
  write_reg(kRegEoi, 0);
  cpu_ipi_done();
  // LAB 8 SKELETON
  // cpu_ipi_received();  // (a stop, cpus_stop_others(), ends here)
  // panic("lab 8: write on_ipi() in arch/x86_64/lapic.cpp (labs/08-smp/README.md)");
  // LAB 8 END
}

/// Sends @p low (vector, delivery mode) to the LAPIC whose ID is @p apic_id, then waits,
/// relaxing, until this LAPIC has delivered it.
void send_icr(u32 apic_id, u32 low) {
  write_reg(kRegIcrHigh, apic_id << 24);
  write_reg(kRegIcrLow, low);
  while (read_reg(kRegIcrLow) & kIcrPending) pause();
}

/// This LAPIC on, with the kernel's spurious vector and divider (each CPU has its own).
void lapic_enable() {
  const u64 base = rdmsr(kMsrApicBase);
  wrmsr(kMsrApicBase, base | kApicBaseEnable);
  g_lapic = static_cast<volatile u32*>(vm::device_ptr(PhysAddr(base & kApicBaseMask)));
  write_reg(kRegSpurious, kSpuriousEnable | kSpuriousVector);
  write_reg(kRegDivide, kDivideBy16);
}

}  // namespace

void lapic_eoi() { write_reg(kRegEoi, 0); }

bool lapic_ready() { return g_lapic != nullptr; }

u32 lapic_id() { return read_reg(kRegId) >> 24; }

void lapic_send_init(u32 apic_id) { send_icr(apic_id, kIcrInit | kIcrAssert); }

void lapic_send_startup(u32 apic_id, u8 page) { send_icr(apic_id, kIcrStartup | kIcrAssert | page); }

void lapic_send_ipi(u32 apic_id) { send_icr(apic_id, kIcrAssert | kIpiVector); }

void lapic_init_secondary() { lapic_enable(); }

void lapic_timer_start_secondary() {
  PAGODA_ASSERT(g_tick_count != 0);
  write_reg(kRegLvtTimer, kTimerVector | kLvtPeriodic);
  write_reg(kRegInitialCount, g_tick_count);
}

void lapic_timer_init(u32 hz) {
  outb(kPicMasterData, kPicMaskAll);
  outb(kPicSlaveData, kPicMaskAll);

  lapic_enable();

  u64 lapic_hz = measure_lapic_hz();
  if (lapic_hz == 0) {
    println("timer: no PIT to calibrate against; assuming {} Hz", kFallbackLapicHz);
    lapic_hz = kFallbackLapicHz;
  }
  const u64 count = lapic_hz / hz;
  PAGODA_ASSERT(count > 0 && count <= ~u32{0});
  set_irq_handler(kTimerVector, on_timer);
  set_irq_handler(kIpiVector, on_ipi);
  g_tick_count = u32(count);
  write_reg(kRegLvtTimer, kTimerVector | kLvtPeriodic);
  write_reg(kRegInitialCount, u32(count));
  println("timer: LAPIC at {} Hz, {} Hz tick (initial count {})", lapic_hz, hz, count);
}

u64 lapic_ticks() { return g_ticks; }

}  // namespace pagoda::x86
