/// @file abi.hpp
/// @brief The user-space ABI: system-call numbers, error numbers, flags and the structures
///        system calls exchange. One header, included by the kernel and by user/lib alike.
///
/// Everything here is a fact both sides must agree on, so it is written once. It is plain data
/// (fixed-width integers, no pointers in structures) so that its layout is the same on every
/// ISA; the static_asserts below pin each structure's size and field offsets.
///
/// ## Calling convention (the register half lives in user/lib/arch/ISA/syscall_arch.hpp)
///
///     ISA       instruction   number   arguments 0..5             result
///     x86_64    syscall       rax      rdi rsi rdx r10 r8 r9      rax   (rcx, r11 clobbered)
///     AArch64   svc #0        x8       x0  x1  x2  x3  x4  x5     x0
///
/// A result is an i64: a value >= 0 is success (a count, an id, an address); a value in
/// [-kMaxErrno, -1] is the negation of an Errno. An unknown number returns -Errno::NoSys.
///
/// ## Process entry
///
/// A new process starts at its ELF entry point with the first argument register (rdi / x0)
/// holding argc and the second (rsi / x1) pointing at argv: argc pointers to NUL-terminated
/// strings followed by a null pointer, all on the user stack. The stack pointer is 16-byte
/// aligned; every other general-purpose register is zero. The programs the kernel starts from
/// its command line (`run=NAME,...`) get argv[0] = NAME and, when the boot has a token, an
/// argument `token=VALUE` (kTokenArgPrefix) so that they can print proofs.
#pragma once

#include "lib/string_view.hpp"
#include "lib/types.hpp"

namespace pagoda::abi {

/// System-call numbers. 0 is never a call (a zeroed register gets NoSys). Numbers up to
/// kSyscallCount - 1 are reserved; the test calls (for the grader's programs) start at
/// kFirstTestSyscall. Each line gives the arguments in register order and the result.
enum class Syscall : u64 {
  // ---- processes and I/O (lab 3) ----
  Write = 1,   ///< (int fd, const void* buf, usize len) -> bytes written; fd 1 or 2
  Read = 2,    ///< (int fd, void* buf, usize len) -> bytes read, 0 at end of input; fd 0
  Exit = 3,    ///< (i32 code) -> does not return
  GetPid = 4,  ///< () -> the caller's process id (> 0)
  Yield = 5,   ///< () -> 0, after giving the CPU to the next ready process
  Sleep = 6,   ///< (u64 ticks) -> 0, after at least @p ticks timer ticks
  // ---- program loading and process life (labs 4 and 6) ----
  Spawn = 7,  ///< (const char* name, const char* const* argv) -> child id; a new process
              ///< running the embedded program @p name; argv may be null (then {name})
  Exec = 8,   ///< (const char* name, const char* const* argv) -> no return on success; on
              ///< error the caller's address space is intact
  Fork = 9,   ///< () -> child id in the parent, 0 in the child
  Wait = 10,  ///< (i64 pid, ExitInfo* info, u64 options) -> id of the reaped child; pid -1
              ///< waits for any child; info may be null; with kWaitNoHang 0 if none exited
  // ---- memory (lab 5) ----
  Mmap = 11,      ///< (u64 addr, u64 length, u64 prot, u64 flags) -> address of the mapping;
                  ///< anonymous, zero-filled; addr is a hint unless flags has kMapFixed*
  Munmap = 12,    ///< (u64 addr, u64 length) -> 0; page-aligned, may cover holes
  Mprotect = 13,  ///< (u64 addr, u64 length, u64 prot) -> 0; the whole range must be mapped
  Brk = 14,       ///< (u64 new_break) -> the break after the call; 0 only queries it
  Sbrk = 15,      ///< (i64 increment) -> the break before the call
  // ---- the console and its programs (the shell) ----
  Kill = 16,        ///< (i64 pid, u64 flags) -> 0: ends process @p pid (with kKillTree, every
                    ///< descendant too) through the exit path, at its next return to user mode
                    ///< or when it sleeps or waits; wait() reports Termination::Killed. ESRCH: no
                    ///< such process (or already ended); EINVAL: pid <= 0, unknown flags
  Foreground = 17,  ///< (i64 pid) -> the previous foreground process (0: none): the process
                    ///< that kConsoleInterrupt typed on the console ends, with its descendants
                    ///< (Termination::Interrupted); 0 clears it. ESRCH: no such process
  Programs = 18,    ///< (char* out, usize size) -> bytes the whole list takes: the embedded
                    ///< programs' names, each followed by '\n'; as much as fits goes to @p out
  // 19 .. 63: reserved for general calls to come.

  // ---- test calls: reports for the grader's programs ----
  ProcInfo = 64,       ///< (ProcInfo* out, usize size) -> bytes written (min(size, sizeof))
  VmaList = 65,        ///< (VmaInfo* out, usize max_count) -> number of VMAs (may exceed max)
  KernelRecurse = 66,  ///< (u64 depth, u64 confirm) -> recurses @p depth levels in the kernel,
                       ///< overflowing its kernel stack on purpose when deep enough (a kernel
                       ///< panic, by design); EINVAL unless confirm is kKernelRecurseConfirm
  TempFill = 67,       ///< (u64 seed) -> a handle (>= 0) of a frame above the kernel's window,
                       ///< filled through a temporary mapping with temp_map_pattern(seed, i) in
                       ///< word i while the caller's root is live; ENOMEM when there is no such
                       ///< frame or no temporary mapping (lab 4 not done); at most kTempFrames
  TempTake = 68,       ///< (u64 handle, void* out, usize size) -> bytes copied (at most a page):
                       ///< the frame of @p handle, read through a temporary mapping while the
                       ///< caller's root is live, then freed; EINVAL for a handle not held
  TempStress = 69,     ///< (u64 seed, u64 maps, u64 flags, TempStressReport* out) -> 0: @p maps
                       ///< temporary mappings (nested, timer interrupts on, see the report);
                       ///< with kTempStressBare only bare map+unmap pairs (a benchmark)
  KernelSpin = 70,     ///< (u64 ticks, u64 confirm) -> the ticks that passed: waits in the kernel,
                       ///< interrupts on, until @p ticks (1 .. kKernelSpinMaxTicks) timer ticks
                       ///< have passed (lab 3: a tick that interrupts kernel code never switches);
                       ///< EINVAL unless confirm is kKernelSpinConfirm
  Evict = 71,          ///< (u64 va, u64 flags) -> 0: the resident user page at @p va goes out to
                       ///< swap now, with every other mapping of its frame (lab 7); with
                       ///< kEvictKeep it is only written back and stays, clean; a page out
                       ///< already is left as it is (0). EINVAL: @p va not
                       ///< page aligned or not in the user half, unknown flags; EFAULT: no
                       ///< resident user page there; EAGAIN: its frame is pinned; ENOMEM: the
                       ///< swap disk is full; ENOSYS: no swap disk (swap is off)
  SwapInfo = 72,       ///< (SwapInfo* out, usize size) -> bytes written (min(size, sizeof)): the
                       ///< kernel's own swap counters (lab 7), all 0 while swap is off
  // 73 .. kSyscallCount - 1: reserved for test calls to come.
};

/// Evict flag: write the page back to swap and keep it mapped, clean (it is not evicted).
inline constexpr u64 kEvictKeep = 1;

/// The second argument kernel_recurse needs, so that no random call (a fuzzer's) can crash the
/// kernel through it by chance.
inline constexpr u64 kKernelRecurseConfirm = 0x5245'4355'5253'4521ull;  // "!ESRUCER"

/// The second argument kernel_spin needs (a fuzzer's random call must not stall it), and the
/// most ticks it waits.
inline constexpr u64 kKernelSpinConfirm = 0x4e49'5053'4c4e'524bull;  // "KRNLSPIN"
inline constexpr u64 kKernelSpinMaxTicks = 64;

/// Frames TempFill may hold at once (machine-wide).
inline constexpr u64 kTempFrames = 4;
/// Most maps one TempStress call makes.
inline constexpr u64 kTempStressMaxMaps = 1'000'000;
/// TempStress flag: bare map+unmap pairs, nothing read or checked, interrupts off.
inline constexpr u64 kTempStressBare = 1;
/// Frames the stress test rotates through (each filled with its own pattern).
inline constexpr u64 kTempStressFrames = 4;

/// Word @p index of the pattern TempFill and TempStress write into a frame for @p seed: a
/// mixing function (splitmix64's finaliser) of both, so that every word of every frame differs
/// and a read through a stale translation shows. The grader's twin: grade/test_lab4.py.
constexpr u64 temp_map_pattern(u64 seed, u64 index) {
  u64 z = seed + (index + 1) * 0x9e37'79b9'7f4a'7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58'476d'1ce4'e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d0'49bb'1331'11ebull;
  return z ^ (z >> 31);
}

/// Word @p word of page @p page (counted from the start of the program's region) after the
/// page's @p version-th write, in the memory of lab 7's swap programs (overcommit, swapfork,
/// swapbuf) for @p seed, the program's proof of its tag: the grader's twin computes what every
/// page must hold, in RAM or in its swap slot. Every word of every page and version differs.
constexpr u64 swap_pattern(u64 seed, u64 page, u64 word, u64 version) {
  return temp_map_pattern(seed ^ (version * 0xd6e8'feb8'6659'fd93ull), (page << 16) | word);
}

/// The first test-call number.
inline constexpr u64 kFirstTestSyscall = 64;
/// Every valid number is below this (the size of a dispatch table).
inline constexpr u64 kSyscallCount = 128;

/// The name of a system call ("write"), or nullptr for a number that is not one.
constexpr const char* syscall_name(u64 number) {
  switch (Syscall(number)) {
    case Syscall::Write: return "write";
    case Syscall::Read: return "read";
    case Syscall::Exit: return "exit";
    case Syscall::GetPid: return "getpid";
    case Syscall::Yield: return "yield";
    case Syscall::Sleep: return "sleep";
    case Syscall::Spawn: return "spawn";
    case Syscall::Exec: return "exec";
    case Syscall::Fork: return "fork";
    case Syscall::Wait: return "wait";
    case Syscall::Mmap: return "mmap";
    case Syscall::Munmap: return "munmap";
    case Syscall::Mprotect: return "mprotect";
    case Syscall::Brk: return "brk";
    case Syscall::Sbrk: return "sbrk";
    case Syscall::Kill: return "kill";
    case Syscall::Foreground: return "foreground";
    case Syscall::Programs: return "programs";
    case Syscall::ProcInfo: return "proc_info";
    case Syscall::VmaList: return "vma_list";
    case Syscall::KernelRecurse: return "kernel_recurse";
    case Syscall::TempFill: return "temp_fill";
    case Syscall::TempTake: return "temp_take";
    case Syscall::TempStress: return "temp_stress";
    case Syscall::KernelSpin: return "kernel_spin";
    case Syscall::Evict: return "evict";
    case Syscall::SwapInfo: return "swap_info";
  }
  return nullptr;
}

/// Error numbers: a failed call returns the negation of one of these. The values are Linux's,
/// so that they look familiar; the set is Pagoda's.
enum class Errno : i32 {
  Perm = 1,          ///< EPERM: not permitted
  NoEnt = 2,         ///< ENOENT: no embedded program by that name
  Srch = 3,          ///< ESRCH: no such process
  TooBig = 7,        ///< E2BIG: argument list longer than kMaxArgs / kMaxArgBytes
  NoExec = 8,        ///< ENOEXEC: the program's ELF image was rejected
  BadFd = 9,         ///< EBADF: not an open file descriptor
  Child = 10,        ///< ECHILD: no child to wait for
  Again = 11,        ///< EAGAIN: out of processes or kernel stacks; try again later
  NoMem = 12,        ///< ENOMEM: out of memory, or (munmap, mprotect) a range not mapped
  Access = 13,       ///< EACCES: permission denied (e.g. PROT_EXEC with PROT_WRITE)
  Fault = 14,        ///< EFAULT: a bad user pointer
  Exist = 17,        ///< EEXIST: overlaps an existing mapping (kMapFixedNoReplace)
  Inval = 22,        ///< EINVAL: a malformed argument (misaligned, zero length, overflow, ...)
  NameTooLong = 36,  ///< ENAMETOOLONG: a program name longer than kMaxProgramName
  NoSys = 38,        ///< ENOSYS: no such system call
};

/// Results in [-kMaxErrno, -1] are errors.
inline constexpr i64 kMaxErrno = 4095;

/// The result a failed call returns for @p e.
constexpr i64 error_result(Errno e) { return -i64(e); }
/// True when the result @p r of a system call reports an error.
constexpr bool is_error(i64 r) { return r < 0 && r >= -kMaxErrno; }
/// The error of a result for which is_error() holds.
constexpr Errno errno_of(i64 r) { return Errno(i32(-r)); }

/// The conventional name of an error ("EFAULT"), or "E?" for a number that is not one.
constexpr const char* errno_name(Errno e) {
  switch (e) {
    case Errno::Perm: return "EPERM";
    case Errno::NoEnt: return "ENOENT";
    case Errno::Srch: return "ESRCH";
    case Errno::TooBig: return "E2BIG";
    case Errno::NoExec: return "ENOEXEC";
    case Errno::BadFd: return "EBADF";
    case Errno::Child: return "ECHILD";
    case Errno::Again: return "EAGAIN";
    case Errno::NoMem: return "ENOMEM";
    case Errno::Access: return "EACCES";
    case Errno::Fault: return "EFAULT";
    case Errno::Exist: return "EEXIST";
    case Errno::Inval: return "EINVAL";
    case Errno::NameTooLong: return "ENAMETOOLONG";
    case Errno::NoSys: return "ENOSYS";
  }
  return "E?";
}

// ---- file descriptors --------------------------------------------------------------------------

inline constexpr int kStdin = 0;   ///< the console, for reading
inline constexpr int kStdout = 1;  ///< the console
inline constexpr int kStderr = 2;  ///< the console too (the grader may tell them apart later)

// ---- mmap and mprotect -------------------------------------------------------------------------

inline constexpr u64 kProtNone = 0;   ///< no access (a reserved range)
inline constexpr u64 kProtRead = 1;   ///< readable
inline constexpr u64 kProtWrite = 2;  ///< writable
inline constexpr u64 kProtExec = 4;   ///< executable (never together with kProtWrite: W^X)
/// Every valid protection bit.
inline constexpr u64 kProtMask = kProtRead | kProtWrite | kProtExec;

/// mmap at exactly addr, replacing whatever was mapped there.
inline constexpr u64 kMapFixed = 1;
/// mmap at exactly addr, failing with Exist if anything is mapped there.
inline constexpr u64 kMapFixedNoReplace = 2;
/// Every valid mmap flag.
inline constexpr u64 kMapMask = kMapFixed | kMapFixedNoReplace;

// ---- processes ---------------------------------------------------------------------------------

/// Wait option: return 0 at once instead of blocking when no child has exited.
inline constexpr u64 kWaitNoHang = 1;

/// Kill flag: the process and every process descending from it.
inline constexpr u64 kKillTree = 1;

/// The console's interrupt character (Ctrl-C). With a foreground process it ends that process
/// and its descendants (Foreground); with none, a reader gets it as an ordinary byte.
inline constexpr char kConsoleInterrupt = 0x03;

/// Longest program name, without its NUL.
inline constexpr usize kMaxProgramName = 31;
/// Most arguments spawn and exec accept (argv[0] included).
inline constexpr usize kMaxArgs = 16;
/// Most bytes of argument strings (NULs included) spawn and exec accept.
inline constexpr usize kMaxArgBytes = 1024;
/// The argument that carries the boot token to the programs started from the command line.
inline constexpr StringView kTokenArgPrefix = "token=";

/// How a process ended.
enum class Termination : u32 {
  Exited = 0,                 ///< it called exit(code)
  PageFault = 1,              ///< an access its address space does not allow (address set)
  ProtectionFault = 2,        ///< a general protection fault (e.g. a non-canonical address)
  IllegalInstruction = 3,     ///< an instruction the CPU does not define
  PrivilegedInstruction = 4,  ///< an instruction user mode may not execute (hlt, mov cr3, ...)
  ArithmeticError = 5,        ///< division by zero and the like
  StackLimit = 6,             ///< the stack grew past its limit (address set)
  Killed = 7,                 ///< ended by the kernel for another reason, or by kill()
  Interrupted = 8,            ///< the console's interrupt character (Ctrl-C) ended it
};

/// The name of a Termination ("page fault").
constexpr const char* termination_name(Termination t) {
  switch (t) {
    case Termination::Exited: return "exited";
    case Termination::PageFault: return "page fault";
    case Termination::ProtectionFault: return "protection fault";
    case Termination::IllegalInstruction: return "illegal instruction";
    case Termination::PrivilegedInstruction: return "privileged instruction";
    case Termination::ArithmeticError: return "arithmetic error";
    case Termination::StackLimit: return "stack limit";
    case Termination::Killed: return "killed";
    case Termination::Interrupted: return "interrupted";
  }
  return "unknown";
}

/// What wait() reports about a reaped child.
struct ExitInfo {
  i32 code;     ///< the exit code (Termination::Exited only)
  u32 how;      ///< a Termination
  u64 address;  ///< the faulting address, when the termination has one (else 0)
};

/// What the ProcInfo test call reports about the calling process and the machine.
struct ProcInfo {
  u64 pid;               ///< the caller's id
  u64 parent;            ///< its parent's id, 0 for none
  u64 root;              ///< physical address of its page-table root (what CR3 / TTBR0 hold)
  u64 kernel_stack_top;  ///< virtual address of the top of its kernel stack
  u64 user_frames;       ///< frames mapped in its user half (pages, not tables)
  u64 table_frames;      ///< page-table frames of its user half
  u64 frames_in_use;     ///< frames allocated in the whole machine
  u64 frames_total;      ///< frames the frame allocator manages
  u64 ticks;             ///< timer ticks since boot
};

/// What the SwapInfo test call reports: the kernel's own counts (lab 7). The grader believes
/// none of it (it reads the disk, the tables and the frame table itself); programs print it.
struct SwapInfo {
  u64 frame_cap;        ///< resident user frames allowed (userframes=; 0: no cap)
  u64 resident;         ///< user frames resident now
  u64 slots;            ///< slots of the swap disk (0: none)
  u64 slots_in_use;     ///< slots holding a page
  u64 evictions;        ///< frames evicted since boot
  u64 writes;           ///< slots written
  u64 reads;            ///< slots read (swap-ins)
  u64 clean_evictions;  ///< evictions that wrote nothing (the slot held the page already)
  u64 disk_requests;    ///< requests the swap disk completed (its driver's count)
  u64 disk_waited;      ///< cycle-counter counts spent waiting for them (the driver's; see swapbench)
};
static_assert(sizeof(SwapInfo) == 10 * 8);

/// The kind of a memory region, as VmaList reports it (the kernel's VmaKind is this type).
enum class MemoryKind : u32 {
  Anonymous = 0,  ///< zero-filled memory from mmap
  Image = 1,      ///< a program image segment, filled from its ELF file (zeros past its end)
  Stack = 2,      ///< the user stack (grows down on demand)
  Heap = 3,       ///< the brk/sbrk heap
};

/// The name of a MemoryKind ("image").
constexpr const char* memory_kind_name(MemoryKind k) {
  switch (k) {
    case MemoryKind::Anonymous: return "anonymous";
    case MemoryKind::Image: return "image";
    case MemoryKind::Stack: return "stack";
    case MemoryKind::Heap: return "heap";
  }
  return "unknown";
}

/// One region as the VmaList test call reports it.
struct VmaInfo {
  u64 start;   ///< first address
  u64 end;     ///< one past the last address
  u32 prot;    ///< kProt* bits
  u32 kind;    ///< a MemoryKind
  u64 offset;  ///< file offset of start (MemoryKind::Image), else 0
};

/// What one TempStress call did. Round r (of maps / 2) maps frame a = r % kTempStressFrames,
/// and inside it frame b = (3r + 1) % kTempStressFrames (never a), reads word
/// j = temp_map_pattern(seed, r) % 512 of a and word j ^ 1 of b, releases b and reads word j of
/// a again. Frame k holds temp_map_pattern(seed + k, i) in word i. checksum is the sum, mod
/// 2^64, of every value read in the rounds, in order: x * 3 + y + x' (x, y, x' the three reads).
struct TempStressReport {
  u64 maps;                       ///< temporary mappings made by the call (the rounds' and the fills')
  u64 checksum;                   ///< of the rounds' reads, as above
  u64 mismatches;                 ///< reads (rounds' and interrupts') that did not hold the pattern
  u64 irq_maps;                   ///< temporary mappings made by timer interrupts during the call,
                                  ///< nested over the call's own
  u64 max_depth;                  ///< the deepest the slot stack went (interrupts included)
  u64 frames[kTempStressFrames];  ///< the frames (physical addresses) it rotated through
};

// The layouts are part of the ABI: the same on every ISA, checked here once.
static_assert(sizeof(ExitInfo) == 16 && offsetof(ExitInfo, how) == 4 && offsetof(ExitInfo, address) == 8);
static_assert(sizeof(ProcInfo) == 72 && offsetof(ProcInfo, root) == 16 && offsetof(ProcInfo, ticks) == 64);
static_assert(sizeof(TempStressReport) == 72 && offsetof(TempStressReport, frames) == 40);
static_assert(sizeof(VmaInfo) == 32 && offsetof(VmaInfo, prot) == 16 && offsetof(VmaInfo, offset) == 24);

}  // namespace pagoda::abi
