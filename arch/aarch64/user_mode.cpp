// The AArch64 side of kernel/proc/arch.hpp: EL0, `svc`, PAN, the kernel-stack bounds the vector
// entry checks, and the decoding of an exception taken from EL0.
//
//   SCTLR_EL1 bits user mode relies on (the boot stub set the rest, boot_defs.h)
//   bit  9 UMA    0: EL0 may not touch DAIF (`msr daifset`, the x86 `cli`, traps: EC 0x18)
//   bit 16 nTWI   0: WFI at EL0 traps (EC 0x01): the x86 `hlt`
//   bit 18 nTWE   0: WFE at EL0 traps too
//   bit 23 SPAN   0: every exception into EL1 sets PSTATE.PAN
//   bit 26 UCI    0: cache maintenance by address (DC CVAU, IC IVAU, ...) at EL0 traps
//
//   PSTATE.PAN (Privileged Access Never, ARMv8.1): 1 = an EL1 load or store to a page EL0 may
//   access faults (a permission fault). The kernel keeps it set; user_access_begin/end clear
//   and set it around one checked copy (proc::UserAccessScope). Instruction fetches are PAN's
//   twin, PXN: every user page is mapped PXN (page_table_format.hpp), and a page writable at
//   EL0 is never executable at EL1 anyway.
//
//   CNTKCTL_EL1 bit 1 EL0VCTEN: EL0 may read CNTVCT_EL0 (user/lib's cycle counter, for
//   `pagoda bench syscall`); everything else of the timer stays the kernel's.
//
// Entering EL0: prepare_user_entry() writes a TrapFrame whose ERET lands at the ELF entry,
//   ELR_EL1 = entry, SPSR_EL1 = EL0t with D A I F clear (so the timer can preempt), SP_EL0 =
//   the user stack, x0 = argc, x1 = argv.
// The x86 privileged instructions of lab 3, and what stands for them here (user/programs/priv):
//   hlt -> wfi (trapped, nTWI = 0)    cli -> msr daifset, #2 (trapped, UMA = 0)
//   mov cr3 -> msr ttbr0_el1, x0 (UNDEFINED at EL0), and mrs of EL1 registers (ttbr1_el1,
//   vbar_el1, sctlr_el1) for rdmsr, sgdt and out.
#include "arch/aarch64/user_mode.hpp"

#include "arch/aarch64/cpu.hpp"
#include "arch/aarch64/traps.hpp"
#include "arch_impl/page_table_format.hpp"
#include "core/panic.hpp"
#include "lib/facts.hpp"
#include "lib/string.hpp"
#include "mm/vm.hpp"
#include "proc/arch.hpp"
#include "proc/kernel_stack.hpp"
#include "proc/user_memory.hpp"

extern "C" char aarch64_svc_entry[], aarch64_trap_return[];
extern "C" void aarch64_switch_context(pagoda::uptr* save_sp, pagoda::uptr load_sp);
/// In user_copy.S: the instructions that may fault on a user address (each in the fix-up table).
extern "C" pagoda::usize aarch64_user_copy(void* dst, const void* src, pagoda::usize n);
extern "C" pagoda::i64 aarch64_user_string_copy(char* dst, const char* src, pagoda::usize max);

/// The top of the kernel stack every exception from EL0 lands on, per CPU (the vector entries
/// load SP_EL1 from this CPU's slot, vectors.S): arch::set_kernel_stack() sets it to the next
/// process's at a switch.
extern "C" constinit pagoda::PerCpu<pagoda::u64> aarch64_user_trap_sp_of asm("aarch64_user_trap_sp") = {};
static_assert(pagoda::kMaxCpus == 2, "vectors.S's MAX_CPUS");

/// What the synchronous vector of the kernel (vectors.S, kstack_check) compares the stack
/// pointer with: {kStackBase, the area's size, slot stride - 1, guard size}. From the one
/// definition of the area (kernel/proc/kernel_stack.hpp).
// clang-format off
extern "C" alignas(32) const pagoda::u64 aarch64_kstack_area[4] = {
    pagoda::layout::kStackBase, pagoda::proc::kKernelStackSlots * pagoda::proc::kKernelStackStride,
    pagoda::proc::kKernelStackStride - 1, pagoda::proc::kKernelStackGuard};
// clang-format on

namespace pagoda::aarch64 {

// The frame a process enters EL0 from, for the grader (it reads each new process's at the top of
// its kernel stack before it runs): its size, where the return goes and with which PSTATE.
PAGODA_FACT(user_frame_size, sizeof(TrapFrame))
PAGODA_FACT(user_frame_pc, __builtin_offsetof(TrapFrame, elr))
PAGODA_FACT(user_frame_sp, __builtin_offsetof(TrapFrame, sp))
PAGODA_FACT(user_frame_flags, __builtin_offsetof(TrapFrame, spsr))
PAGODA_FACT(user_frame_argc, __builtin_offsetof(TrapFrame, x))  // the process-entry convention: x0, x1
PAGODA_FACT(user_frame_argv, __builtin_offsetof(TrapFrame, x) + sizeof(u64))
PAGODA_FACT(user_frame_result, __builtin_offsetof(TrapFrame, x))  // a system call's result, x0 (fork's child: 0)

namespace {

static_assert((proc::kKernelStackStride & (proc::kKernelStackStride - 1)) == 0,
              "the vector's check masks the offset in a slot: the stride must be a power of two");
static_assert(layout::kStackBase % proc::kKernelStackStride == 0);

constexpr u64 kSctlrUma = 1u << 9, kSctlrNtwi = 1u << 16, kSctlrNtwe = 1u << 18, kSctlrSpan = 1u << 23,
              kSctlrUci = 1u << 26;
constexpr u64 kCntkctlEl0Vcten = 1u << 1;
/// SPSR_EL1 for a return to EL0 on SP_EL0 (M[3:0] = 0b0000, EL0t) with no exception masked.
[[maybe_unused]] constexpr u64 kSpsrEl0t = 0;

constexpr u64 kClassWfx = 0x01, kClassSysreg = 0x18, kClassPcAlignment = 0x22, kClassSpAlignment = 0x26,
              kClassFp = 0x07, kClassBrk = 0x3c;

/// PSTATE.PAN through its register form (the PAN register, S3_0_C4_C2_3): an ARMv8.0 assembler
/// takes it, and the value says exactly which bit it is.
void set_pan(bool on) {
  const u64 value = on ? kPstatePan : 0;
  asm volatile("msr s3_0_c4_c2_3, %0" ::"r"(value) : "memory");
}

/// The system-register operand of an MSR/MRS (register) encoding: op0:op1:CRn:CRm:op2, bits 20:5.
constexpr u32 sysreg_field(u32 op0, u32 op1, u32 crn, u32 crm, u32 op2) {
  return (op0 << 14) | (op1 << 11) | (crn << 7) | (crm << 3) | op2;
}

struct SysregName {
  u32 field;
  const char* name;
};

constexpr SysregName kSysregs[] = {
    {sysreg_field(3, 0, 1, 0, 0), "sctlr_el1"}, {sysreg_field(3, 0, 2, 0, 0), "ttbr0_el1"},
    {sysreg_field(3, 0, 2, 0, 1), "ttbr1_el1"}, {sysreg_field(3, 0, 2, 0, 2), "tcr_el1"},
    {sysreg_field(3, 0, 12, 0, 0), "vbar_el1"}, {sysreg_field(3, 0, 4, 0, 0), "spsr_el1"},
    {sysreg_field(3, 0, 4, 0, 1), "elr_el1"},   {sysreg_field(3, 0, 10, 2, 0), "mair_el1"},
    {sysreg_field(3, 3, 4, 2, 1), "daif"},
};

const char* sysreg_name(u32 field) {
  for (const SysregName& r : kSysregs)
    if (r.field == field) return r.name;
  return nullptr;
}

char g_insn_name[48];

}  // namespace

// ---- Privileged instructions ------------------------------------------------------------------

const char* privileged_instruction(u32 insn) {
  if ((insn & 0xffff'ffdf) == 0xd503'205f) return (insn & 0x20) ? "wfi" : "wfe";
  if (insn == 0xd69f'03e0) return "eret";
  if ((insn & 0xffe0'001f) == 0xd400'0002) return "hvc";
  if ((insn & 0xffe0'001f) == 0xd400'0003) return "smc";
  // MSR (immediate) to a PSTATE field: op1 3 op2 6/7 are DAIFSet/DAIFClr.
  if ((insn & 0xfff8'f01f) == 0xd500'401f) {
    const u32 op1 = (insn >> 16) & 7, op2 = (insn >> 5) & 7;
    if (op1 == 3 && op2 == 6) return "msr daifset";
    if (op1 == 3 && op2 == 7) return "msr daifclr";
    return "msr to a PSTATE field";
  }
  // SYS (op0 = 1, L = 0): TLBI, AT, DC, IC.
  if ((insn & 0xfff8'0000) == 0xd508'0000) {
    const u32 crn = (insn >> 12) & 0xf;
    return crn == 8 ? "tlbi" : crn == 7 ? "at/dc/ic (a system instruction)" : "sys (a system instruction)";
  }
  // MSR / MRS (register): bit 21 L (1: MRS), bits 20:5 the register.
  if ((insn & 0xffd0'0000) == 0xd510'0000) {
    const bool read = (insn >> 21) & 1;
    const char* reg = sysreg_name((insn >> 5) & 0xffff);
    BufferSink sink(g_insn_name, sizeof g_insn_name);
    if (reg != nullptr) format_to(sink, "{} {}", read ? "mrs" : "msr", reg);
    else format_to(sink, "{} of a system register EL0 may not use", read ? "mrs" : "msr");
    return g_insn_name;
  }
  return nullptr;
}

// ---- System calls and faults from EL0 ---------------------------------------------------------

void user_syscall(TrapFrame& f) {
  // LAB 3 BEGIN the system-call ABI: the number and arguments from the frame, the result into it
  // kernel/lib/abi.hpp: the number in x8, the arguments in x0..x5; the result back in x0.
  const proc::SyscallArgs call{f.x[8], {f.x[0], f.x[1], f.x[2], f.x[3], f.x[4], f.x[5]}};
  f.x[0] = u64(proc::syscall(call));
  // LAB 3 SKELETON
  // panic("lab 3: write user_syscall() in arch/aarch64/user_mode.cpp (labs/03-process-roots/README.md): system call {}", f.x[8]);
  // LAB 3 END
}

void user_exception(const TrapFrame& f) {
  const u64 ec = esr_class(f.esr);
  proc::UserFault fault;
  // Short names as QEMU's log gives them (DABT, IABT, UNDEF), and for the traps EL0 took by the
  // kernel's choice (SCTLR_EL1), what was trapped.
  fault.mnemonic = is_abort(f.esr)       ? (is_data_abort(f.esr) ? "DABT" : "IABT")
                   : ec == kClassUnknown ? "UNDEF"
                   : ec == kClassWfx     ? "WFx"
                   : ec == kClassSysreg  ? "SYSREG"
                                         : "SYNC";
  fault.name = exception_class_name(ec);
  fault.vector_label = "EC";
  fault.vector = ec;
  fault.pc_label = "ELR";
  fault.pc = f.elr;
  BufferSink reason(fault.reason, sizeof fault.reason);
  if (is_abort(f.esr)) {
    const bool valid = !(f.esr & kIssFnV);
    fault.how = abi::Termination::PageFault;
    fault.address = f.far;
    fault.has_address = valid;
    const Access access{.write = is_data_abort(f.esr) && (f.esr & kIssWnR) && !(f.esr & kIssCm),
                        .execute = !is_data_abort(f.esr),
                        .user = true};
    fault.access = access;
    if (valid) explain_fault(reason, vm::walk_active(VirtAddr(f.far)), access);
    else format_to(reason, "the CPU gave no fault address");
  } else if (ec == kClassUnknown || ec == kClassWfx || ec == kClassSysreg) {
    u32 insn = 0;
    AddressSpace* space = vm::current_space();
    const bool read = space != nullptr && proc::copy_from_user(*space, &insn, f.elr, sizeof insn).ok();
    if (const char* name = read ? privileged_instruction(insn) : nullptr) {
      fault.how = abi::Termination::PrivilegedInstruction;
      format_to(reason, "{}: a privileged instruction", name);
    } else if (ec != kClassUnknown) {
      fault.how = abi::Termination::PrivilegedInstruction;
      format_to(reason, "{}: EL0 may not execute it", exception_class_name(ec));
    } else {
      fault.how = abi::Termination::IllegalInstruction;
    }
  } else if (ec == kClassPcAlignment || ec == kClassSpAlignment) {
    fault.how = abi::Termination::ProtectionFault;
    format_to(reason, "{}", ec == kClassPcAlignment ? "a misaligned PC" : "a misaligned stack pointer");
  } else if (ec == kClassFp) {
    fault.how = abi::Termination::IllegalInstruction;
    format_to(reason, "floating-point/SIMD registers are not available to user programs");
  } else if (ec == kClassBrk) {
    fault.how = abi::Termination::Killed;
    format_to(reason, "a BRK instruction");
  } else {
    fault.how = abi::Termination::Killed;
  }
  proc::user_fault(fault);
}

}  // namespace pagoda::aarch64

namespace pagoda::arch {

/// This CPU's slot of aarch64_user_trap_sp, by the name the one-CPU code (lab 3's
/// set_kernel_stack()) reads and assigns.
constexpr ThisCpu<aarch64_user_trap_sp_of> aarch64_user_trap_sp{};

Result<void> user_mode_init(FormatSink& report) {
  using namespace aarch64;
  if (!cpu_has_pan()) return Error(Error::Unsupported, "this CPU has no PAN (ARMv8.1)");
  u64 sctlr = PAGODA_READ_SYSREG("sctlr_el1");
  sctlr &= ~(kSctlrUma | kSctlrNtwi | kSctlrNtwe | kSctlrSpan | kSctlrUci);
  PAGODA_WRITE_SYSREG("sctlr_el1", sctlr);
  PAGODA_WRITE_SYSREG("cntkctl_el1", PAGODA_READ_SYSREG("cntkctl_el1") | kCntkctlEl0Vcten);
  isb();
  set_pan(true);
  format_to(report, "svc entry at {:#x}, PAN on, EL0 traps: WFI/WFE, DAIF, cache maintenance; EL0 reads CNTVCT",
            reinterpret_cast<u64>(aarch64_svc_entry));
  return {};
}

namespace {

/// Fills @p frame to enter EL0 at @p entry (process-entry convention, every other register 0).
void fill_entry_frame(aarch64::TrapFrame* frame, const UserEntry& entry) {
  memset(frame, 0, sizeof *frame);
  frame->kind = TRAP_KIND_LOWER_SYNC;  // a frame from EL0: the return loads SP_EL0 from it
  // LAB 3 BEGIN the frame whose ERET enters EL0: where, on which stack, at which level, interrupts on
  // The process-entry convention: argc in x0, argv in x1 (user/lib's _start reads them).
  frame->x[0] = entry.argc;
  frame->x[1] = entry.argv;
  // The ERET loads PC from ELR_EL1 and PSTATE from SPSR_EL1: M[3:0] = EL0t makes it a return to
  // EL0 on SP_EL0 (the frame's sp), and D A I F clear let the timer interrupt the process.
  frame->sp = entry.sp;
  frame->elr = entry.pc;
  frame->spsr = aarch64::kSpsrEl0t;
  // LAB 3 SKELETON
  // (void)entry;
  // panic("lab 3: write fill_entry_frame() in arch/aarch64/user_mode.cpp (labs/03-process-roots/README.md)");
  // LAB 3 END
}

/// Writes below @p frame what aarch64_switch_context loads: x19..x28, x29 (zero) and x30, the
/// return address aarch64_trap_return; the stack pointer to switch to.
uptr push_switch_frame(aarch64::TrapFrame* frame) {
  constexpr usize kSaved = 12;
  auto* words = reinterpret_cast<u64*>(frame) - kSaved;
  for (usize i = 0; i < kSaved; ++i) words[i] = 0;
  words[kSaved - 1] = reinterpret_cast<u64>(aarch64_trap_return);
  return reinterpret_cast<uptr>(words);
}

aarch64::TrapFrame* top_frame(uptr stack_top) {
  return reinterpret_cast<aarch64::TrapFrame*>(stack_top - sizeof(aarch64::TrapFrame));
}

}  // namespace

uptr prepare_user_entry(uptr stack_top, const UserEntry& entry) {
  // The exception return path restores this frame and ERETs to EL0 (vectors.S, aarch64_trap_return).
  aarch64::TrapFrame* frame = top_frame(stack_top);
  fill_entry_frame(frame, entry);
  return push_switch_frame(frame);
}

uptr prepare_fork_return(uptr child_top, uptr parent_top) {
  // Every exception from EL0 lands at the top of the kernel stack (the vector entry loads SP_EL1
  // from aarch64_user_trap_sp), so the SVC's frame is the top one of the parent's stack. The child ERETs from a
  // copy of it: same ELR, SPSR, SP_EL0 and registers, x0 = 0.
  aarch64::TrapFrame* frame = top_frame(child_top);
  memcpy(frame, top_frame(parent_top), sizeof *frame);
  frame->x[0] = 0;
  return push_switch_frame(frame);
}

void restart_user_entry(uptr stack_top, const UserEntry& entry) {
  aarch64::TrapFrame* frame = top_frame(stack_top);
  const u64 esr = frame->esr;
  fill_entry_frame(frame, entry);
  frame->esr = esr;
}

void switch_context(uptr* save_sp, uptr load_sp) { aarch64_switch_context(save_sp, load_sp); }

// Unlike x86_64's TSS.RSP0, no register holds it: every vector entry for an exception from EL0
// loads SP_EL1 from aarch64_user_trap_sp (vectors.S), so that is the one place to set.
void set_kernel_stack(uptr top) {
  // LAB 3 BEGIN the stack that exceptions from EL0 land on
  // Every vector entry for an exception from EL0 loads SP_EL1 from aarch64_user_trap_sp before
  // it pushes its frame (vectors.S): the running process's kernel stack.
  aarch64_user_trap_sp = top;
  // LAB 3 SKELETON
  // (void)top;
  // panic("lab 3: write arch::set_kernel_stack() in arch/aarch64/user_mode.cpp (labs/03-process-roots/README.md)");
  // LAB 3 END
}

uptr kernel_stack() { return aarch64_user_trap_sp; }

void user_access_begin() { aarch64::set_pan(false); }

void user_access_end() { aarch64::set_pan(true); }

usize user_copy(void* dst, const void* src, usize n) { return aarch64_user_copy(dst, src, n); }

i64 user_string_copy(char* dst, const char* src, usize max) { return aarch64_user_string_copy(dst, src, max); }

}  // namespace pagoda::arch
