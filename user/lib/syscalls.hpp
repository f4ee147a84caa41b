/// @file user/lib/syscalls.hpp
/// @brief Typed wrappers of every system call in kernel/lib/abi.hpp, for user programs.
///
/// Each returns the kernel's result unchanged: >= 0 on success, a negated abi::Errno on
/// failure (test it with abi::is_error(), name it with abi::errno_name(abi::errno_of(r))).
/// The register convention is the ISA's (user/lib/arch/ISA/syscall_arch.hpp).
#pragma once

#include "lib/abi.hpp"
#include "lib/types.hpp"
#include "syscall_arch.hpp"

namespace pagoda::user {

/// A system call by number with up to six integer arguments: the escape hatch for tests that
/// want numbers or arguments no wrapper would pass.
inline i64 syscall_raw(u64 number, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0, u64 a4 = 0, u64 a5 = 0) {
  return arch::syscall6(number, a0, a1, a2, a3, a4, a5);
}

/// @cond internal
template <class T> inline u64 arg(T* pointer) { return u64(reinterpret_cast<uptr>(pointer)); }
inline i64 call(abi::Syscall n, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0) {
  return arch::syscall6(u64(n), a0, a1, a2, a3, 0, 0);
}
/// @endcond

/// Writes up to @p len bytes to @p fd (abi::kStdout or abi::kStderr); the count written.
inline i64 write(int fd, const void* buf, usize len) { return call(abi::Syscall::Write, u64(fd), arg(buf), len); }
/// Reads up to @p len bytes from @p fd (abi::kStdin); the count read, 0 at the end.
inline i64 read(int fd, void* buf, usize len) { return call(abi::Syscall::Read, u64(fd), arg(buf), len); }
/// Ends the process with @p code (if the kernel returned, the process traps instead).
[[noreturn]] void exit(int code);
/// The calling process's id.
inline i64 getpid() { return call(abi::Syscall::GetPid); }
/// Lets the next ready process run.
inline i64 yield() { return call(abi::Syscall::Yield); }
/// Sleeps for at least @p ticks timer ticks.
inline i64 sleep(u64 ticks) { return call(abi::Syscall::Sleep, ticks); }
/// Starts the embedded program @p name as a new process; its id. @p argv ends with nullptr.
inline i64 spawn(const char* name, const char* const* argv = nullptr) {
  return call(abi::Syscall::Spawn, arg(name), arg(argv));
}
/// Replaces this process's program; returns only on failure.
inline i64 exec(const char* name, const char* const* argv = nullptr) {
  return call(abi::Syscall::Exec, arg(name), arg(argv));
}
/// A copy of this process: the child's id in the parent, 0 in the child.
inline i64 fork() { return call(abi::Syscall::Fork); }
/// Waits for child @p pid (-1: any) to end; its id. @p info may be null.
inline i64 waitpid(i64 pid, abi::ExitInfo* info, u64 options = 0) {
  return call(abi::Syscall::Wait, u64(pid), arg(info), options);
}
/// Waits for any child to end; its id.
inline i64 wait(abi::ExitInfo* info) { return waitpid(-1, info, 0); }
/// Maps @p length bytes of zeroed memory with @p prot (abi::kProt*); its address.
inline i64 mmap(u64 addr, u64 length, u64 prot, u64 flags = 0) {
  return call(abi::Syscall::Mmap, addr, length, prot, flags);
}
/// Unmaps [addr, addr + length).
inline i64 munmap(u64 addr, u64 length) { return call(abi::Syscall::Munmap, addr, length); }
/// Changes the protection of [addr, addr + length).
inline i64 mprotect(u64 addr, u64 length, u64 prot) { return call(abi::Syscall::Mprotect, addr, length, prot); }
/// Sets the end of the heap (0 only asks); the break after the call.
inline i64 brk(u64 new_break) { return call(abi::Syscall::Brk, new_break); }
/// Moves the end of the heap by @p increment; the break before the call.
inline i64 sbrk(i64 increment) { return call(abi::Syscall::Sbrk, u64(increment)); }
/// Ends process @p pid (with abi::kKillTree, its descendants too): 0, or -ESRCH.
inline i64 kill(i64 pid, u64 flags = 0) { return call(abi::Syscall::Kill, u64(pid), flags); }
/// Makes @p pid the process the console's Ctrl-C ends (0: none); the previous one.
inline i64 foreground(i64 pid) { return call(abi::Syscall::Foreground, u64(pid)); }
/// The embedded programs' names, one a line, into @p out (as much as fits); the list's size.
inline i64 programs(char* out, usize size) { return call(abi::Syscall::Programs, arg(out), size); }
/// Fills @p out with facts about this process (a test call).
inline i64 proc_info(abi::ProcInfo* out) { return call(abi::Syscall::ProcInfo, arg(out), sizeof *out); }
/// Copies up to @p max of this process's VMAs into @p out; how many it has (a test call).
inline i64 vma_list(abi::VmaInfo* out, usize max) { return call(abi::Syscall::VmaList, arg(out), max); }
/// Sends the resident page at @p va out to swap now (with abi::kEvictKeep: writes it back and
/// keeps it); 0, or -errno (a test call, lab 7).
inline i64 evict(const void* va, u64 flags = 0) { return call(abi::Syscall::Evict, arg(va), flags); }
/// Fills @p out with the kernel's swap counters (a test call, lab 7).
inline i64 swap_info(abi::SwapInfo* out) { return call(abi::Syscall::SwapInfo, arg(out), sizeof *out); }

}  // namespace pagoda::user
