// Exception dispatch for AArch64: decoded reports, IRQs through the GIC.
//
//   ESR_EL1 (exception syndrome)
//   63      32 31    26 25 24                                                        0
//   +---------+--------+--+-----------------------------------------------------------+
//   |  ISS2   |   EC   |IL|                 ISS (instruction specific)               |
//   +---------+--------+--+-----------------------------------------------------------+
//   EC  exception class: why (0x00 undefined instruction, 0x15 SVC, 0x21 instruction abort,
//       0x25 data abort, ... the table below)     IL  32-bit instruction
//
//   ISS of an instruction abort (EC 0x20/0x21) or data abort (EC 0x24/0x25)
//   24  23 22 21 20   16 15 14  13  12  11 10   9    8   7     6   5        0
//   +---+-----+--+-------+--+--+---+--+-----+---+----+---+-----+---+----------+
//   |ISV| SAS |SE|  SRT  |SF|AR|VNC|..| SET |FnV| EA | CM|S1PTW|WnR|DFSC/IFSC |
//   +---+-----+--+-------+--+--+---+--+-----+---+----+---+-----+---+----------+
//   (ISV..SET: data aborts only, and only for some faults; WnR and CM: data aborts only)
//   WnR    1: the access was a write        S1PTW  the fault happened on a table walk
//   CM     a cache maintenance instruction  EA     external abort type
//   FnV    FAR_EL1 is not valid
//
//   DFSC/IFSC (fault status)
//   0b0000LL  address size fault at level LL    0b010000  synchronous external abort
//   0b0001LL  translation fault at level LL     0b0101LL  external abort on a table walk, level LL
//   0b0010LL  access flag fault at level LL     0b100001  alignment fault
//   0b0011LL  permission fault at level LL      0b110000  TLB conflict abort
//   (level LL: the table level, 0..3, at which the walk found the problem)
#include "arch/aarch64/traps.hpp"

#include "arch/aarch64/cpu.hpp"
#include "arch/aarch64/gic.hpp"
#include "arch/aarch64/mmu_hw.hpp"
#include "arch/aarch64/platform.hpp"
#include "arch/aarch64/trap_report.hpp"
#include "arch_impl/page_table_format.hpp"
#include "core/cpu.hpp"
#include "core/panic.hpp"
#include "lib/facts.hpp"
#include "arch/aarch64/user_mode.hpp"
#include "mm/vm.hpp"
#include "proc/kernel_stack.hpp"
#include "proc/user_memory.hpp"

extern "C" char aarch64_vectors[];

namespace pagoda::aarch64 {
namespace {

// Each exception class's name (ESR_EL1.EC), as the kernel's reports print them. The tools print the
// same names: they read this very table from the ELF (PAGODA_FACT_NAMES below, lib/facts.hpp).
constexpr FactName kClassNames[] = {
    {0x00, nullptr, "undefined instruction"},
    {0x01, nullptr, "trapped WFI/WFE"},
    {0x03, nullptr, "trapped AArch32 MCR/MRC (cp15)"},
    {0x04, nullptr, "trapped AArch32 MCRR/MRRC (cp15)"},
    {0x05, nullptr, "trapped AArch32 MCR/MRC (cp14)"},
    {0x06, nullptr, "trapped AArch32 LDC/STC"},
    {0x07, nullptr, "trapped SIMD/floating-point access"},
    {0x0c, nullptr, "trapped AArch32 MRRC (cp14)"},
    {0x0d, nullptr, "branch target exception"},
    {0x0e, nullptr, "illegal execution state"},
    {0x11, nullptr, "AArch32 SVC"},
    {0x15, nullptr, "SVC (system call)"},
    {0x16, nullptr, "HVC"},
    {0x17, nullptr, "SMC"},
    {0x18, nullptr, "trapped MSR/MRS or system instruction"},
    {0x19, nullptr, "trapped SVE access"},
    {0x1c, nullptr, "pointer authentication failure"},
    {0x20, nullptr, "instruction abort, lower EL"},
    {0x21, nullptr, "instruction abort, same EL"},
    {0x22, nullptr, "PC alignment fault"},
    {0x24, nullptr, "data abort, lower EL"},
    {0x25, nullptr, "data abort, same EL"},
    {0x26, nullptr, "SP alignment fault"},
    {0x28, nullptr, "AArch32 floating-point exception"},
    {0x2c, nullptr, "floating-point exception"},
    {0x2f, nullptr, "SError interrupt"},
    {0x30, nullptr, "breakpoint, lower EL"},
    {0x31, nullptr, "breakpoint, same EL"},
    {0x32, nullptr, "software step, lower EL"},
    {0x33, nullptr, "software step, same EL"},
    {0x34, nullptr, "watchpoint, lower EL"},
    {0x35, nullptr, "watchpoint, same EL"},
    {0x38, nullptr, "AArch32 BKPT"},
    {0x3c, nullptr, "BRK instruction"},
};

// The fault statuses (an abort's ISS bits 5:0) that carry no level (the four that do are decoded in
// describe_abort), read by the tools the same way.
constexpr FactName kFaultStatusNames[] = {
    {0b010000, nullptr, "synchronous external abort"},
    {0b010001, nullptr, "synchronous tag check fault"},
    {0b010100, nullptr, "external abort on a table walk at level 0"},
    {0b010101, nullptr, "external abort on a table walk at level 1"},
    {0b010110, nullptr, "external abort on a table walk at level 2"},
    {0b010111, nullptr, "external abort on a table walk at level 3"},
    {0b011000, nullptr, "synchronous parity or ECC error"},
    {0b100001, nullptr, "alignment fault"},
    {0b110000, nullptr, "TLB conflict abort"},
    {0b110001, nullptr, "unsupported atomic hardware update"},
};

/// The name of @p key in @p table, or @p otherwise.
template <usize N> const char* name_in(const FactName (&table)[N], u64 key, const char* otherwise) {
  for (const FactName& row : table)
    if (row.key == key) return row.name;
  return otherwise;
}

}  // namespace

// The tables above, for the tools (fault-why, the fault log, the grader) to print as the kernel does.
PAGODA_FACT_NAMES(aarch64_exception_classes, kClassNames)
PAGODA_FACT_NAMES(aarch64_fault_statuses, kFaultStatusNames)

const char* exception_class_name(u64 ec) { return name_in(kClassNames, ec, "reserved exception class"); }

namespace {

const char* class_name(u64 ec) { return exception_class_name(ec); }

/// The fault statuses that carry no level (the four that do are decoded in describe_abort).
const char* fault_status_name(u64 status) { return name_in(kFaultStatusNames, status, "reserved fault status"); }

}  // namespace

Access abort_access(const TrapFrame& f) {
  return Access{.write = is_data_abort(f.esr) && (f.esr & kIssWnR) && !(f.esr & kIssCm),
                .execute = !is_data_abort(f.esr),
                .user = f.from_el() == 0};
}

bool is_translation_abort(const TrapFrame& f) {
  return f.type() == VectorType::Synchronous && is_abort(f.esr) && !(f.esr & kIssFnV);
}

using Format = arch::PageTableFormat;

/// Lab 7: the access flag and the dirty state are the kernel's (page_table_format.hpp). An
/// access flag fault on a user page of the live space sets AF; a write permission fault on a
/// clean writable user page makes it dirty (AP[2] clear; the read-only translation the TLB may
/// hold is invalidated, or the retried write would fault on it again). True when @p f was one
/// of the two: the access is retried, nothing is reported. Both come from user mode and from a
/// user copy alike. Nothing but lab 7's clock and swap-in make such entries, so before it this
/// never finds one.
bool resolve_software_bits(const TrapFrame& f) {
  const u64 kind = f.esr & kIssFaultStatusMask & kFaultKindMask;
  const bool access_flag = kind == kFaultAccessFlag;
  if (!access_flag && !(kind == kFaultPermission && abort_access(f).write)) return false;
  const VirtAddr va(f.far);
  AddressSpace* space = vm::current_space();
  if (Format::in_upper_range(va) || space == nullptr || space->is_kernel()) return false;
  ConsistencyBatch batch = space->batch();
  AddressSpace::Cursor c = space->cursor(batch, va.align_down(kPageSize));
  u64* leaf = c.page_entry();
  if (leaf == nullptr || !Format::entry_perms(*leaf, Format::kL3).user) return false;
  if (access_flag) {
    *leaf = Format::with_accessed(*leaf);  // a translation without AF is never cached: nothing to invalidate
  } else {
    if (!Format::is_clean_writable(*leaf)) return false;
    *leaf = Format::dirtied(*leaf);
    batch.invalidate(va.align_down(kPageSize), false);
  }
  batch.wrote();
  return true;
}

/// Writes the meaning of an abort's syndrome, in this exact shape (the grader relies on it):
///     "<fault> at level <n>, <read|write|instruction fetch>"
/// where <fault> is "address size fault", "translation fault", "access flag fault" or
/// "permission fault" (DFSC/IFSC 0b00xxLL; LL is the level), or for any other fault status
/// fault_status_name()'s text without " at level"; then ", cache maintenance" (CM, data aborts
/// only), ", on a table walk" (S1PTW), ", external abort" (EA) and ", FAR not valid" (FnV), for
/// each of those bits that is set, in that order.
void describe_abort(FormatSink& sink, u64 esr) {
  // LAB 0 BEGIN decode the abort syndrome
  const u64 status = esr & kIssFaultStatusMask;
  constexpr const char* kLevelled[] = {"address size fault", "translation fault", "access flag fault",
                                       "permission fault"};
  if ((status >> 2) < array_size(kLevelled)) format_to(sink, "{} at level {}", kLevelled[status >> 2], status & 3);
  else format_to(sink, "{}", fault_status_name(status));
  const bool data = is_data_abort(esr);
  format_to(sink, ", {}", !data ? "instruction fetch" : (esr & kIssWnR) ? "write" : "read");
  if (data && (esr & kIssCm)) format_to(sink, ", cache maintenance");
  if (esr & kIssS1ptw) format_to(sink, ", on a table walk");
  if (esr & kIssEa) format_to(sink, ", external abort");
  if (esr & kIssFnV) format_to(sink, ", FAR not valid");
  // LAB 0 SKELETON
  // (void)sink;
  // (void)esr;
  // (void)fault_status_name;
  // panic("lab 0: decode the abort syndrome in describe_abort() (arch/aarch64/traps.cpp); "
  //       "see labs/00-boot/README.md");
  // LAB 0 END
}

void vectors_init() {
  PAGODA_WRITE_SYSREG("vbar_el1", reinterpret_cast<u64>(aarch64_vectors));
  isb();
}

}  // namespace pagoda::aarch64

namespace {

/// Every exception but a system call (aarch64_trap()).
[[gnu::noinline]] void other_trap(pagoda::aarch64::TrapFrame* frame) {
  using namespace pagoda::aarch64;
  if (pagoda::vm::reporting_fault() && frame->type() == VectorType::Synchronous)
    pagoda::vm::report_nested_fault(trap_site(*frame));
  if (frame->overflowed()) {
    const Reporting reporting(*frame);
    char why[400];
    pagoda::BufferSink sink(why, sizeof why);
    switch (report_overflowed(*frame, sink)) {
      case Overflowed::TrapStack: pagoda::panic("the kernel stack for traps from user mode is wrong: {}", sink.view());
      case Overflowed::Unmapped:
        pagoda::panic("kernel stack not mapped: the running stack at {:#x} was taken away under the CPU", frame->sp);
      case Overflowed::Guard:
        pagoda::panic(
            "kernel stack overflow: a guard page was hit (the stack's owner recursed or used too much stack)");
    }
  }
  const bool from_user = frame->origin() == VectorOrigin::LowerElAarch64;
  // A trap from EL0 lands on SP_EL1: the running process's own kernel stack, or the switch to
  // it went wrong. Checked before anything uses the stack.
  if (from_user)
    pagoda::proc::check_user_trap_frame(reinterpret_cast<pagoda::uptr>(frame), "the EL1 stack (SP_EL1)",
                                        reinterpret_cast<pagoda::uptr>(frame) + TRAP_FRAME_SIZE);
  // Two CPUs: what a process's exception leads to is kernel work, under the kernel lock (its
  // return to EL0 lets it go: vectors.S). Interrupts take it only if they need it.
  if (from_user && frame->type() == VectorType::Synchronous) (void)pagoda::kernel_lock_enter();
  switch (frame->type()) {
    case VectorType::Irq:
      if (frame->origin() == VectorOrigin::CurrentElSpx || frame->origin() == VectorOrigin::LowerElAarch64) {
        gic_handle_irq(*frame);
        return;
      }
      break;
    case VectorType::Synchronous:
      // (A system call from EL0 never comes here: aarch64_trap() took it.)
      if (frame->origin() == VectorOrigin::CurrentElSpx && semihosting_trapped(*frame)) return;
      if (is_translation_abort(*frame)) {
        if (resolve_software_bits(*frame)) return;  // lab 7: AF set, or a clean page made dirty
        // The generic decision comes first, before anything is reported.
        pagoda::Access access = abort_access(*frame);
        // A user copy touches user memory on the process's behalf: its fault is decided with the
        // process's rights (a page of a region comes in; anything else returns EFAULT below).
        const bool guard_up = (frame->spsr & kPstatePan) != 0;
        const pagoda::uptr fixup = from_user ? 0
                                             : pagoda::proc::checked_user_fixup(frame->elr, frame->far, guard_up,
                                                                                "PAN (SPSR.PAN set)");
        if (fixup != 0) access.user = true;
        switch (pagoda::vm::handle_fault(pagoda::vm::current_space(), pagoda::VirtAddr(frame->far), access)) {
          case pagoda::vm::FaultDecision::Resolved: return;
          case pagoda::vm::FaultDecision::KillProcess:
          case pagoda::vm::FaultDecision::KernelBug: break;
        }
        // A user copy that hit a bad user address goes on at its fix-up and returns short (EFAULT).
        if (fixup != 0) {
          frame->elr = fixup;
          return;
        }
      }
      break;
    case VectorType::Fiq:
    case VectorType::SError: break;
  }
  {
    const Reporting reporting(*frame);
    report_exception(*frame);
  }
  // Whatever a process did, it ends only that process.
  if (from_user && frame->type() == VectorType::Synchronous) user_exception(*frame);
  if (frame->type() == VectorType::Synchronous) {
    const pagoda::u64 ec = esr_class(frame->esr);
    char why[400] = {};
    if (is_translation_abort(*frame)) {
      // The panic line carries the cause (the report above has the whole walk).
      const Reporting reporting(*frame);
      pagoda::BufferSink sink(why, sizeof why);
      describe_kernel_abort(sink, *frame);
    }
    pagoda::panic("unhandled {} (EC {:#04x}) in {} mode at ELR {:#x}{}", class_name(ec), ec,
                  frame->from_el() == 0 ? "user" : "kernel", frame->elr, pagoda::StringView(why));
  }
  pagoda::panic("unhandled {} from the {} at ELR {:#x}", kVectorTypeNames[pagoda::u64(frame->type())],
                kVectorOriginNames[pagoda::u64(frame->origin())], frame->elr);
}

}  // namespace

/// Called by aarch64_trap_entry for every exception. A system call, the commonest, is taken
/// first, with what it needs only (its stack checked, then user_syscall()); everything else goes
/// to other_trap(), whose frame and saved registers it does not pay for. (Never a tail call: the
/// debugging tools find the TrapFrame by this function's frame in the backtrace.)
extern "C" [[clang::disable_tail_calls]] void aarch64_trap(pagoda::aarch64::TrapFrame* frame) {
  using namespace pagoda::aarch64;
  if (frame->kind == TRAP_KIND_LOWER_SYNC && esr_class(frame->esr) == kClassSvc64) [[likely]] {
    // A trap from EL0 lands on SP_EL1: the running process's own kernel stack, or the switch to
    // it went wrong. Checked before anything uses the stack.
    pagoda::proc::check_user_trap_frame(reinterpret_cast<pagoda::uptr>(frame), "the EL1 stack (SP_EL1)",
                                        reinterpret_cast<pagoda::uptr>(frame) + TRAP_FRAME_SIZE);
    (void)pagoda::kernel_lock_enter();  // two CPUs: kernel work (its return to EL0 lets it go: vectors.S)
    user_syscall(*frame);
    return;
  }
  other_trap(frame);
}
