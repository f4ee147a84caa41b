// The x86_64 side of kernel/proc/arch.hpp: ring 3, `syscall`, TSS.RSP0, SMEP/SMAP/UMIP, and
// the decoding of a fault taken in ring 3.
//
//   STAR   (MSR 0xC0000081)  63    48 47    32 31           0
//                            +-------+--------+--------------+
//                            |sysret | syscall|   (unused)   |
//                            | base  |   CS   |              |
//                            +-------+--------+--------------+
//          SYSCALL loads CS = STAR[47:32], SS = that + 8 (kernel code, kernel data);
//          SYSRETQ loads CS = STAR[63:48] + 16, SS = STAR[63:48] + 8, both with RPL 3
//          (so the GDT has user data just below user code: gdt.hpp, user_defs.h)
//   LSTAR  (MSR 0xC0000082)  where `syscall` jumps: x86_syscall_entry (switch.S)
//   SFMASK (MSR 0xC0000084)  RFLAGS bits `syscall` clears: IF (no interrupt before the kernel
//                            stack is loaded), TF, DF, NT, and AC (so SMAP holds in the kernel)
//   EFER.SCE (bit 0)         enables SYSCALL/SYSRET
//
//   CR4 bits                 SMEP (20): the kernel cannot execute a user page
//                            SMAP (21): the kernel cannot read or write a user page unless
//                                       RFLAGS.AC is set (STAC ... CLAC around a checked copy)
//                            UMIP (11): SGDT, SIDT, SLDT, SMSW, STR fault in ring 3
#include "arch/x86_64/cpu.hpp"
#include "arch/x86_64/gdt.hpp"
#include "arch/x86_64/trap_frame.hpp"
#include "arch/x86_64/user_defs.h"
#include "arch/x86_64/user_mode.hpp"
#include "core/cpu.hpp"
#include "core/panic.hpp"
#include "lib/facts.hpp"
#include "lib/string.hpp"
#include "mm/vm.hpp"
#include "proc/arch.hpp"
#include "proc/kernel_stack.hpp"
#include "proc/user_memory.hpp"

extern "C" char x86_syscall_entry[], x86_syscall_entry_cpu1[], x86_trap_return[];
extern "C" void x86_switch_context(pagoda::uptr* save_sp, pagoda::uptr load_sp);

pagoda::u8 x86_smap_enabled = 0;  // (user_mode.hpp)

namespace pagoda::x86 {

// The frame a process enters ring 3 from, for the grader (it reads each new process's at the top
// of its kernel stack before it runs): its size, where the return goes and at which privilege.
PAGODA_FACT(user_frame_size, sizeof(TrapFrame))
PAGODA_FACT(user_frame_pc, __builtin_offsetof(TrapFrame, rip))
PAGODA_FACT(user_frame_sp, __builtin_offsetof(TrapFrame, rsp))
PAGODA_FACT(user_frame_flags, __builtin_offsetof(TrapFrame, rflags))
PAGODA_FACT(user_frame_cs, __builtin_offsetof(TrapFrame, cs))
PAGODA_FACT(user_frame_ss, __builtin_offsetof(TrapFrame, ss))
PAGODA_FACT(user_frame_argc, __builtin_offsetof(TrapFrame, rdi))  // the process-entry convention
PAGODA_FACT(user_frame_argv, __builtin_offsetof(TrapFrame, rsi))
PAGODA_FACT(user_frame_result, __builtin_offsetof(TrapFrame, rax))  // a system call's result (fork's child: 0)

namespace {

constexpr u32 kMsrStar = 0xC0000081, kMsrLstar = 0xC0000082, kMsrSfmask = 0xC0000084;
constexpr u64 kEferSyscall = 1u << 0;
constexpr u64 kCr4Umip = 1u << 11, kCr4Smep = 1u << 20, kCr4Smap = 1u << 21;
constexpr u64 kRflagsTf = 1u << 8, kRflagsDf = 1u << 10, kRflagsNt = 1u << 14;
[[maybe_unused]] constexpr u64 kRflagsReserved = 1u << 1;  // always 1
/// CPUID leaf 7: EBX bit 7 SMEP, bit 20 SMAP; ECX bit 2 UMIP.
constexpr u32 kCpuidStructured = 7;
constexpr u32 kCpuidSmep = 1u << 7, kCpuidSmap = 1u << 20, kCpuidUmip = 1u << 2;

void write_cr4(u64 value) { asm volatile("mov %0, %%cr4" ::"r"(value) : "memory"); }

}  // namespace

// ---- Privileged instructions ----------------------------------------------------------------

const char* privileged_instruction(const u8* code, usize size) {
  usize i = 0;
  // Legacy prefixes (operand/address size, segment overrides, REP) and one REX prefix.
  while (i < size && (code[i] == 0x66 || code[i] == 0x67 || code[i] == 0xf2 || code[i] == 0xf3 || code[i] == 0x2e ||
                      code[i] == 0x3e || code[i] == 0x26 || code[i] == 0x36 || code[i] == 0x64 || code[i] == 0x65))
    ++i;
  if (i < size && (code[i] & 0xf0) == 0x40) ++i;
  if (i >= size) return nullptr;
  switch (code[i]) {
    case 0xf4: return "hlt";
    case 0xfa: return "cli";
    case 0xfb: return "sti";
    case 0xe4:
    case 0xe5:
    case 0xe6:
    case 0xe7:
    case 0xec:
    case 0xed:
    case 0xee:
    case 0xef: return "in/out";
    case 0x6c:
    case 0x6d:
    case 0x6e:
    case 0x6f: return "ins/outs";
    case 0x0f: break;
    default: return nullptr;
  }
  if (++i >= size) return nullptr;
  switch (code[i]) {
    case 0x00: return "sldt/str/lldt/ltr";
    case 0x01: return "lgdt/lidt/sgdt/sidt/smsw/lmsw/invlpg/swapgs";
    case 0x06: return "clts";
    case 0x08: return "invd";
    case 0x09: return "wbinvd";
    case 0x20:
    case 0x22: return "mov to/from a control register";
    case 0x21:
    case 0x23: return "mov to/from a debug register";
    case 0x30: return "wrmsr";
    case 0x32: return "rdmsr";
    case 0x33: return "rdpmc";
    case 0x35: return "sysexit";
    case 0x07: return "sysret";
    default: return nullptr;
  }
}

// ---- A fault in ring 3 ------------------------------------------------------------------------

void user_exception(const TrapFrame& f, const char* mnemonic, const char* name, Access access) {
  proc::UserFault fault;
  fault.mnemonic = mnemonic;
  fault.name = name;
  fault.vector = f.vector;
  fault.pc_label = "RIP";
  fault.pc = f.rip;
  BufferSink reason(fault.reason, sizeof fault.reason);
  switch (f.vector) {
    case 14: {  // #PF: the walk through the process's root says why
      fault.how = abi::Termination::PageFault;
      fault.address = read_cr2();
      fault.has_address = true;
      fault.access = access;
      explain_fault(reason, vm::walk_active(VirtAddr(fault.address)), access);
      break;
    }
    case 13: {  // #GP: a privileged instruction, or a non-canonical address (or a bad segment)
      u8 code[16] = {};
      AddressSpace* space = vm::current_space();
      usize n = sizeof code;
      // The instruction may end near the end of its page: read what is readable.
      while (n > 0 && (space == nullptr || proc::copy_from_user(*space, code, f.rip, n).is_error())) --n;
      if (const char* insn = privileged_instruction(code, n)) {
        fault.how = abi::Termination::PrivilegedInstruction;
        format_to(reason, "{}: a privileged instruction", insn);
      } else {
        fault.how = abi::Termination::ProtectionFault;
        format_to(reason, "a non-canonical address, or a segment the program may not use");
      }
      break;
    }
    case 6: fault.how = abi::Termination::IllegalInstruction; break;
    case 0:
    case 16:
    case 19: fault.how = abi::Termination::ArithmeticError; break;
    case 12:
    case 17:
      fault.how = abi::Termination::ProtectionFault;
      format_to(reason, "{}", f.vector == 12 ? "a non-canonical stack address" : "a misaligned access");
      break;
    default: fault.how = abi::Termination::Killed; break;
  }
  proc::user_fault(fault);
}

}  // namespace pagoda::x86

/// In user_copy.S: the instructions that may fault on a user address (each in the fix-up table).
extern "C" pagoda::usize x86_user_copy(void* dst, const void* src, pagoda::usize n);
extern "C" pagoda::i64 x86_user_string_copy(char* dst, const char* src, pagoda::usize max);

namespace pagoda::arch {

using x86::x86_syscall_kernel_rsp;  // this CPU's slot (user_mode.hpp)

Result<void> user_mode_init(FormatSink& report) {
  using namespace x86;
  wrmsr(kMsrEfer, rdmsr(kMsrEfer) | kEferSyscall);
  wrmsr(kMsrStar, (u64(X86_KERNEL_DATA_SELECTOR) << 48) | (u64(X86_KERNEL_CODE_SELECTOR) << 32));
  wrmsr(kMsrLstar, reinterpret_cast<u64>(x86_syscall_entry));  // the boot CPU's (the others': syscall_entry())
  wrmsr(kMsrSfmask, kRflagsIf | kRflagsTf | kRflagsDf | kRflagsNt | kRflagsAc);
  const CpuidResult features = cpuid(0).eax >= kCpuidStructured ? cpuid(kCpuidStructured) : CpuidResult{};
  u64 cr4 = read_cr4();
  const struct {
    bool present;
    u64 bit;
    const char* name;
  } guards[] = {{(features.ebx & kCpuidSmep) != 0, kCr4Smep, "SMEP"},
                {(features.ebx & kCpuidSmap) != 0, kCr4Smap, "SMAP"},
                {(features.ecx & kCpuidUmip) != 0, kCr4Umip, "UMIP"}};
  format_to(report, "syscall entry at {:#x}", reinterpret_cast<u64>(x86_syscall_entry));
  for (const auto& g : guards) {
    if (g.present) cr4 |= g.bit;
    format_to(report, ", {} {}", g.name, g.present ? "on" : "NOT AVAILABLE (this CPU lacks it)");
  }
  write_cr4(cr4);
  x86_smap_enabled = (cr4 & kCr4Smap) != 0;
  return {};
}

namespace {

/// Fills @p frame to enter ring 3 at @p entry (process-entry convention, every other register 0).
void fill_entry_frame(x86::TrapFrame* frame, const UserEntry& entry) {
  memset(frame, 0, sizeof *frame);
  // LAB 3 BEGIN the frame whose IRETQ enters ring 3: where, on which stack, at which privilege, interrupts on
  // The process-entry convention: argc in RDI, argv in RSI (user/lib's _start reads them).
  frame->rdi = entry.argc;
  frame->rsi = entry.argv;
  // IRETQ pops RIP, CS, RFLAGS, RSP, SS: the selectors' RPL 3 makes it a return to ring 3, and
  // RFLAGS.IF lets the timer interrupt the process (no IF: it runs until it makes a call).
  frame->rip = entry.pc;
  frame->cs = X86_USER_CODE_SELECTOR;
  frame->rflags = x86::kRflagsIf | x86::kRflagsReserved;
  frame->rsp = entry.sp;
  frame->ss = X86_USER_DATA_SELECTOR;
  // LAB 3 SKELETON
  // (void)entry;
  // panic("lab 3: write fill_entry_frame() in arch/x86_64/user_mode.cpp (labs/03-process-roots/README.md)");
  // LAB 3 END
}

/// Writes below @p frame what x86_switch_context pops: RBP RBX R12-R15 (zero) and the return
/// address x86_trap_return; the stack pointer to switch to.
uptr push_switch_frame(x86::TrapFrame* frame) {
  constexpr usize kSaved = 6;
  auto* words = reinterpret_cast<u64*>(frame) - (kSaved + 1);
  for (usize i = 0; i < kSaved; ++i) words[i] = 0;
  words[kSaved] = reinterpret_cast<u64>(x86_trap_return);
  return reinterpret_cast<uptr>(words);
}

x86::TrapFrame* top_frame(uptr stack_top) {
  return reinterpret_cast<x86::TrapFrame*>(stack_top - sizeof(x86::TrapFrame));
}

}  // namespace

uptr prepare_user_entry(uptr stack_top, const UserEntry& entry) {
  // The trap exit path pops this frame and IRETQs into ring 3 (vectors.S, x86_trap_return).
  x86::TrapFrame* frame = top_frame(stack_top);
  fill_entry_frame(frame, entry);
  return push_switch_frame(frame);
}

uptr prepare_fork_return(uptr child_top, uptr parent_top) {
  // The parent's frame was built by x86_syscall_entry (switch.S) at the top of its kernel
  // stack; the child leaves by x86_trap_return's IRETQ instead of SYSRETQ, which restores the
  // same RIP, RFLAGS, RSP (and RCX, R11 as `syscall` left them).
  x86::TrapFrame* frame = top_frame(child_top);
  memcpy(frame, top_frame(parent_top), sizeof *frame);
  frame->rax = 0;
  return push_switch_frame(frame);
}

void restart_user_entry(uptr stack_top, const UserEntry& entry) {
  x86::TrapFrame* frame = top_frame(stack_top);
  const u64 vector = frame->vector;
  fill_entry_frame(frame, entry);
  frame->vector = vector;
}

void switch_context(uptr* save_sp, uptr load_sp) { x86_switch_context(save_sp, load_sp); }

void set_kernel_stack(uptr top) {
  // LAB 3 BEGIN the stack that traps and system calls from ring 3 land on
  // Two places: an interrupt or exception from ring 3 loads RSP from TSS.RSP0 (the CPU does);
  // `syscall` loads nothing, and x86_syscall_entry (switch.S) loads x86_syscall_kernel_rsp.
  x86::set_tss_rsp0(top);
  x86_syscall_kernel_rsp = top;
  // LAB 3 SKELETON
  // (void)top;
  // panic("lab 3: write arch::set_kernel_stack() in arch/x86_64/user_mode.cpp (labs/03-process-roots/README.md)");
  // LAB 3 END
}

uptr kernel_stack() { return x86::tss_rsp0(); }

void user_access_begin() {
  if (x86_smap_enabled) asm volatile("stac" ::: "memory");
}

void user_access_end() {
  if (x86_smap_enabled) asm volatile("clac" ::: "memory");
}

usize user_copy(void* dst, const void* src, usize n) { return x86_user_copy(dst, src, n); }

i64 user_string_copy(char* dst, const char* src, usize max) { return x86_user_string_copy(dst, src, max); }

}  // namespace pagoda::arch

/// Called by x86_syscall_entry (switch.S) with the frame it built, while this is the only CPU
/// (x86_syscall_handler; with two, x86_syscall_locking calls it under the kernel lock); the
/// result goes back in RAX.
extern "C" [[gnu::noinline]] void x86_syscall(pagoda::x86::TrapFrame* frame) {
  // The entry pushed the frame on the stack it loaded from x86_syscall_kernel_rsp: the calling
  // process's own kernel stack, or the switch to it went wrong.
  pagoda::proc::check_user_trap_frame(reinterpret_cast<pagoda::uptr>(frame), "the system-call stack",
                                      pagoda::x86::x86_syscall_kernel_rsp);
  // LAB 3 BEGIN the system-call ABI: the number and arguments from the frame, the result into it
  // kernel/lib/abi.hpp: the number in RAX, the arguments in RDI RSI RDX R10 R8 R9 (R10, not
  // RCX: `syscall` overwrote RCX with the return address); the result back in RAX.
  const pagoda::proc::SyscallArgs call{frame->rax,
                                       {frame->rdi, frame->rsi, frame->rdx, frame->r10, frame->r8, frame->r9}};
  frame->rax = pagoda::u64(pagoda::proc::syscall(call));
  // LAB 3 SKELETON
  // pagoda::panic("lab 3: write x86_syscall() in arch/x86_64/user_mode.cpp (labs/03-process-roots/README.md): system call {}", frame->rax);
  // LAB 3 END
}

/// x86_syscall with two CPUs: a system call is kernel work (core/cpu.hpp); the lock is let go
/// before SYSRETQ (the other ways back to ring 3: x86_trap_return).
extern "C" void x86_syscall_locking(pagoda::x86::TrapFrame* frame) {
  (void)pagoda::kernel_lock_enter();
  x86_syscall(frame);
  pagoda::kernel_lock_leave();
}

void (*x86_syscall_handler)(pagoda::x86::TrapFrame*) = x86_syscall;  // (user_mode.hpp)

void pagoda::x86::syscalls_take_kernel_lock() { x86_syscall_handler = x86_syscall_locking; }
