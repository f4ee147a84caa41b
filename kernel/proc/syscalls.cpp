// System-call dispatch and the calls of lab 3 (kernel/lib/abi.hpp says what each one takes).
//
// Every argument is checked before it is used: a number the kernel does not know returns
// -ENOSYS, a bad descriptor -EBADF, a pointer that is not mapped user memory of the caller
// -EFAULT, any other malformed argument -EINVAL. No argument can make the kernel panic, except
// the one call whose purpose is exactly that (kernel_recurse, with its confirmation word).
#include "core/arch.hpp"
#include "core/lab.hpp"
#include "core/last_failure.hpp"
#include "core/panic.hpp"
#include "core/selftest.hpp"
#include "core/stop.hpp"
#include "dev/swap_disk.hpp"
#include "lib/abi.hpp"
#include "lib/facts.hpp"
#include "mm/vm.hpp"
#include "proc/arch.hpp"
#include "proc/memory_calls.hpp"
#include "proc/process.hpp"
#include "proc/programs.hpp"
#include "proc/run.hpp"
#include "proc/scheduler.hpp"
#include "proc/temp_map_calls.hpp"
#include "proc/terminal.hpp"
#include "proc/user_memory.hpp"

extern "C" {
/// The last memory call (mmap, munmap, mprotect, sbrk) the kernel refused, for the debugger
/// (fault-why's "checked:" line): syscalls.cpp noted().
char pagoda_last_refused_call[160];
}

namespace pagoda::proc {
namespace {

using abi::Errno;

constexpr i64 fail(Errno e) { return abi::error_result(e); }

/// Bytes copied from user memory at a time (a buffer on the kernel stack).
constexpr usize kCopyChunk = 256;
/// Most bytes one write() takes (16 chunks); a longer one writes this much and returns the count.
constexpr usize kMaxWrite = 16 * kCopyChunk;
/// Longest sleep (10 s of ticks): a longer one is EINVAL.
constexpr u64 kMaxSleepTicks = 1000;
/// Stack bytes each level of kernel_recurse takes, so that its overflow comes soon.
constexpr usize kRecurseFrame = 512;

// The handlers with buffers or loops stay out of line ([[gnu::noinline]]): inlined into dispatch()
// they would give every call, getpid's too, their stack frames and saved registers (measured with
// `./pagoda bench syscall`).
[[gnu::noinline]] i64 sys_write(Process& p, u64 fd, u64 buf, u64 len) {
  if (fd != u64(abi::kStdout) && fd != u64(abi::kStderr)) return fail(Errno::BadFd);
  const usize n = usize(min<u64>(len, kMaxWrite));
  if (!in_user_half(buf, n)) return fail(Errno::Fault);
  char chunk[kCopyChunk];
  for (usize done = 0; done < n;) {
    const usize k = min(n - done, kCopyChunk);
    if (copy_from_user(p.space(), chunk, buf + done, k).is_error()) return fail(Errno::Fault);
    console_write_from(p.pid, StringView(chunk, k));
    done += k;
  }
  return i64(n);
}

/// Reads console input: what is waiting, up to @p len bytes and the first newline; waits (a
/// tick at a time) while nothing is, holding the console's current line (its prompt and echo
/// stay whole under others' output: lib/console.hpp). A kill ends the wait (in sleep()).
[[gnu::noinline]] i64 sys_read(Process& p, u64 fd, u64 buf, u64 len) {
  if (fd != u64(abi::kStdin)) return fail(Errno::BadFd);
  const usize n = usize(min<u64>(len, kCopyChunk));
  if (n == 0) return 0;
  char got[kCopyChunk];
  // Proven writable before any input is taken (a bad buffer must not swallow a line): its own
  // bytes read and written back, both through the recovering copies.
  if (copy_from_user(p.space(), got, buf, n).is_error() || copy_to_user(p.space(), buf, got, n).is_error())
    return fail(Errno::Fault);
  terminal_poll();
  usize k = terminal_take(got, n);
  if (k == 0) {
    console_hold_line(p.pid);
    while (k == 0) {
      sleep(1);
      terminal_poll();
      k = terminal_take(got, n);
    }
    console_release_line(p.pid);
  }
  if (copy_to_user(p.space(), buf, got, k).is_error()) return fail(Errno::Fault);
  return i64(k);
}

[[gnu::noinline]] i64 sys_exit(u64 code) {
  const i64 value = i64(code);
  if (value < -2147483648ll || value > 2147483647ll) return fail(Errno::Inval);
  exit_current(abi::ExitInfo{.code = i32(value), .how = u32(abi::Termination::Exited), .address = 0});
}

[[gnu::noinline]] i64 sys_sleep(u64 n) {
  if (n > kMaxSleepTicks) return fail(Errno::Inval);
  sleep(n);
  return 0;
}

[[gnu::noinline]] i64 sys_proc_info(Process& p, u64 out, u64 size) {
  if (size > sizeof(abi::ProcInfo)) size = sizeof(abi::ProcInfo);
  const UserFrames frames = count_user_frames(p.space());
  const abi::ProcInfo info{.pid = p.pid,
                           .parent = p.parent,
                           .root = p.space().root().value(),
                           .kernel_stack_top = p.kstack.top().value(),
                           .user_frames = frames.pages,
                           .table_frames = frames.tables,
                           .frames_in_use = vm::frames().managed_frames() - vm::frames().free_frames(),
                           .frames_total = vm::frames().managed_frames(),
                           .ticks = ticks()};
  if (copy_to_user(p.space(), out, &info, usize(size)).is_error()) return fail(Errno::Fault);
  return i64(size);
}

/// evict(va, flags): lab 7's test call (Swapper::evict_page()).
[[gnu::noinline]] i64 sys_evict(Process& p, u64 va, u64 flags) {
  if ((flags & ~abi::kEvictKeep) != 0 || !is_aligned(va, kPageSize) || !in_user_half(va, kPageSize))
    return fail(Errno::Inval);
  if (!vm::swap_enabled() || !vm::swapper().has_disk()) return fail(Errno::NoSys);
  // LAB 7 BEGIN the page out (or written back and kept), and each refusal as its errno
  const Result<void> done = vm::evict_user_page(p.space(), VirtAddr(va), (flags & abi::kEvictKeep) != 0);
  if (done.ok()) return 0;
  if (done.error() == Error::NotFound) return fail(Errno::Fault);
  if (done.error() == Error::InvalidArgument) return fail(Errno::Again);  // its frame is pinned
  return fail(done.error() == Error::NoMemory ? Errno::NoMem : Errno::NoSys);
  // LAB 7 SKELETON
  // (void)p;
  // (void)lab_not_done("lab 7: write sys_evict() in kernel/proc/syscalls.cpp (labs/07-swap/README.md)");
  // return fail(Errno::NoSys);
  // LAB 7 END
}

/// swap_info(out, size): the swapper's own counts (lab 7), zeros while swap is off.
[[gnu::noinline]] i64 sys_swap_info(Process& p, u64 out, u64 size) {
  if (size > sizeof(abi::SwapInfo)) size = sizeof(abi::SwapInfo);
  abi::SwapInfo info{};
  if (vm::swap_enabled()) {
    // LAB 7 BEGIN the swapper's own counts, as the test call reports them
    Swapper& s = vm::swapper();
    const SwapCounters& c = s.counters();
    info = abi::SwapInfo{.frame_cap = s.table().cap(),
                         .resident = s.table().resident(),
                         .slots = s.slots().size(),
                         .slots_in_use = s.slots().in_use(),
                         .evictions = c.evictions,
                         .writes = c.writes,
                         .reads = c.reads,
                         .clean_evictions = c.clean_evictions,
                         .disk_requests = 0,  // (the disk driver's counts: below)
                         .disk_waited = 0};
    // LAB 7 SKELETON
    // (void)lab_not_done("lab 7: write sys_swap_info() in kernel/proc/syscalls.cpp (labs/07-swap/README.md)");
    // LAB 7 END
    // The disk driver's own times, given code: for `./pagoda bench swap`.
    const swap_disk::DiskTimes disk = swap_disk::times();
    info.disk_requests = disk.requests;
    info.disk_waited = disk.waited;
  }
  if (copy_to_user(p.space(), out, &info, usize(size)).is_error()) return fail(Errno::Fault);
  return i64(size);
}

/// Recurses @p depth levels, each with a frame of kRecurseFrame bytes: deep enough, it runs off
/// the bottom of the kernel stack into the guard page below it (kernel_stack.hpp).
[[gnu::noinline]] u64 recurse(u64 depth) {
  volatile u8 frame[kRecurseFrame];
  // The array's address escapes: the compiler must give it all kRecurseFrame bytes of the frame
  // (it keeps only the two bytes touched otherwise: 32-48 bytes a level, and a depth below ~340
  // returned without reaching the guard).
  asm volatile("" ::"r"(frame) : "memory");
  frame[0] = u8(depth);
  frame[kRecurseFrame - 1] = u8(depth >> 8);
  if (depth == 0) return frame[0];
  return recurse(depth - 1) + frame[kRecurseFrame - 1];
}

[[gnu::noinline]] i64 sys_kernel_recurse(u64 depth, u64 confirm) {
  if (confirm != abi::kKernelRecurseConfirm) return fail(Errno::Inval);
  return i64(recurse(depth) & 0x7fff'ffff'ffff'ffffull);
}

/// kernel_spin's two stops (the first argument of pagoda_grader_checkpoint(); the second is the
/// caller's pid): the grader reads the scheduler's switch count at both.
enum KernelSpinStop : u64 {
  kSpinStartStop = 0x4b53'01,
  kSpinEndStop = 0x4b53'02,
};
PAGODA_FACT(kernel_spin_start_stop, kSpinStartStop)
PAGODA_FACT(kernel_spin_end_stop, kSpinEndStop)

/// Kernel code with interrupts on while a process is current: ticks come from kernel mode, and
/// none may take the CPU away (only a tick from user mode ends a turn).
[[gnu::noinline]] i64 sys_kernel_spin(Process& p, u64 n, u64 confirm) {
  if (confirm != abi::kKernelSpinConfirm || n == 0 || n > abi::kKernelSpinMaxTicks) return fail(Errno::Inval);
  const u64 start = ticks();
  pagoda_grader_checkpoint(kSpinStartStop, p.pid, start);
  arch::interrupts_enable();
  while (ticks() - start < n) arch::wait_for_interrupt();
  arch::interrupts_disable();
  const u64 passed = ticks() - start;
  pagoda_grader_checkpoint(kSpinEndStop, p.pid, passed);
  return i64(passed);
}

/// The program and arguments of spawn and exec, read from user memory with the recovering
/// copies: the embedded program @p name_va names and the NULL-terminated argument list
/// @p argv_va (none: argv[0] is the name).
struct ProgramCall {
  const EmbeddedProgram* program = nullptr;
  char strings[abi::kMaxArgBytes];
  StringView args[abi::kMaxArgs];
  usize argc = 0;
};

/// 0, or the error to return.
i64 read_program_call(Process& p, u64 name_va, u64 argv_va, ProgramCall& out) {
  char name[abi::kMaxProgramName + 1];
  const Result<usize> length = copy_string_from_user(p.space(), name, name_va, sizeof name);
  if (length.is_error()) return fail(length.error() == Error::Overflow ? Errno::NameTooLong : Errno::Fault);
  out.program = find_program(StringView(name, length.value()));
  if (out.program == nullptr) return fail(Errno::NoEnt);
  usize used = 0;
  if (argv_va == 0) {
    out.args[out.argc++] = out.program->name;
    return 0;
  }
  for (;; ++out.argc) {
    u64 pointer;
    if (copy_from_user(p.space(), &pointer, argv_va + out.argc * sizeof(u64), sizeof pointer).is_error())
      return fail(Errno::Fault);
    if (pointer == 0) break;
    if (out.argc == abi::kMaxArgs || used == sizeof out.strings) return fail(Errno::TooBig);
    const Result<usize> n = copy_string_from_user(p.space(), out.strings + used, pointer, sizeof out.strings - used);
    if (n.is_error()) return fail(n.error() == Error::Overflow ? Errno::TooBig : Errno::Fault);
    out.args[out.argc] = StringView(out.strings + used, n.value());
    used += n.value() + 1;
  }
  return 0;
}

/// A spawn, exec or fork of @p p that failed with @p e for another reason than running out of
/// something (memory, process slots, kernel stack slots) or a lab not written yet: a kernel bug's
/// own words, printed and kept for fault-why (core/last_failure.hpp). The program gets its errno.
void report_call_failure(Process& p, const char* call, const Error& e) {
  if (e == Error::NoMemory || e == Error::Overflow || e == Error::NotImplemented) return;
  FailureLine line;
  format_to(line, "proc {} ({}): {} failed: {}", p.pid, p.name_view(), call, e);
}

/// True when @p made failed for want of memory or of a process or kernel-stack slot: what freeing
/// the ended orphans (reap_zombies()) may give back.
bool out_of_room(const Result<Process*>& made) {
  return made.is_error() && (made.error() == Error::NoMemory || made.error() == Error::Overflow);
}

/// spawn(name, argv): a new process running the embedded program @p name_va with the
/// NULL-terminated argument list @p argv_va (none: argv[0] is the name); the caller is its
/// parent. The new process is loaded while the caller's root is live, so the loader writes its
/// pages through temporary mappings (lab 4).
[[gnu::noinline]] i64 sys_spawn(Process& p, u64 name_va, u64 argv_va) {
  ProgramCall call;
  if (const i64 bad = read_program_call(p, name_va, argv_va, call); bad != 0) return bad;
  const auto create = [&] {
    return create_process(call.program->name, call.program->image(), Span<const StringView>(call.args, call.argc));
  };
  Result<Process*> made = create();
  if (out_of_room(made) && reap_zombies() > 0) made = create();  // ended orphans the idle loop has not freed yet
  if (made.is_error()) {
    report_call_failure(p, "spawn", made.error());
    return fail(made.error() == Error::NoMemory ? Errno::NoMem : Errno::Again);
  }
  Process& child = *made.value();
  child.parent = p.pid;
  if (lifecycle_log())
    println("proc {} ({}): spawned by {}; root {:#x}, kernel stack [{:#x}, {:#x})", child.pid, child.name_view(), p.pid,
            child.space().root().value(), child.kstack.bottom().value(), child.kstack.top().value());
  return child.pid;
}

/// exec(name, argv): the caller's address space replaced by the embedded program's (lab 6).
/// On success the call returns into the new program's entry (with argc as its result, which is
/// the first argument register on AArch64 and ignored on x86_64); on failure the old space is
/// intact and the error comes back.
[[PAGODA_STOP(sys_exec)]] i64 sys_exec(Process& p, u64 name_va, u64 argv_va) {
  ProgramCall call;
  if (const i64 bad = read_program_call(p, name_va, argv_va, call); bad != 0) return bad;
  const Result<arch::UserEntry> entry = exec_current(p, call.program->name, call.program->image(),
                                                     Span<const StringView>(call.args, call.argc));
  if (entry.is_error() && entry.error() == Error::NotImplemented) lab_todo(entry.error());
  if (entry.is_error()) {
    report_call_failure(p, "exec", entry.error());
    return fail(entry.error() == Error::NoMemory ? Errno::NoMem : Errno::NoExec);
  }
  // The new space must read the process's own record (the one exec copied the new regions into)
  // and be the one the fault handler is told is current: a record left on exec's stack, or an
  // old space, answers the new program's faults with whatever is there.
  if (p.space().regions() != &p.regions())
    panic("proc {} ({}): exec left the new space reading the record at {:p}, not the process's own record {:p}: "
          "after the commit the space must read p.regions() (space.set_regions()), not the loader's local record, "
          "which ends with exec_current()",
          p.pid, p.name_view(), static_cast<const void*>(p.space().regions()), static_cast<const void*>(&p.regions()));
  if (vm::current_space() != &p.space())
    panic("proc {} ({}): exec left the fault handler's current space at {:p}, not the process's new space {:p} "
          "(vm::set_current_space())",
          p.pid, p.name_view(), static_cast<const void*>(vm::current_space()), static_cast<const void*>(&p.space()));
  if (lifecycle_log()) println("proc {} ({}): exec; root {:#x}", p.pid, p.name_view(), p.space().root().value());
  return i64(entry.value().argc);
}

/// fork(): a copy of the caller (lab 6); the child's id here, 0 in the child.
[[PAGODA_STOP(sys_fork)]] i64 sys_fork(Process& p) {
  Result<Process*> made = fork_process(p);
  if (out_of_room(made) && reap_zombies() > 0) made = fork_process(p);  // as spawn
  if (made.is_error() && made.error() == Error::NotImplemented) lab_todo(made.error());
  if (made.is_error()) {
    report_call_failure(p, "fork", made.error());
    return fail(made.error() == Error::NoMemory ? Errno::NoMem : Errno::Again);
  }
  return made.value()->pid;
}

/// wait(pid, info, options) (lab 6).
[[gnu::noinline]] i64 sys_wait(Process& p, u64 pid_arg, u64 info_va, u64 options) {
  const i64 pid = i64(pid_arg);
  if (pid == 0 || pid < -1 || pid > i64(0xffff'ffff) || (options & ~abi::kWaitNoHang) != 0) return fail(Errno::Inval);
  // The status buffer is proven writable before anything is reaped (a bad pointer loses no child).
  abi::ExitInfo info{};
  if (info_va != 0 && copy_to_user(p.space(), info_va, &info, sizeof info).is_error()) return fail(Errno::Fault);
  const Result<u32> reaped = wait_for_child(p, pid, info, (options & abi::kWaitNoHang) != 0);
  if (reaped.is_error() && reaped.error() == Error::NotImplemented) lab_todo(reaped.error());
  if (reaped.is_error()) return fail(pid == -1 ? Errno::Child : Errno::Srch);
  if (reaped.value() != 0 && info_va != 0 && copy_to_user(p.space(), info_va, &info, sizeof info).is_error())
    return fail(Errno::Fault);
  return reaped.value();
}

/// kill(pid, flags): ends @p pid (and with kKillTree its descendants) as kill() does.
[[gnu::noinline]] i64 sys_kill(u64 pid_arg, u64 flags) {
  const i64 pid = i64(pid_arg);
  if (pid <= 0 || pid > i64(0xffff'ffff) || (flags & ~abi::kKillTree) != 0) return fail(Errno::Inval);
  if (kill(u32(pid), abi::Termination::Killed, (flags & abi::kKillTree) != 0).is_error()) return fail(Errno::Srch);
  return 0;
}

/// foreground(pid): the process Ctrl-C ends (0: none); the previous one.
[[gnu::noinline]] i64 sys_foreground(u64 pid_arg) {
  const i64 pid = i64(pid_arg);
  if (pid < 0 || pid > i64(0xffff'ffff)) return fail(Errno::Inval);
  if (pid != 0) {
    const Process* q = find_process(u32(pid));
    if (q == nullptr || q->state == State::Zombie) return fail(Errno::Srch);
  }
  return set_foreground(u32(pid));
}

/// programs(out, size): the embedded programs' names, one a line; the bytes the whole list takes.
[[gnu::noinline]] i64 sys_programs(Process& p, u64 out, u64 size) {
  usize total = 0;
  for (const EmbeddedProgram& program : embedded_programs()) {
    char line[abi::kMaxProgramName + 1];
    const usize n = program.name.size() + 1;
    for (usize i = 0; i + 1 < n; ++i) line[i] = program.name[i];
    line[n - 1] = '\n';
    if (total < size) {
      const usize k = usize(min<u64>(n, size - total));
      if (!in_user_half(out + total, k) || copy_to_user(p.space(), out + total, line, k).is_error())
        return fail(Errno::Fault);
    }
    total += n;
  }
  return i64(total);
}

/// @p result of memory call @p name of @p p with its @p count arguments @p args, passed on; a
/// refusal (an errno) is kept in pagoda_last_refused_call, not printed (programs are refused on
/// purpose all the time: lab 5's random mode makes hundreds), for fault-why's look at a stop
/// with nothing wrong: "proc 3 (vmas): mprotect(0x2000016000, 0x3000, 0x3) = -ENOMEM".
[[gnu::noinline]] i64 noted(Process& p, const char* name, const u64* args, usize count, i64 result) {
  if (!abi::is_error(result)) return result;
  BufferSink sink(pagoda_last_refused_call, sizeof pagoda_last_refused_call);
  format_to(sink, "proc {} ({}): {}(", p.pid, p.name_view(), name);
  for (usize i = 0; i < count; ++i) format_to(sink, "{}{:#x}", i == 0 ? "" : ", ", args[i]);
  format_to(sink, ") = -{}", abi::errno_name(abi::errno_of(result)));
  return result;
}

i64 dispatch(Process* p, const SyscallArgs& call) {
  const u64* a = call.args;
  switch (abi::Syscall(call.number)) {
    case abi::Syscall::Write: return sys_write(*p, a[0], a[1], a[2]);
    case abi::Syscall::Read: return sys_read(*p, a[0], a[1], a[2]);
    case abi::Syscall::Exit: return sys_exit(a[0]);
    case abi::Syscall::GetPid: return p->pid;
    case abi::Syscall::Yield: schedule(); return 0;
    case abi::Syscall::Sleep: return sys_sleep(a[0]);
    case abi::Syscall::ProcInfo: return sys_proc_info(*p, a[0], a[1]);
    case abi::Syscall::Spawn: return sys_spawn(*p, a[0], a[1]);
    case abi::Syscall::Exec: return sys_exec(*p, a[0], a[1]);
    case abi::Syscall::Fork: return sys_fork(*p);
    case abi::Syscall::Wait: return sys_wait(*p, a[0], a[1], a[2]);
    case abi::Syscall::KernelRecurse: return sys_kernel_recurse(a[0], a[1]);
    case abi::Syscall::KernelSpin: return sys_kernel_spin(*p, a[0], a[1]);
    case abi::Syscall::Mmap: return noted(*p, "mmap", a, 4, sys_mmap(*p, a[0], a[1], a[2], a[3]));
    case abi::Syscall::Munmap: return noted(*p, "munmap", a, 2, sys_munmap(*p, a[0], a[1]));
    case abi::Syscall::Mprotect: return noted(*p, "mprotect", a, 3, sys_mprotect(*p, a[0], a[1], a[2]));
    case abi::Syscall::Brk: return sys_brk(*p, a[0]);
    case abi::Syscall::Sbrk: return noted(*p, "sbrk", a, 1, sys_sbrk(*p, i64(a[0])));
    case abi::Syscall::VmaList: return sys_vma_list(*p, a[0], a[1]);
    case abi::Syscall::TempFill: return sys_temp_fill(*p, a[0]);
    case abi::Syscall::TempTake: return sys_temp_take(*p, a[0], a[1], a[2]);
    case abi::Syscall::TempStress: return sys_temp_stress(*p, a[0], a[1], a[2], a[3]);
    case abi::Syscall::Kill: return sys_kill(a[0], a[1]);
    case abi::Syscall::Foreground: return sys_foreground(a[0]);
    case abi::Syscall::Programs: return sys_programs(*p, a[0], a[1]);
    case abi::Syscall::Evict: return sys_evict(*p, a[0], a[1]);
    case abi::Syscall::SwapInfo: return sys_swap_info(*p, a[0], a[1]);
    default: return fail(Errno::NoSys);
  }
}

}  // namespace

namespace {
[[noreturn, gnu::cold, gnu::noinline]] void no_current_process(u64 number) {
  panic("a system call ({}) with no current process", number);
}
}  // namespace

[[PAGODA_STOP(syscall)]] i64 syscall(const SyscallArgs& call) {
  Process* p = current();
  if (p == nullptr) no_current_process(call.number);
  ++p->syscalls;
  const i64 result = dispatch(p, call);
  if (p->kill_pending) [[unlikely]]
    die_if_killed();  // on its way back to user mode (p is the caller: a switch in between came back to it)
  return result;
}

}  // namespace pagoda::proc
