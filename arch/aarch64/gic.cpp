// The GICv2: a distributor shared by all CPUs (GICD) and one CPU interface per CPU (GICC).
//
//   GICD (distributor)                        GICC (CPU interface)
//   0x000 CTLR        bit 0: forward          0x000 CTLR  bit 0: signal interrupts to the CPU
//   0x004 TYPER       bits 4:0: lines/32 - 1  0x004 PMR   priority mask: lower values pass
//   0x100 ISENABLERn  1 bit per INTID: on     0x008 BPR   binary point (0: no grouping)
//   0x180 ICENABLERn  1 bit per INTID: off    0x00c IAR   acknowledge: bits 9:0 the INTID
//   0x400 IPRIORITYRn 1 byte per INTID        0x010 EOIR  end of interrupt: write IAR back
//   0x800 ITARGETSRn  1 byte per INTID: CPUs
//   0xF00 SGIR        bits 23:16 target CPUs, bits 3:0 the SGI's INTID: sends it
//   SGIs and PPIs (INTIDs 0-31) are banked: each CPU enables and prioritises its own.
//   INTIDs: 0-15 SGIs (software), 16-31 PPIs (per CPU, e.g. the timers), 32+ SPIs (devices);
//   1020-1023 special (1023: spurious, nothing to acknowledge).
// QEMU virt runs the GIC without security extensions: group 0 interrupts arrive as IRQs.
#include "arch/aarch64/gic.hpp"

#include "core/arch.hpp"
#include "core/cpu.hpp"
#include "core/panic.hpp"
#include "mm/vm.hpp"

namespace pagoda::aarch64 {
namespace {

constexpr usize kGicdCtlr = 0x000, kGicdTyper = 0x004, kGicdIsenabler = 0x100, kGicdIcenabler = 0x180,
                kGicdIpriorityr = 0x400, kGicdItargetsr = 0x800, kGicdSgir = 0xF00;
constexpr u32 kSgirTargetShift = 16;
constexpr u32 kBankedIntids = 32;
constexpr usize kGiccCtlr = 0x000, kGiccPmr = 0x004, kGiccBpr = 0x008, kGiccIar = 0x00c, kGiccEoir = 0x010;
constexpr u32 kEnable = 1;
constexpr u32 kIntidMask = 0x3ff;
constexpr u32 kFirstSpecialIntid = 1020;
constexpr u32 kFirstPpi = 16, kFirstSpi = 32;
constexpr u32 kPriorityMaskAll = 0xff;  // every priority below 0xff passes
constexpr u8 kDefaultPriority = 0xa0;
constexpr u8 kTargetCpu0 = 1;

PhysAddr g_distributor, g_cpu_interface;
/// Per CPU: the IAR value of the interrupt being handled, until it is ended, and whether one is.
u32 g_active_iar[kMaxCpus];
bool g_active[kMaxCpus];
IrqHandler g_handlers[kMaxIntid];

volatile u32* gicd(usize offset) {
  return reinterpret_cast<volatile u32*>(static_cast<u8*>(vm::device_ptr(g_distributor)) + offset);
}
volatile u8* gicd_byte(usize offset) { return reinterpret_cast<volatile u8*>(gicd(offset)); }
volatile u32* gicc(usize offset) {
  return reinterpret_cast<volatile u32*>(static_cast<u8*>(vm::device_ptr(g_cpu_interface)) + offset);
}

}  // namespace

void gic_init(PhysAddr distributor, PhysAddr cpu_interface) {
  g_distributor = distributor;
  g_cpu_interface = cpu_interface;
  *gicd(kGicdCtlr) = 0;
  const u32 lines = 32 * ((*gicd(kGicdTyper) & 0x1f) + 1);
  for (u32 i = 0; i < lines; i += 32) *gicd(kGicdIcenabler + i / 8) = ~u32{0};
  for (u32 i = 0; i < min(lines, kMaxIntid); ++i) *gicd_byte(kGicdIpriorityr + i) = kDefaultPriority;
  *gicd(kGicdCtlr) = kEnable;
  gic_init_cpu();
}

void gic_init_cpu() {
  for (u32 i = 0; i < kBankedIntids; ++i) *gicd_byte(kGicdIpriorityr + i) = kDefaultPriority;
  *gicc(kGiccPmr) = kPriorityMaskAll;
  *gicc(kGiccBpr) = 0;
  *gicc(kGiccCtlr) = kEnable;
}

void gic_enable_banked(u32 intid) {
  PAGODA_ASSERT(intid < kBankedIntids && g_handlers[intid] != nullptr);
  *gicd(kGicdIsenabler) = 1u << intid;
}

void gic_send_sgi(u32 cpu_interface, u32 intid) {
  PAGODA_ASSERT(intid < kFirstPpi);
  *gicd(kGicdSgir) = (1u << (kSgirTargetShift + cpu_interface)) | intid;
}

void gic_enable(u32 intid, IrqHandler handler) {
  PAGODA_ASSERT(intid < kMaxIntid && g_distributor != PhysAddr());
  g_handlers[intid] = handler;
  if (intid >= kFirstSpi) *gicd_byte(kGicdItargetsr + intid) = kTargetCpu0;
  *gicd(kGicdIsenabler + (intid / 32) * 4) = 1u << (intid % 32);
}

void gic_handle_irq(TrapFrame& frame) {
  const u32 iar = *gicc(kGiccIar);
  const u32 intid = iar & kIntidMask;
  if (intid >= kFirstSpecialIntid) return;  // spurious: nothing was acknowledged
  const IrqHandler handler = intid < kMaxIntid ? g_handlers[intid] : nullptr;
  if (handler == nullptr) panic("unexpected interrupt {} at ELR {:#x}", intid, frame.elr);
  const u32 cpu = arch::cpu_id();
  g_active_iar[cpu] = iar;
  g_active[cpu] = true;
  handler(frame);
  gic_end_of_interrupt();
}

void gic_end_of_interrupt() {
  const u32 cpu = arch::cpu_id();
  if (!g_active[cpu]) return;
  g_active[cpu] = false;
  *gicc(kGiccEoir) = g_active_iar[cpu];
}

}  // namespace pagoda::aarch64
