// usertests: many small adversarial cases against the system calls (lab 6), in the spirit of
// xv6's usertests. Each case runs in a child of its own (fork: a case that kills its process
// does not end the run) and makes *probes*: system calls with arguments a correct kernel must
// refuse (a pointer into the kernel half, into nothing, past the end of the user half, a range
// that wraps; sbrk past the heap's start or beyond all memory; exec of nothing, of too many or
// too long arguments; munmap and mprotect of ranges they may not touch; wait with no children;
// fork with memory exhausted) and a few it must accept, each with the result it must give.
//
//   usertests CASE     runs one case (badptr, sbrk, exec, mem, wait, forkmem) and prints
//                      "usertests: CASE: P probes, W wrong, exit E proof=..."
//   usertests all      runs every case, one line each (by hand, from the shell)
//
// Before each probe the child appends {number, expected result, flags, what} to
// usertests_probes (the grader reads that record from guest RAM through the child's root when
// the child calls exit); the grader stops at every system call of the child, and reads the
// result the kernel returned in user mode, and the frames in use at the call's entry and return:
// what the kernel did, not what this program says. Addresses and sizes come from the boot token,
// so a kernel cannot know them in advance.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

/// How a probe's result is judged (the grader's twin: grade/test_lab6.py, PROBE_*).
enum ProbeFlags : u64 {
  kExact = 1,       ///< the result is exactly `want`
  kSuccess = 2,     ///< the result is >= 0
  kSameFrames = 4,  ///< the frames in use are the same at the call's entry and its return
};

/// One probe, as the grader reads it (four u64s).
struct Probe {
  u64 number;
  i64 want;
  u64 flags;
  const char* what;
};
static_assert(sizeof(Probe) == 32);

constexpr u64 kMaxProbes = 64;

/// The record of the child's probes (read by the grader by these symbols).
extern "C" {
[[gnu::used]] Probe usertests_probes[kMaxProbes];
[[gnu::used]] volatile u64 usertests_probe_count;
}

extern "C" void _start();
extern "C" char _end[];

namespace {

using abi::Errno;
using abi::Syscall;

u64 g_wrong = 0;

u64 value(u64 tag) { return proof(token(), tag); }

i64 err(Errno e) { return abi::error_result(e); }

/// Makes probe @p what: records it, calls, and counts a wrong result (the child's own verdict;
/// the grader makes its own from what it saw).
i64 probe(const char* what, Syscall n, i64 want, u64 flags, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0) {
  const u64 i = usertests_probe_count;
  if (i == kMaxProbes) exit(120);
  usertests_probes[i] = Probe{u64(n), want, flags, what};
  usertests_probe_count = i + 1;
  const i64 r = syscall_raw(u64(n), a0, a1, a2, a3);
  const bool ok = (flags & kExact) ? r == want : (flags & kSuccess) ? r >= 0 : true;
  if (!ok) {
    ++g_wrong;
    println("usertests: probe {} ({}): got {}, expected {}", i, what, r, want);
  }
  return r;
}

/// An error probe: exactly -@p e, and nothing allocated or freed by the call.
i64 refuse(const char* what, Syscall n, Errno e, u64 a0 = 0, u64 a1 = 0, u64 a2 = 0, u64 a3 = 0) {
  return probe(what, n, err(e), kExact | kSameFrames, a0, a1, a2, a3);
}

template <class T> u64 va(T* p) { return u64(reinterpret_cast<uptr>(p)); }

// ---- wild pointers, from the token -------------------------------------------------------------

/// An address in the kernel half (both ISAs: the upper half of a 48-bit space).
u64 kernel_pointer(u64 tag) { return 0xffff'8000'0000'0000ull | (value(tag) & 0x0000'7fff'ffff'fff8ull); }
/// A user address nothing maps: 2^40 .. 2^40 + 2^35, far above the mmap area's first regions.
u64 unmapped_pointer(u64 tag) { return (u64{1} << 40) + (value(tag) % (u64{1} << 35) & ~u64{7}); }
/// Just below 2^47: past the x86_64 user half's end, unmapped on AArch64.
constexpr u64 kEdge = (u64{1} << 47) - 8;
/// A range that wraps around the end of the address space.
constexpr u64 kWrap = ~u64{0} - 7;

[[gnu::noinline]] void text_marker() { asm volatile(""); }

void case_badptr() {
  char buf[64] = "usertests";
  const u64 text = va(&text_marker);
  const u64 kp = kernel_pointer(1), up = unmapped_pointer(2);
  refuse("write from a kernel-half pointer", Syscall::Write, Errno::Fault, 1, kp, 16);
  refuse("write from an unmapped pointer", Syscall::Write, Errno::Fault, 1, up, 16);
  refuse("write of a range past the user half", Syscall::Write, Errno::Fault, 1, kEdge, 64);
  refuse("write of a range that wraps", Syscall::Write, Errno::Fault, 1, kWrap, 64);
  refuse("write to a descriptor that is not open", Syscall::Write, Errno::BadFd, 3 + value(3) % 60, va(buf), 1);
  probe("write of 0 bytes", Syscall::Write, 0, kExact, 1, va(buf), 0);
  refuse("read into a kernel-half pointer", Syscall::Read, Errno::Fault, 0, kernel_pointer(4), 16);
  refuse("read into an unmapped pointer", Syscall::Read, Errno::Fault, 0, unmapped_pointer(5), 16);
  refuse("read into read-only text", Syscall::Read, Errno::Fault, 0, text, 16);
  refuse("read into a range that wraps", Syscall::Read, Errno::Fault, 0, kWrap, 64);
  refuse("wait with a kernel-half status pointer", Syscall::Wait, Errno::Fault, u64(-1), kernel_pointer(6), 0);
  refuse("wait with a status pointer into text", Syscall::Wait, Errno::Fault, u64(-1), text, 0);
  refuse("wait with a misaligned status pointer and no child", Syscall::Wait, Errno::Child, u64(-1), va(buf) + 1, 0);
  refuse("proc_info into a kernel-half pointer", Syscall::ProcInfo, Errno::Fault, kernel_pointer(7),
         sizeof(abi::ProcInfo));
  refuse("proc_info into read-only text", Syscall::ProcInfo, Errno::Fault, text, sizeof(abi::ProcInfo));
  refuse("proc_info into a range past the user half", Syscall::ProcInfo, Errno::Fault, kEdge, sizeof(abi::ProcInfo));
  refuse("vma_list into an unmapped pointer", Syscall::VmaList, Errno::Fault, unmapped_pointer(8), 4);
  refuse("exec of a kernel-half name", Syscall::Exec, Errno::Fault, kernel_pointer(9), 0);
  refuse("spawn of an unmapped name", Syscall::Spawn, Errno::Fault, unmapped_pointer(10), 0);
  refuse("exec with a name that wraps", Syscall::Exec, Errno::Fault, kWrap, 0);
  abi::ProcInfo info{};
  probe("proc_info into a good buffer, after all that", Syscall::ProcInfo, sizeof info, kExact, va(&info), sizeof info);
}

void case_sbrk() {
  const i64 start = probe("sbrk(0)", Syscall::Sbrk, 0, kSuccess, 0);
  const u64 below = (1 + value(11) % 64) * arch::kPageSize + value(12) % arch::kPageSize;
  refuse("sbrk below the heap's start", Syscall::Sbrk, Errno::NoMem, u64(-i64(below)));
  refuse("sbrk of a huge increment", Syscall::Sbrk, Errno::NoMem, u64{1} << (44 + value(13) % 8));
  refuse("sbrk that overflows", Syscall::Sbrk, Errno::NoMem, u64{0x7fff'ffff'ffff'ffffull});
  refuse("sbrk of the most negative increment", Syscall::Sbrk, Errno::NoMem, u64{1} << 63);
  probe("brk(0) after the refusals", Syscall::Brk, start, kExact, 0);
  probe("brk below the heap's start leaves it", Syscall::Brk, start, kExact, u64(start) - below);
  const u64 pages = 2 + value(14) % 4;
  probe("sbrk of a few pages", Syscall::Sbrk, start, kExact, pages * arch::kPageSize);
  auto* heap = reinterpret_cast<volatile u64*>(start);
  for (u64 i = 0; i < pages; ++i) heap[i * arch::kPageSize / 8] = value(15) + i;
  probe("sbrk back down", Syscall::Sbrk, i64(u64(start) + pages * arch::kPageSize), kExact,
        u64(-i64(pages * arch::kPageSize)));
  probe("brk(0) back at the start", Syscall::Brk, start, kExact, 0);
  const u64 page_up = (u64(start) + arch::kPageSize - 1) & ~(arch::kPageSize - 1);
  refuse("write from a heap page given back", Syscall::Write, Errno::Fault, 1, page_up + arch::kPageSize, 8);
}

void case_exec() {
  char name[48];
  for (usize i = 0; i < sizeof name - 1; ++i) name[i] = char('a' + (value(20) >> (i % 60)) % 26);
  name[sizeof name - 1] = '\0';
  char missing[24] = "nosuch-";
  for (usize i = 7; i < 20; ++i) missing[i] = char('a' + (value(21) >> (i * 3)) % 26);
  missing[20] = '\0';
  refuse("exec of a kernel-half name", Syscall::Exec, Errno::Fault, kernel_pointer(22), 0);
  refuse("exec of a missing program", Syscall::Exec, Errno::NoEnt, va(missing), 0);
  refuse("exec of a name longer than kMaxProgramName", Syscall::Exec, Errno::NameTooLong, va(name), 0);
  const char* many[abi::kMaxArgs + 2];
  for (usize i = 0; i <= abi::kMaxArgs; ++i) many[i] = "echo";
  many[abi::kMaxArgs + 1] = nullptr;
  refuse("exec with more than kMaxArgs arguments", Syscall::Exec, Errno::TooBig, va("echo"), va(many));
  static char long_arg[abi::kMaxArgBytes + 64];
  for (usize i = 0; i < sizeof long_arg - 1; ++i) long_arg[i] = char('A' + i % 26);
  const char* too_long[] = {"echo", long_arg, nullptr};
  refuse("exec with arguments longer than kMaxArgBytes", Syscall::Exec, Errno::TooBig, va("echo"), va(too_long));
  refuse("exec with a kernel-half argv", Syscall::Exec, Errno::Fault, va("echo"), kernel_pointer(23));
  const char* wild[] = {"echo", reinterpret_cast<const char*>(unmapped_pointer(24)), nullptr};
  refuse("exec with an unmapped argument string", Syscall::Exec, Errno::Fault, va("echo"), va(wild));
  refuse("spawn of a missing program", Syscall::Spawn, Errno::NoEnt, va(missing), 0);
  refuse("spawn with a kernel-half argv", Syscall::Spawn, Errno::Fault, va("echo"), kernel_pointer(25));
  abi::ProcInfo info{};
  probe("proc_info after the failed execs", Syscall::ProcInfo, sizeof info, kExact, va(&info), sizeof info);
}

void case_mem() {
  constexpr u64 rw = abi::kProtRead | abi::kProtWrite;
  refuse("mmap of length 0", Syscall::Mmap, Errno::Inval, 0, 0, rw, 0);
  refuse("mmap with unknown protection bits", Syscall::Mmap, Errno::Inval, 0, arch::kPageSize, 8 << (value(30) % 4), 0);
  refuse("mmap writable and executable", Syscall::Mmap, Errno::Access, 0, arch::kPageSize,
         abi::kProtWrite | abi::kProtExec, 0);
  refuse("mmap with unknown flags", Syscall::Mmap, Errno::Inval, 0, arch::kPageSize, rw, 4 << (value(31) % 4));
  // (8 bytes into a page: unmapped_pointer() + 8 was page-aligned for 1 token in 512)
  refuse("mmap fixed at a misaligned address", Syscall::Mmap, Errno::Inval,
         (unmapped_pointer(32) & ~(arch::kPageSize - 1)) + 8, arch::kPageSize, rw, abi::kMapFixed);
  refuse("mmap fixed in the kernel half", Syscall::Mmap, Errno::Inval, kernel_pointer(33) & ~(arch::kPageSize - 1),
         arch::kPageSize, rw, abi::kMapFixed);
  refuse("mmap longer than the user half", Syscall::Mmap, Errno::Inval, 0, ~u64{0} - value(34) % arch::kPageSize, rw,
         0);
  const i64 a = probe("mmap of two pages", Syscall::Mmap, 0, kSuccess, 0, 2 * arch::kPageSize, rw, 0);
  if (a < 0) return;
  reinterpret_cast<volatile u64*>(a)[0] = value(35);
  refuse("mmap fixed-noreplace over a mapping", Syscall::Mmap, Errno::Exist, u64(a), arch::kPageSize, rw,
         abi::kMapFixedNoReplace);
  refuse("munmap at a misaligned address", Syscall::Munmap, Errno::Inval,
         u64(a) + 1 + value(36) % (arch::kPageSize - 1), arch::kPageSize);
  refuse("munmap of length 0", Syscall::Munmap, Errno::Inval, u64(a), 0);
  refuse("munmap in the kernel half", Syscall::Munmap, Errno::Inval, kernel_pointer(37) & ~(arch::kPageSize - 1),
         arch::kPageSize);
  refuse("munmap of a range that wraps", Syscall::Munmap, Errno::Inval, ~u64{0} & ~(arch::kPageSize - 1),
         2 * arch::kPageSize);
  refuse("mprotect writable and executable", Syscall::Mprotect, Errno::Access, u64(a), arch::kPageSize,
         abi::kProtWrite | abi::kProtExec);
  refuse("mprotect with unknown bits", Syscall::Mprotect, Errno::Inval, u64(a), arch::kPageSize, 16);
  refuse("mprotect of a range nothing maps", Syscall::Mprotect, Errno::NoMem,
         unmapped_pointer(38) & ~(arch::kPageSize - 1), arch::kPageSize, abi::kProtRead);
  probe("mprotect to read-only", Syscall::Mprotect, 0, kExact, u64(a), arch::kPageSize, abi::kProtRead);
  refuse("read into the read-only page", Syscall::Read, Errno::Fault, 0, u64(a) + value(39) % 512, 16);
  probe("munmap of both pages", Syscall::Munmap, 0, kExact, u64(a), 2 * arch::kPageSize);
  probe("munmap of the hole again", Syscall::Munmap, 0, kExact, u64(a), 2 * arch::kPageSize);
  refuse("write from the unmapped pages", Syscall::Write, Errno::Fault, 1, u64(a), 8);
}

void case_wait() {
  abi::ExitInfo info{};
  const i64 me = probe("getpid", Syscall::GetPid, 0, kSuccess);
  refuse("wait with no children", Syscall::Wait, Errno::Child, u64(-1), va(&info), 0);
  refuse("wait with no-hang and no children", Syscall::Wait, Errno::Child, u64(-1), va(&info), abi::kWaitNoHang);
  refuse("waitpid of itself", Syscall::Wait, Errno::Srch, u64(me), va(&info), 0);
  refuse("waitpid of a process that is not its child", Syscall::Wait, Errno::Srch, 1, va(&info), 0);
  refuse("waitpid(0)", Syscall::Wait, Errno::Inval, 0, va(&info), 0);
  refuse("waitpid of a negative id", Syscall::Wait, Errno::Inval, u64(-2 - i64(value(40) % 1000)), va(&info), 0);
  refuse("wait with unknown options", Syscall::Wait, Errno::Inval, u64(-1), va(&info), 2 << (value(41) % 8));
  refuse("waitpid of an id past 32 bits", Syscall::Wait, Errno::Inval, (u64{1} << 32) + value(42) % 1000, va(&info), 0);
  const i32 code = i32(1 + value(43) % 200);
  const i64 child = probe("fork", Syscall::Fork, 0, kSuccess);
  if (child == 0) {
    (void)sleep(10);
    exit(code);
  }
  if (child < 0) return;
  probe("wait with no-hang while the child sleeps", Syscall::Wait, 0, kExact, u64(-1), va(&info), abi::kWaitNoHang);
  probe("waitpid of the child", Syscall::Wait, child, kExact, u64(child), va(&info), 0);
  if (info.how != u32(abi::Termination::Exited) || info.code != code) ++g_wrong;
  refuse("wait after the child was reaped", Syscall::Wait, Errno::Child, u64(-1), va(&info), 0);
  refuse("waitpid of the reaped child", Syscall::Wait, Errno::Srch, u64(child), va(&info), 0);
  // Two children: one ends at once, one waits. waitpid of the waiting one must wait for it, not
  // reap the sibling that ended first; then the sibling, by its own pid. The token picks which is
  // forked first and both statuses. The waiting child yields rather than sleeps: each yield gives
  // its sibling a turn, so the sibling has ended before it, however few instructions a timer tick
  // brings on a loaded host (a sleep of 10 ticks did not always outlast it).
  const bool early_first = value(44) % 2 == 0;
  const i32 early_code = i32(1 + value(45) % 200), late_code = i32(1 + value(46) % 200);
  i64 early = 0, late = 0;
  for (int k = 0; k < 2; ++k) {
    const bool is_early = (k == 0) == early_first;
    const i64 c = probe(is_early ? "fork of a child that ends at once" : "fork of a child that yields", Syscall::Fork,
                        0, kSuccess);
    if (c == 0) {
      if (!is_early)
        for (int turn = 0; turn < 1000; ++turn) (void)yield();
      exit(is_early ? early_code : late_code);
    }
    if (c < 0) return;
    (is_early ? early : late) = c;
  }
  (void)sleep(2);  // (not a probe) the child that ends at once has ended by now, most likely
  probe("waitpid of the yielding child while its sibling has ended", Syscall::Wait, late, kExact, u64(late), va(&info),
        0);
  if (info.how != u32(abi::Termination::Exited) || info.code != late_code) ++g_wrong;
  // It ended before its sibling did (that one yielded until then): no-hang finds it ended and reaps it.
  probe("waitpid with no-hang of the child that ended first", Syscall::Wait, early, kExact, u64(early), va(&info),
        abi::kWaitNoHang);
  if (info.how != u32(abi::Termination::Exited) || info.code != early_code) ++g_wrong;
}

void case_forkmem() {
  // Every page of the program first (lab 5 loads them lazily): with no frame left, a first
  // touch of code would kill the case. _start opens .text; _end closes the last segment.
  for (u64 page = va(&_start) & ~(arch::kPageSize - 1); page < va(_end); page += arch::kPageSize)
    (void)*reinterpret_cast<volatile const char*>(page);
  // Exhaust memory: touch pages of a large mapping until only a few frames are free (the
  // kernel's own count steers the loop; the grader reads the bitmap itself).
  abi::ProcInfo info{};
  (void)proc_info(&info);
  const u64 room = info.frames_total - info.frames_in_use;
  const i64 area = mmap(0, room * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(area)) {
    ++g_wrong;
    return;
  }
  // Leave 0 or 1 frames: even exec's new root cannot be had. Near the end one page at a time,
  // and a page that needs a new page table only while there is a frame for it too.
  const u64 leave = value(50) % 2;
  u64 touched = 0;
  for (;;) {
    (void)proc_info(&info);
    const u64 free = info.frames_total - info.frames_in_use;
    if (free <= leave || touched == room) break;
    const u64 va = u64(area) + touched * arch::kPageSize;
    const bool new_table = touched == 0 || (va >> 21) != ((va - arch::kPageSize) >> 21);
    if (free < 8) {
      if (new_table && free < 2) break;
      reinterpret_cast<volatile u64*>(va)[0] = touched++;
      continue;
    }
    const u64 step = (free - 8) / 2 + 1;
    for (u64 i = 0; i < step && touched < room; ++i, ++touched)
      reinterpret_cast<volatile u64*>(area + i64(touched * arch::kPageSize))[0] = touched;
  }
  refuse("fork with memory exhausted", Syscall::Fork, Errno::NoMem);
  refuse("spawn with memory exhausted", Syscall::Spawn, Errno::NoMem, va("echo"), 0);
  refuse("exec with memory exhausted", Syscall::Exec, Errno::NoMem, va("echo"), 0);
  probe("munmap of the exhausting mapping", Syscall::Munmap, 0, kExact, u64(area), room * arch::kPageSize);
  const i64 child = probe("fork after the memory came back", Syscall::Fork, 0, kSuccess);
  if (child == 0) exit(0);
  if (child < 0) return;
  abi::ExitInfo done{};
  probe("waitpid of that child", Syscall::Wait, child, kExact, u64(child), va(&done), 0);
  if (done.how != u32(abi::Termination::Exited) || done.code != 0) ++g_wrong;
}

struct Case {
  const char* name;
  void (*run)();
};
constexpr Case kCases[] = {{"badptr", case_badptr}, {"sbrk", case_sbrk}, {"exec", case_exec},
                           {"mem", case_mem},       {"wait", case_wait}, {"forkmem", case_forkmem}};

/// Runs @p c in a child; prints its line; true when it passed by its own count.
bool run_case(const Case& c) {
  const i64 pid = fork();
  if (pid == 0) {
    usertests_probe_count = 0;  // the record's page is the child's own before the case starts
    g_wrong = 0;
    c.run();
    exit(int(min<u64>(g_wrong, 100)));
  }
  if (pid < 0) {
    println("usertests: {}: fork failed: {}", c.name, abi::errno_name(abi::errno_of(pid)));
    return false;
  }
  abi::ExitInfo info{};
  const i64 got = waitpid(pid, &info);
  const bool exited = got == pid && info.how == u32(abi::Termination::Exited);
  println("usertests: {}: {} wrong, {} proof={:016x}", c.name, exited ? info.code : -1,
          exited ? "exited" : abi::termination_name(abi::Termination(info.how)),
          proof(token(), u64(exited ? info.code : 1000) ^ u64(info.how) << 16));
  return exited && info.code == 0;
}

}  // namespace

int main(int, char**) {
  const StringView which = arg(1);
  u64 ran = 0, passed = 0;
  for (const Case& c : kCases) {
    if (which != "all" && which != c.name) continue;
    ++ran;
    passed += run_case(c);
  }
  if (ran == 0) {
    print("usertests: usage: usertests all");
    for (const Case& c : kCases) print(" | {}", c.name);
    println("");
    return 2;
  }
  println("usertests: {} of {} cases passed", passed, ran);
  return passed == ran ? 0 : 1;
}
