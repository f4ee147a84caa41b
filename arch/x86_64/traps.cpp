// Exception and interrupt dispatch for x86_64.
//
//   IDT gate descriptor (16 bytes)
//   127            96 95             64 63     48 47 46 45 44 43   40 39  35 34  32 31      16 15       0
//   +----------------+-----------------+---------+--+-----+--+------+------+------+----------+----------+
//   |    reserved    |  offset 63:32   |off 31:16| P| DPL |0 | type |  0   | IST  | selector |off 15:0  |
//   +----------------+-----------------+---------+--+-----+--+------+------+------+----------+----------+
//   type 0xE = 64-bit interrupt gate (IF cleared on entry)
//
//   Page-fault error code              Selector error code (#TS #NP #SS #GP)
//   bit 0 P    0 not present, 1 protection    bit 0    EXT  raised by an external event
//   bit 1 W/R  0 read, 1 write                bit 1    IDT  index is an IDT vector
//   bit 2 U/S  0 supervisor, 1 user           bit 2    TI   0 GDT, 1 LDT (when IDT = 0)
//   bit 3 RSVD reserved bit set in an entry   bits 3+  index
//   bit 4 I/D  instruction fetch
//   bit 5 PK   protection key
//   bit 6 SS   shadow stack
#include "arch/x86_64/traps.hpp"

#include "arch/x86_64/cpu.hpp"
#include "arch/x86_64/gdt.hpp"
#include "arch/x86_64/trap_report.hpp"
#include "arch/x86_64/user_mode.hpp"
#include "core/cpu.hpp"
#include "core/panic.hpp"
#include "lib/facts.hpp"
#include "mm/vm.hpp"
#include "proc/kernel_stack.hpp"
#include "proc/user_memory.hpp"

extern "C" char x86_vector_stubs[];

namespace pagoda::x86 {
namespace {

constexpr usize kVectors = 256;
constexpr usize kStubSize = 16;
constexpr u8 kGateInterrupt = 0xE;
constexpr u8 kGatePresent = 0x80;

struct [[gnu::packed]] Gate {
  u16 offset_low;
  u16 selector;
  u8 ist;
  u8 type_attr;
  u16 offset_mid;
  u32 offset_high;
  u32 reserved;
};
static_assert(sizeof(Gate) == 16);

struct [[gnu::packed]] IdtPointer {
  u16 limit;
  u64 base;
};

Gate g_idt[kVectors];
IrqHandler g_irq_handlers[kVectors];

// Each vector's (mnemonic, name), as the kernel's reports print them. The tools print the same
// names: they read this very table from the ELF (PAGODA_FACT_NAMES below, lib/facts.hpp). A
// reserved vector is named by its number alone ("#9"): the tools leave it out and say "vector 9".
constexpr FactName kExceptionNames[kExceptionCount] = {
    {kDivide, "#DE", "divide error"},
    {kDebug, "#DB", "debug"},
    {kNmi, "NMI", "non-maskable interrupt"},
    {kBreakpoint, "#BP", "breakpoint"},
    {kOverflow, "#OF", "overflow"},
    {kBound, "#BR", "bound range exceeded"},
    {kInvalidOpcode, "#UD", "invalid opcode"},
    {kDeviceNotAvailable, "#NM", "device not available"},
    {kDoubleFault, "#DF", "double fault"},
    {kCoprocessorOverrun, "#9", "coprocessor segment overrun"},
    {kInvalidTss, "#TS", "invalid TSS"},
    {kSegmentNotPresent, "#NP", "segment not present"},
    {kStackFault, "#SS", "stack-segment fault"},
    {kGeneralProtection, "#GP", "general protection fault"},
    {kPageFault, "#PF", "page fault"},
    {15, "#15", "reserved vector 15"},
    {kX87, "#MF", "x87 floating-point error"},
    {kAlignmentCheck, "#AC", "alignment check"},
    {kMachineCheck, "#MC", "machine check"},
    {kSimd, "#XM", "SIMD floating-point error"},
    {kVirtualization, "#VE", "virtualization exception"},
    {kControlProtection, "#CP", "control protection"},
    {22, "#22", "reserved vector 22"},
    {23, "#23", "reserved vector 23"},
    {24, "#24", "reserved vector 24"},
    {25, "#25", "reserved vector 25"},
    {26, "#26", "reserved vector 26"},
    {27, "#27", "reserved vector 27"},
    {kHypervisorInjection, "#HV", "hypervisor injection"},
    {kVmmCommunication, "#VC", "VMM communication"},
    {kSecurity, "#SX", "security exception"},
    {31, "#31", "reserved vector 31"},
};
static_assert(keyed_by_index(kExceptionNames), "kExceptionNames is indexed by vector: row v must be vector v");

u8 ist_for(usize vector) {
  switch (vector) {
    case kDoubleFault: return kIstDoubleFault;
    case kNmi: return kIstNmi;
    case kMachineCheck: return kIstMachineCheck;
    default: return 0;
  }
}

}  // namespace

const FactName& exception_name(u64 vector) { return kExceptionNames[vector]; }

Access page_fault_access(u64 error) {
  return Access{.write = (error & kPfWrite) != 0, .execute = (error & kPfFetch) != 0, .user = (error & kPfUser) != 0};
}

// The exception names, for the tools (fault-why, the fault log, the grader) to print as the kernel does.
PAGODA_FACT_NAMES(x86_exceptions, kExceptionNames)

/// Writes the meaning of a page-fault error code, in this exact shape (the grader and every
/// later lab's fault report rely on it):
///     "<not-present page|protection violation>, <read|write>, <supervisor|user>"
/// followed by ", reserved bit set", ", instruction fetch", ", protection key" and
/// ", shadow stack" for each of those bits that is set, in that order.
void describe_page_fault_error(FormatSink& sink, u64 error) {
  // LAB 0 BEGIN decode the page-fault error code
  format_to(sink, "{}, {}, {}", (error & kPfPresent) ? "protection violation" : "not-present page",
            (error & kPfWrite) ? "write" : "read", (error & kPfUser) ? "user" : "supervisor");
  if (error & kPfReserved) format_to(sink, ", reserved bit set");
  if (error & kPfFetch) format_to(sink, ", instruction fetch");
  if (error & kPfKey) format_to(sink, ", protection key");
  if (error & kPfShadowStack) format_to(sink, ", shadow stack");
  // LAB 0 SKELETON
  // (void)sink;
  // (void)error;
  // panic("lab 0: decode the page-fault error code in describe_page_fault_error() "
  //       "(arch/x86_64/traps.cpp); see labs/00-boot/README.md");
  // LAB 0 END
}

void idt_init() {
  for (usize v = 0; v < kVectors; ++v) {
    const u64 handler = reinterpret_cast<u64>(x86_vector_stubs + v * kStubSize);
    g_idt[v] = Gate{u16(handler),       kKernelCode,        ist_for(v), u8(kGatePresent | kGateInterrupt),
                    u16(handler >> 16), u32(handler >> 32), 0};
  }
  idt_load();
}

void idt_load() {
  const IdtPointer pointer{sizeof g_idt - 1, reinterpret_cast<u64>(g_idt)};
  asm volatile("lidt %0" ::"m"(pointer));
}

void set_irq_handler(u8 vector, IrqHandler handler) {
  PAGODA_ASSERT(vector >= kFirstIrqVector);
  g_irq_handlers[vector] = handler;
}

}  // namespace pagoda::x86

/// Called by x86_trap_common for every vector.
extern "C" void x86_trap(pagoda::x86::TrapFrame* frame) {
  using namespace pagoda::x86;
  if (pagoda::vm::reporting_fault() && frame->vector < kExceptionCount)
    pagoda::vm::report_nested_fault(trap_site(*frame));
  const bool from_user = frame->cpl() == 3;
  // A trap from ring 3 lands on TSS.RSP0 (the IST vectors excepted): the running process's own
  // kernel stack, or the switch to it went wrong. Checked before anything uses the stack.
  if (from_user && ist_for(frame->vector) == 0)
    pagoda::proc::check_user_trap_frame(reinterpret_cast<pagoda::uptr>(frame), "TSS.RSP0", tss_rsp0());
  // Two CPUs: what a process's exception leads to is kernel work, under the kernel lock (its
  // return to ring 3 lets it go: vectors.S). Interrupts take it only if they need it.
  if (from_user && frame->vector < kExceptionCount && ist_for(frame->vector) == 0) (void)pagoda::kernel_lock_enter();
  if (frame->vector == kPageFault) {
    // The generic decision comes first, before anything is reported.
    const pagoda::VirtAddr address(read_cr2());
    pagoda::Access access = page_fault_access(frame->error);
    // A user copy touches user memory on the process's behalf: its fault is decided with the
    // process's rights (a page of a region comes in; anything else returns EFAULT below).
    const bool guard_up = x86_smap_enabled && !(frame->rflags & kRflagsAc);
    const pagoda::uptr fixup = from_user ? 0
                                         : pagoda::proc::checked_user_fixup(frame->rip, address.value(), guard_up,
                                                                            "SMAP (RFLAGS.AC clear)");
    if (fixup != 0) access.user = true;
    switch (pagoda::vm::handle_fault(pagoda::vm::current_space(), address, access)) {
      case pagoda::vm::FaultDecision::Resolved: return;
      case pagoda::vm::FaultDecision::KillProcess:
      case pagoda::vm::FaultDecision::KernelBug: break;
    }
    // A user copy that hit a bad user address goes on at its fix-up and returns short (EFAULT).
    if (fixup != 0) {
      frame->rip = fixup;
      return;
    }
  }
  // A double fault is the CPU failing to deliver an exception: always the kernel's bug, never
  // the process's, even when the exception came from ring 3.
  if (frame->vector == kDoubleFault) {
    const Reporting reporting(*frame);
    if (from_user) report_user_trap_stack(*frame);
    char why[400];
    pagoda::BufferSink sink(why, sizeof why);
    switch (report_double_fault(*frame, sink)) {
      case DoubleFault::TrapStack: pagoda::panic("the kernel stack for traps from user mode is wrong: {}", sink.view());
      case DoubleFault::Overflow:
        pagoda::panic(
            "kernel stack overflow: a guard page was hit (the stack's owner recursed or used too much stack)");
      case DoubleFault::Unmapped:
        pagoda::panic("kernel stack not mapped: the running stack at {:#x} was taken away under the CPU", frame->rsp);
      case DoubleFault::Unknown: break;
    }
  }
  if (frame->vector < kExceptionCount && from_user) {
    // Whatever a process did, it ends only that process.
    {
      const Reporting reporting(*frame);
      report_exception(*frame);
    }
    const pagoda::FactName& e = exception_name(frame->vector);
    user_exception(*frame, e.mnemonic, e.name, page_fault_access(frame->error));
  }
  if (frame->vector < kExceptionCount) {
    const Reporting reporting(*frame);
    report_exception(*frame);
    char why[400] = {};
    if (frame->vector == kPageFault) {
      // The panic line carries the cause (the report above has the whole walk).
      pagoda::BufferSink sink(why, sizeof why);
      describe_kernel_page_fault(sink, *frame);
    }
    pagoda::panic("unhandled {} in {} mode at RIP {:#x}{}", exception_name(frame->vector).mnemonic,
                  frame->cpl() == 0 ? "kernel" : "user", frame->rip, pagoda::StringView(why));
  }
  if (IrqHandler handler = g_irq_handlers[frame->vector]) {
    handler(*frame);
    return;
  }
  if (frame->vector == kSpuriousVector) return;  // the LAPIC's spurious vector needs no EOI
  pagoda::panic("unexpected interrupt on vector {} at RIP {:#x}", frame->vector, frame->rip);
}
