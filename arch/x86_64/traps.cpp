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
#include "arch/x86_64/user_mode.hpp"
#include "core/panic.hpp"
#include "lib/facts.hpp"
#include "mm/vm.hpp"
#include "proc/kernel_stack.hpp"
#include "proc/user_memory.hpp"

extern "C" char x86_vector_stubs[], x86_syscall_entry[], boot_stack_guard[], boot_stack_bottom[], boot_stack_top[];
extern "C" pagoda::u64 x86_syscall_kernel_rsp;

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

enum Vector : u8 {
  kDivide = 0, kDebug = 1, kNmi = 2, kBreakpoint = 3, kOverflow = 4, kBound = 5, kInvalidOpcode = 6,
  kDeviceNotAvailable = 7, kDoubleFault = 8, kCoprocessorOverrun = 9, kInvalidTss = 10,
  kSegmentNotPresent = 11, kStackFault = 12, kGeneralProtection = 13, kPageFault = 14,
  kX87 = 16, kAlignmentCheck = 17, kMachineCheck = 18, kSimd = 19, kVirtualization = 20,
  kControlProtection = 21, kHypervisorInjection = 28, kVmmCommunication = 29, kSecurity = 30,
  kExceptionCount = 32,
};

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

constexpr u64 kSelExternal = 1u << 0, kSelIdt = 1u << 1, kSelLdt = 1u << 2;
constexpr u32 kSelIndexShift = 3;

u8 ist_for(usize vector) {
  switch (vector) {
    case kDoubleFault: return kIstDoubleFault;
    case kNmi: return kIstNmi;
    case kMachineCheck: return kIstMachineCheck;
    default: return 0;
  }
}

bool has_selector_error(u64 vector) {
  return vector == kInvalidTss || vector == kSegmentNotPresent || vector == kStackFault ||
         vector == kGeneralProtection;
}

/// What a page fault's access tried to do, from its error code.
Access page_fault_access(u64 error) {
  return Access{.write = (error & kPfWrite) != 0, .execute = (error & kPfFetch) != 0, .user = (error & kPfUser) != 0};
}

/// Prints the full report of an exception: what, where, why, and every register.
void report_exception(const TrapFrame& f) {
  const FactName& e = kExceptionNames[f.vector];
  println("TRAP: {} {} (vector {}) in {} mode, CPL {}", e.mnemonic, e.name, f.vector,
          f.cpl() == 0 ? "kernel" : "user", f.cpl());
  print("  error {:#x}", f.error);
  if (f.vector == kPageFault) {
    print(": ");
    describe_page_fault_error(console_sink(), f.error);
  } else if (has_selector_error(f.vector)) {
    print(": ");
    describe_selector_error(console_sink(), f.error);
  }
  println("");
  const u64 cr2 = read_cr2();
  if (f.vector == kPageFault) println("  CR2 {:#018x}  (the address that faulted)", cr2);
  println("  RIP {:#018x}  CS {:#06x}  RFLAGS {:#018x}", f.rip, f.cs, f.rflags);
  println("  RSP {:#018x}  SS {:#06x}  CR3 {:#018x}", f.rsp, f.ss, read_cr3());
  println("  RAX {:#018x}  RBX {:#018x}  RCX {:#018x}", f.rax, f.rbx, f.rcx);
  println("  RDX {:#018x}  RSI {:#018x}  RDI {:#018x}", f.rdx, f.rsi, f.rdi);
  println("  RBP {:#018x}  R8  {:#018x}  R9  {:#018x}", f.rbp, f.r8, f.r9);
  println("  R10 {:#018x}  R11 {:#018x}  R12 {:#018x}", f.r10, f.r11, f.r12);
  println("  R13 {:#018x}  R14 {:#018x}  R15 {:#018x}", f.r13, f.r14, f.r15);
  if (f.vector == kPageFault) {
    print("  ");
    vm::report_fault(console_sink(), VirtAddr(cr2), page_fault_access(f.error));
  }
}

/// A double fault whose stack pointer or CR2 lies in the guard below a kernel stack: the stack
/// overflowed, and the page fault of the first write below it could not be delivered on it.
/// Says so, with the stack's bounds; false when it is not that.
bool report_stack_overflow(const TrapFrame& f) {
  const u64 cr2 = read_cr2();
  // The kernel's own stack (boot_stack, boot.S) has a guard page below it too.
  const u64 guard = reinterpret_cast<u64>(boot_stack_guard);
  const u64 candidates[] = {cr2, f.rsp};
  for (const u64 at : candidates) {
    if (at - guard >= kPageSize) continue;
    println("KERNEL STACK OVERFLOW: the kernel's own stack (boot_stack [{:#x}, {:#x})) ran into its guard page at {:#x} "
            "(RSP {:#x}, CR2 {:#x}); the page fault could not be delivered on that stack, so the CPU raised a double "
            "fault on its own IST stack",
            reinterpret_cast<u64>(boot_stack_bottom), reinterpret_cast<u64>(boot_stack_top), guard, f.rsp, cr2);
    return true;
  }
  proc::StackRange hit = proc::guard_hit(cr2);
  u64 where = cr2;
  if (hit.empty()) {
    hit = proc::guard_hit(f.rsp);
    where = f.rsp;
  }
  if (hit.empty()) return false;
  println("KERNEL STACK OVERFLOW: the kernel stack of slot {} [{:#x}, {:#x}) ran into its guard page at {:#x} "
          "(RSP {:#x}, CR2 {:#x}); the page fault could not be delivered on that stack, so the CPU raised a "
          "double fault on its own IST stack",
          hit.slot, hit.bottom, hit.top, align_down(where, kPageSize), f.rsp, cr2);
  return true;
}

/// A double fault whose interrupted stack pointer is not mapped in the live root: the first
/// exception could not push its frame, because the running stack was taken away under the CPU
/// (a switch to a root without it, with the pre-switch check off; an unmap of it while in use;
/// lab 2's classic: the boot identity removed while still on the boot stub's entry stack).
/// Says so, with the walk; false when it is not that.
bool report_unmapped_stack(const TrapFrame& f) {
  const VirtAddr below(f.rsp - sizeof(u64));  // where the first push went
  if (vm::mapped_now(below)) return false;
  println("KERNEL STACK NOT MAPPED: the stack pointer {:#x}{} is not mapped in the live root {:#x}: the exception "
          "could not push its frame there, so the CPU raised a double fault on its own IST stack. The running stack "
          "was taken away under the CPU: a switch to a root that lacks it (the pre-switch check was off), or an "
          "unmap of it while in use",
          f.rsp, on_entry_stack(f.rsp) ? " (the boot stub's low entry stack)" : "", read_cr3());
  print("  ");
  vm::report_fault(console_sink(), below, Access{.write = true});
  return true;
}

/// @p f as the report of a fault taken while another was being reported names it (CR2 and CR3
/// as they are now, when the trap is taken).
vm::TrapSite trap_site(const TrapFrame& f) {
  const FactName& e = kExceptionNames[f.vector];
  return {e.mnemonic, e.name, "RIP", f.rip, "CR2", read_cr2(), "CR3", read_cr3(), f.cpl() != 0, f.vector == kPageFault};
}

/// Marks the report of @p f as under way for as long as it lives (vm::ReportingFault).
struct Reporting : vm::ReportingFault {
  explicit Reporting(const TrapFrame& f) : vm::ReportingFault(trap_site(f)) {}
};

/// A double fault that interrupted user mode: the CPU could not push the frame of an exception
/// or interrupt from ring 3 on the kernel stack TSS.RSP0 names. Reports what RSP0 is instead of
/// the process's kernel stack, and panics: a kernel bug (the switch to the process), never the
/// process's.
[[noreturn]] void report_user_trap_stack(const TrapFrame& f) {
  char why[400];
  BufferSink sink(why, sizeof why);
  const bool wrong = proc::explain_user_trap_stack(sink, "TSS.RSP0", tss_rsp0());
  if (!wrong)
    format_to(sink, "TSS.RSP0 {:#x} is the process's own kernel stack and it is mapped: the IDT, the handler, the "
                    "GDT or the TSS is what could not be reached",
              tss_rsp0());
  println("TRAP FROM USER MODE WITHOUT A KERNEL STACK: an exception or interrupt from user mode (RIP {:#x}) could not "
          "be delivered, so the CPU raised a double fault on its own IST stack: {}",
          f.rip, sink.view());
  if (wrong && !vm::mapped_now(VirtAddr(tss_rsp0() - sizeof(u64)))) {
    print("  ");
    vm::report_fault(console_sink(), VirtAddr(tss_rsp0() - sizeof(u64)), Access{.write = true});
  }
  report_exception(f);
  if (wrong) panic("the kernel stack for traps from user mode is wrong: {}", sink.view());
  panic("a double fault from user mode at RIP {:#x} (a kernel bug: {})", f.rip, sink.view());
}

/// True when @p rip is in the system-call entry (switch.S), before it calls x86_syscall: where
/// it runs on the system-call stack it just loaded.
bool in_syscall_entry(u64 rip) {
  const u64 entry = reinterpret_cast<u64>(x86_syscall_entry);
  return rip >= entry && rip < entry + kPageSize;
}

}  // namespace

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

void describe_selector_error(FormatSink& sink, u64 error) {
  if (error == 0) {
    format_to(sink, "no selector");
    return;
  }
  const u64 index = error >> kSelIndexShift;
  if (error & kSelIdt) format_to(sink, "IDT vector {}", index);
  else format_to(sink, "{} selector {:#x} (index {})", (error & kSelLdt) ? "LDT" : "GDT", error & ~u64{7}, index);
  if (error & kSelExternal) format_to(sink, ", external event");
}

void idt_init() {
  for (usize v = 0; v < kVectors; ++v) {
    const u64 handler = reinterpret_cast<u64>(x86_vector_stubs + v * kStubSize);
    g_idt[v] = Gate{u16(handler), kKernelCode, ist_for(v), u8(kGatePresent | kGateInterrupt),
                    u16(handler >> 16), u32(handler >> 32), 0};
  }
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
  if (frame->vector == kPageFault) {
    // The generic decision comes first, before anything is reported.
    const pagoda::VirtAddr address(read_cr2());
    pagoda::Access access = page_fault_access(frame->error);
    // A user copy touches user memory on the process's behalf: its fault is decided with the
    // process's rights (a page of a region comes in; anything else returns EFAULT below).
    const bool guard_up = x86_smap_enabled && !(frame->rflags & kRflagsAc);
    const pagoda::uptr fixup = from_user ? 0 : pagoda::proc::checked_user_fixup(frame->rip, address.value(), guard_up, "SMAP (RFLAGS.AC clear)");
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
    if (in_syscall_entry(frame->rip) && !pagoda::vm::mapped_now(pagoda::VirtAddr(frame->rsp - sizeof(pagoda::u64)))) {
      char why[400];
      pagoda::BufferSink sink(why, sizeof why);
      if (pagoda::proc::explain_user_trap_stack(sink, "the system-call stack", x86_syscall_kernel_rsp)) {
        pagoda::println("TRAP FROM USER MODE WITHOUT A KERNEL STACK: the system-call entry loaded the stack {:#x} and "
                        "could not push its frame there, so the CPU raised a double fault on its own IST stack: {}",
                        x86_syscall_kernel_rsp, sink.view());
        report_exception(*frame);
        pagoda::panic("the kernel stack for traps from user mode is wrong: {}", sink.view());
      }
    }
    if (report_stack_overflow(*frame)) {
      report_exception(*frame);
      pagoda::panic("kernel stack overflow: a guard page was hit (the stack's owner recursed or used too much stack)");
    }
    if (report_unmapped_stack(*frame)) {
      report_exception(*frame);
      pagoda::panic("kernel stack not mapped: the running stack at {:#x} was taken away under the CPU", frame->rsp);
    }
  }
  if (frame->vector < kExceptionCount && from_user) {
    // Whatever a process did, it ends only that process.
    {
      const Reporting reporting(*frame);
      report_exception(*frame);
    }
    const pagoda::FactName& e = kExceptionNames[frame->vector];
    user_exception(*frame, e.mnemonic, e.name, page_fault_access(frame->error));
  }
  if (frame->vector < kExceptionCount) {
    const Reporting reporting(*frame);
    report_exception(*frame);
    char why[400] = {};
    if (frame->vector == kPageFault) {
      // The panic line carries the cause: what the access was, where the address lies, and what
      // the walk found (the report above has the whole walk).
      pagoda::BufferSink sink(why, sizeof why);
      const pagoda::u64 cr2 = read_cr2();
      const pagoda::Access access = page_fault_access(frame->error);
      pagoda::format_to(sink, ": {} {:#x} ", access.execute ? "fetch from" : access.write ? "write to" : "read of", cr2);
      pagoda::proc::describe_address(sink, cr2);
      pagoda::format_to(sink, ": ");
      pagoda::explain_fault(sink, pagoda::vm::walk_active(pagoda::VirtAddr(cr2)), access);
    }
    pagoda::panic("unhandled {} in {} mode at RIP {:#x}{}", kExceptionNames[frame->vector].mnemonic,
                  frame->cpl() == 0 ? "kernel" : "user", frame->rip, pagoda::StringView(why));
  }
  if (IrqHandler handler = g_irq_handlers[frame->vector]) {
    handler(*frame);
    return;
  }
  if (frame->vector == kSpuriousVector) return;  // the LAPIC's spurious vector needs no EOI
  pagoda::panic("unexpected interrupt on vector {} at RIP {:#x}", frame->vector, frame->rip);
}
