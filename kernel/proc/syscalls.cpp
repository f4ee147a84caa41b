// System-call dispatch and the calls of lab 3 (kernel/lib/abi.hpp says what each one takes).
//
// Every argument is checked before it is used: a number the kernel does not know returns
// -ENOSYS, a bad descriptor -EBADF, a pointer that is not mapped user memory of the caller
// -EFAULT, any other malformed argument -EINVAL. No argument can make the kernel panic, except
// the one call whose purpose is exactly that (kernel_recurse, with its confirmation word).
#include "core/arch.hpp"
#include "core/panic.hpp"
#include "lib/abi.hpp"
#include "mm/vm.hpp"
#include "proc/arch.hpp"
#include "proc/process.hpp"
#include "proc/programs.hpp"
#include "proc/scheduler.hpp"
#include "proc/temp_map_calls.hpp"
#include "proc/user_memory.hpp"

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

i64 sys_write(Process& p, u64 fd, u64 buf, u64 len) {
  if (fd != u64(abi::kStdout) && fd != u64(abi::kStderr)) return fail(Errno::BadFd);
  const usize n = usize(min<u64>(len, kMaxWrite));
  if (!in_user_half(buf, n)) return fail(Errno::Fault);
  char chunk[kCopyChunk];
  for (usize done = 0; done < n;) {
    const usize k = min(n - done, kCopyChunk);
    if (copy_from_user(p.space(), chunk, buf + done, k).is_error()) return fail(Errno::Fault);
    console_write(StringView(chunk, k));
    done += k;
  }
  return i64(n);
}

/// Reads console input: what is waiting, up to @p len bytes and the first newline; waits (a
/// tick at a time) while nothing is.
i64 sys_read(Process& p, u64 fd, u64 buf, u64 len) {
  if (fd != u64(abi::kStdin)) return fail(Errno::BadFd);
  const usize n = usize(min<u64>(len, kCopyChunk));
  if (n == 0) return 0;
  char got[kCopyChunk];
  // Proven writable before any input is taken (a bad buffer must not swallow a line): its own
  // bytes read and written back, both through the recovering copies.
  if (copy_from_user(p.space(), got, buf, n).is_error() || copy_to_user(p.space(), buf, got, n).is_error())
    return fail(Errno::Fault);
  usize k = 0;
  for (;;) {
    int c;
    while (k < n && (c = arch::console_read_byte()) >= 0) {
      got[k++] = char(c == '\r' ? '\n' : c);
      if (got[k - 1] == '\n') break;
    }
    if (k > 0) break;
    sleep(1);
  }
  if (copy_to_user(p.space(), buf, got, k).is_error()) return fail(Errno::Fault);
  return i64(k);
}

i64 sys_exit(u64 code) {
  const i64 value = i64(code);
  if (value < -2147483648ll || value > 2147483647ll) return fail(Errno::Inval);
  exit_current(abi::ExitInfo{.code = i32(value), .how = u32(abi::Termination::Exited), .address = 0});
}

i64 sys_sleep(u64 n) {
  if (n > kMaxSleepTicks) return fail(Errno::Inval);
  sleep(n);
  return 0;
}

i64 sys_proc_info(Process& p, u64 out, u64 size) {
  if (size > sizeof(abi::ProcInfo)) size = sizeof(abi::ProcInfo);
  const UserFrames frames = count_user_frames(p.space());
  const abi::ProcInfo info{.pid = p.pid,
                           .parent = 0,
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

i64 sys_kernel_recurse(u64 depth, u64 confirm) {
  if (confirm != abi::kKernelRecurseConfirm) return fail(Errno::Inval);
  return i64(recurse(depth) & 0x7fff'ffff'ffff'ffffull);
}

/// spawn(name, argv): a new process running the embedded program @p name_va with the
/// NULL-terminated argument list @p argv_va (none: argv[0] is the name). Every string and
/// pointer is read with the recovering copies; the new process is loaded while the caller's root
/// is live, so the loader writes its pages through temporary mappings (lab 4).
i64 sys_spawn(Process& p, u64 name_va, u64 argv_va) {
  char name[abi::kMaxProgramName + 1];
  const Result<usize> length = copy_string_from_user(p.space(), name, name_va, sizeof name);
  if (length.is_error()) return fail(length.error() == Error::Overflow ? Errno::NameTooLong : Errno::Fault);
  const EmbeddedProgram* program = find_program(StringView(name, length.value()));
  if (program == nullptr) return fail(Errno::NoEnt);
  char strings[abi::kMaxArgBytes];
  StringView args[abi::kMaxArgs];
  usize argc = 0, used = 0;
  if (argv_va == 0) {
    args[argc++] = program->name;
  } else {
    for (;; ++argc) {
      u64 pointer;
      if (copy_from_user(p.space(), &pointer, argv_va + argc * sizeof(u64), sizeof pointer).is_error())
        return fail(Errno::Fault);
      if (pointer == 0) break;
      if (argc == abi::kMaxArgs || used == sizeof strings) return fail(Errno::TooBig);
      const Result<usize> n = copy_string_from_user(p.space(), strings + used, pointer, sizeof strings - used);
      if (n.is_error()) return fail(n.error() == Error::Overflow ? Errno::TooBig : Errno::Fault);
      args[argc] = StringView(strings + used, n.value());
      used += n.value() + 1;
    }
  }
  const Result<Process*> made = create_process(program->name, program->image(), Span<const StringView>(args, argc));
  if (made.is_error()) return fail(made.error() == Error::NoMemory ? Errno::NoMem : Errno::Again);
  Process& child = *made.value();
  println("proc {} ({}): spawned by {}; root {:#x}, kernel stack [{:#x}, {:#x})", child.pid, child.name_view(), p.pid,
          child.space().root().value(), child.kstack.bottom().value(), child.kstack.top().value());
  return child.pid;
}

}  // namespace

i64 syscall(const SyscallArgs& call) {
  Process* p = current();
  if (p == nullptr) panic("a system call ({}) with no current process", call.number);
  ++p->syscalls;
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
    case abi::Syscall::KernelRecurse: return sys_kernel_recurse(a[0], a[1]);
    case abi::Syscall::TempFill: return sys_temp_fill(*p, a[0]);
    case abi::Syscall::TempTake: return sys_temp_take(*p, a[0], a[1], a[2]);
    case abi::Syscall::TempStress: return sys_temp_stress(*p, a[0], a[1], a[2], a[3]);
    default: return fail(Errno::NoSys);
  }
}

}  // namespace pagoda::proc
