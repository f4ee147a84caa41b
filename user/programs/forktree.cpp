// forktree: fork, wait and exec from user space (lab 6), with values bound to the boot token
// so that the grader can read them back from guest RAM through each process's root.
//
//   forktree basic N   forks N children. Before the fork the parent writes derived::value(derived::forktree_before_word, r)
//                      into one word of each region r (0 data, 1 heap, 2 mmap, 3 stack); each
//                      child checks it sees those, writes its own (child_value(i, r)), prints a
//                      line, yields, checks its words again and exits with child_code(i); the
//                      parent writes derived::value(derived::forktree_after_word, r) after the forks, reaps every child with
//                      its status and checks its own words were never touched by a child.
//   forktree deep D    a chain of D forks: each process forks one child and waits for it; the
//                      last exits with leaf_code(); each parent exits with its child's code + 1.
//   forktree bomb M    touches M MiB, then forks until fork fails (each child sleeps a while,
//                      touches one page and exits 7); reaps every child and reports how fork
//                      failed. With fork=eager and enough MiB the copy runs out of memory part
//                      way: the kernel must undo it all and return ENOMEM.
//   forktree exec      a child execs a program that does not exist (an error, and it goes on),
//                      then `echo` with arguments chosen from the token; the parent reaps it.
//   forktree wide N    forks N children (at most kMaxWide) before reaping any: all of them
//                      exist at once (zombies keep their slots); child i exits at once with
//                      wide_code(i); the parent reaps every one with wait() and checks each
//                      status against the child it forked.
//   forktree vmas M H S  fills every page of its data array, M mmap regions, H heap pages and S
//                      pages of grown stack with page_mark(); forks from the deep stack frame;
//                      the child yields 3 times (the grader compares both roots page by page at
//                      one of them), then checks every mark and exits with vmas_code(); the
//                      parent reaps it.
//   forktree readcow O two mmap pages of 0x55 shared by fork; the child reads one console line
//                      (the grader types it) into them at offset O, across the page boundary:
//                      the kernel's write into a copy-on-write page must copy it. The child
//                      yields (the grader compares the roots) and exits with a code of the bytes;
//                      the parent checks its pages never changed.
//   forktree runs N K  maps N pages and writes each (their writable translations cached), forks,
//                      and at once (no system call, no switch) writes page K (1..N-1, not the
//                      first of the run): the child must still read the value written before the
//                      fork there; it exits with runs_code() when every page holds it
//   forktree growchild D  forks a child that grows its stack D pages deep, then exits with
//                      grow_code(); the parent reaps it
//   forktree orphan    pid 1 forks A and waits; A sleeps a tick, forks C, C forks B; B ends at
//                      once, C ends after it (B, a zombie, goes to pid 1), A reaps C and sleeps;
//                      pid 1, waiting since it forked A, must reap B first (while A sleeps), then A
//   forktree hang N    forks N children that sleep until something ends them, says so, and
//                      waits for them: a process tree for the shell's Ctrl-C (which ends the
//                      foreground program with its descendants) and `kill -t`.
#include "user/lib/derived.hpp"
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

constexpr usize kRegions = 4;
constexpr const char* kRegionNames[kRegions] = {"data", "heap", "mmap", "stack"};

/// The word of the data region the grader reads (by its symbol, through each root).
volatile u64 g_word = 0;

u64 child_value(u64 i, usize r) { return derived::value(derived::forktree_child_word, i * 8 + r); }
/// Exit codes in [1, 100].
i32 child_code(u64 i) { return i32(derived::value(derived::forktree_child_code, i)); }
i32 leaf_code() { return i32(derived::value(derived::forktree_leaf_code)); }

struct Words {
  volatile u64* at[kRegions];
};

/// 0 when every word holds want(r); else 1 + the first region that does not.
template <class F> int check(const Words& w, F want) {
  for (usize r = 0; r < kRegions; ++r)
    if (*w.at[r] != want(r)) return int(r) + 1;
  return 0;
}

template <class F> void fill(const Words& w, F want) {
  for (usize r = 0; r < kRegions; ++r) *w.at[r] = want(r);
}

int basic(u64 n) {
  volatile u64 stack_word = 0;
  const i64 heap = sbrk(i64(arch::kPageSize));
  const i64 map = mmap(0, arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(heap) || abi::is_error(map)) {
    println("forktree: no heap or mmap page ({} {})", heap, map);
    return 2;
  }
  const Words w{{&g_word, reinterpret_cast<volatile u64*>(heap), reinterpret_cast<volatile u64*>(map), &stack_word}};
  fill(w, [](usize r) { return derived::value(derived::forktree_before_word, r); });
  i64 pids[abi::kMaxArgs * 4] = {};
  if (n > sizeof pids / sizeof pids[0]) n = sizeof pids / sizeof pids[0];
  u64 forked = 0;
  for (u64 i = 0; i < n; ++i) {
    const i64 pid = fork();
    if (pid == 0) {
      const int bad = check(w, [](usize r) { return derived::value(derived::forktree_before_word, r); });
      if (bad != 0) {
        println("forktree: child {} sees {:#x} in its {} word, not the parent's {:#x}", i, *w.at[bad - 1],
                kRegionNames[bad - 1], derived::value(derived::forktree_before_word, u64(bad) - 1));
        exit(101);
      }
      fill(w, [i](usize r) { return child_value(i, r); });
      abi::ProcInfo info{};
      (void)proc_info(&info);
      println("forktree: child {} pid {} parent {} wrote{}", i, getpid(), info.parent,
              proof_note(child_value(i, 0) ^ u64(getpid())));
      for (int k = 0; k < 8; ++k) (void)yield();
      const int again = check(w, [i](usize r) { return child_value(i, r); });
      if (again != 0) {
        println("forktree: child {}'s {} word changed under it to {:#x}", i, kRegionNames[again - 1], *w.at[again - 1]);
        exit(102);
      }
      exit(child_code(i));
    }
    if (pid < 0) {
      println("forktree: fork {} failed: {}", i, abi::errno_name(abi::errno_of(pid)));
      break;
    }
    pids[i] = pid;
    ++forked;
  }
  fill(w, [](usize r) { return derived::value(derived::forktree_after_word, r); });
  u64 reaped = 0, good = 0, sum = 0;
  for (;;) {
    abi::ExitInfo info{};
    const i64 pid = wait(&info);
    if (pid < 0) {
      if (abi::errno_of(pid) != abi::Errno::Child) println("forktree: wait: {}", abi::errno_name(abi::errno_of(pid)));
      break;
    }
    ++reaped;
    u64 i = 0;
    while (i < forked && pids[i] != pid) ++i;
    const bool ok = i < forked && info.how == u32(abi::Termination::Exited) && info.code == child_code(i);
    if (!ok) println("forktree: child pid {} ended with how {} code {}", pid, info.how, info.code);
    good += ok;
    sum += u64(info.code) * (i + 1);
  }
  const int bad = check(w, [](usize r) { return derived::value(derived::forktree_after_word, r); });
  if (bad != 0)
    println("forktree: the parent's {} word is {:#x}: a child's write reached it", kRegionNames[bad - 1],
            *w.at[bad - 1]);
  println("forktree: forked {} reaped {} with their statuses {}{}", forked, reaped,
          good == n && reaped == n ? "ok" : "WRONG", proof_note(sum));
  return good == n && reaped == n && bad == 0 ? 0 : 1;
}

i32 deep(u64 level, u64 depth) {
  if (level == depth) return leaf_code();
  const i64 pid = fork();
  if (pid < 0) {
    println("forktree: fork at level {} failed: {}", level, abi::errno_name(abi::errno_of(pid)));
    return 0;
  }
  if (pid == 0) exit(deep(level + 1, depth));
  abi::ExitInfo info{};
  const i64 got = waitpid(pid, &info);
  if (got != pid || info.how != u32(abi::Termination::Exited)) {
    println("forktree: level {}: waitpid({}) = {} how {}", level, pid, got, info.how);
    return 0;
  }
  return info.code + 1;
}

int exec_test() {
  const i64 pid = fork();
  if (pid == 0) {
    const i64 missing = exec("nosuchprogram", nullptr);
    println("forktree: exec of a missing program: {}{}", abi::errno_name(abi::errno_of(missing)),
            proof_note(u64(-missing)));
    char count[24] = {}, tok[80] = {};
    format_buffer(count, sizeof count, "{}", derived::value(derived::forktree_exec_count));
    format_buffer(tok, sizeof tok, "{}{}", abi::kTokenArgPrefix, token());
    const char* const argv[] = {"echo", "forked", count, tok, nullptr};
    const i64 r = exec("echo", argv);
    println("forktree: exec of echo failed: {}", abi::errno_name(abi::errno_of(r)));
    exit(103);
  }
  abi::ExitInfo info{};
  const i64 got = waitpid(pid, &info);
  println("forktree: exec child {} reaped ({}) how {} code {}", pid, got, info.how, info.code);
  return got == pid && info.how == u32(abi::Termination::Exited) && info.code == 0 ? 0 : 1;
}

int bomb(u64 mib) {
  const u64 bytes = mib << 20;
  const i64 area = bytes == 0 ? 0 : mmap(0, bytes, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(area)) {
    println("forktree: bomb: mmap of {} MiB failed", mib);
    return 2;
  }
  for (u64 off = 0; off < bytes; off += arch::kPageSize) reinterpret_cast<volatile u64*>(area)[off / 8] = off;
  u64 forked = 0;
  i64 failure = 0;
  for (;;) {
    const i64 pid = fork();
    if (pid == 0) {
      (void)sleep(20);
      // One copy-on-write page, a different one per child: the same fault at the same address
      // in many processes would look like one process faulting in a loop (AArch64's log does
      // not say which root faulted).
      if (bytes != 0) reinterpret_cast<volatile u64*>(area)[(forked * arch::kPageSize % bytes) / 8] = 1;
      exit(7);
    }
    if (pid < 0) {
      failure = pid;
      break;
    }
    ++forked;
  }
  u64 reaped = 0, sevens = 0;
  abi::ExitInfo info{};
  for (i64 pid; (pid = wait(&info)) > 0;) {
    ++reaped;
    sevens += info.how == u32(abi::Termination::Exited) && info.code == 7;
  }
  println("forktree: bomb: forked {} then fork failed with {}; reaped {} ({} with 7){}", forked,
          abi::errno_name(abi::errno_of(failure)), reaped, sevens,
          proof_note(forked ^ (reaped << 16) ^ (sevens << 32)));
  return reaped == forked && sevens == forked ? 0 : 1;
}

constexpr u64 kMaxWide = 64;

/// Exit codes in [1, 250], one per wide child.
i32 wide_code(u64 i) { return i32(derived::value(derived::forktree_wide_code, i)); }

int wide(u64 n) {
  if (n > kMaxWide) n = kMaxWide;
  i64 pids[kMaxWide] = {};
  u64 forked = 0;
  for (u64 i = 0; i < n; ++i) {
    const i64 pid = fork();
    if (pid == 0) exit(wide_code(i));
    if (pid < 0) {
      println("forktree: wide: fork {} failed: {}", i, abi::errno_name(abi::errno_of(pid)));
      break;
    }
    pids[forked++] = pid;
  }
  u64 reaped = 0, good = 0, sum = 0;
  for (;;) {
    abi::ExitInfo info{};
    const i64 pid = wait(&info);
    if (pid < 0) break;
    ++reaped;
    u64 i = 0;
    while (i < forked && pids[i] != pid) ++i;
    const bool ok = i < forked && info.how == u32(abi::Termination::Exited) && info.code == wide_code(i);
    if (!ok) println("forktree: wide: child pid {} ended with how {} code {}", pid, info.how, info.code);
    good += ok;
    sum += u64(info.code) * (i + 1);
  }
  println("forktree: wide: forked {} reaped {} statuses {}{}", forked, reaped,
          good == n && reaped == n ? "ok" : "WRONG", proof_note(sum ^ (reaped << 32)));
  return good == n && reaped == n ? 0 : 1;
}

// ---- vmas: fork after mmap, brk and stack growth ----------------------------------------------

constexpr u64 kDataPages = 3;
constexpr u64 kMaxVmaRegions = 6;
constexpr u64 kMaxHeapPages = 16;
constexpr u64 kMaxStackPages = 12;

/// The data region's pages (the grader finds them by this symbol).
alignas(arch::kPageSize) u64 g_vma_data[kDataPages * arch::kPageSize / 8];

/// Word k of the page at @p page: the grader's twin is grade/test_lab6.py page_mark().
u64 page_mark(u64 page, u64 k) { return derived::value(derived::forktree_page_mark, page >> 12) + k; }

void mark_page(u64 page) {
  auto* w = reinterpret_cast<volatile u64*>(page);
  for (u64 k = 0; k < arch::kPageSize / 8; ++k) w[k] = page_mark(page, k);
}

/// 0 when every word of the page holds its mark; else 1.
u64 marked(u64 page) {
  auto* w = reinterpret_cast<volatile u64*>(page);
  for (u64 k = 0; k < arch::kPageSize / 8; ++k)
    if (w[k] != page_mark(page, k)) return 1;
  return 0;
}

i32 vmas_code() { return i32(derived::value(derived::forktree_vmas_code)); }

struct Marked {
  u64 pages[kDataPages + kMaxVmaRegions * 3 + kMaxHeapPages + kMaxStackPages];
  u64 count = 0;
  void add(u64 page) {
    mark_page(page);
    pages[count++] = page;
  }
};

/// Grows the stack by @p pages marked pages in its own frame, then forks from there (so the
/// marked pages lie above the stack pointer of both processes, untouched after the fork).
[[gnu::noinline]] int fork_deep_in_stack(Marked& m, u64 pages) {
  alignas(16) volatile u64 frame[(kMaxStackPages + 1) * arch::kPageSize / 8];
  asm volatile("" ::"r"(frame) : "memory");
  const u64 low = (u64(reinterpret_cast<uptr>(frame)) + arch::kPageSize - 1) & ~(arch::kPageSize - 1);
  for (u64 i = 0; i < pages; ++i) m.add(low + i * arch::kPageSize);
  const i64 pid = fork();
  if (pid == 0) {
    for (int k = 0; k < 3; ++k) (void)yield();  // the grader picks one of these moments
    u64 bad = 0;
    for (u64 i = 0; i < m.count; ++i) bad += marked(m.pages[i]);
    exit(bad == 0 ? vmas_code() : 100 + i32(min<u64>(bad, 100)));
  }
  if (pid < 0) {
    println("forktree: vmas: fork failed: {}", abi::errno_name(abi::errno_of(pid)));
    return 2;
  }
  abi::ExitInfo info{};
  const i64 got = waitpid(pid, &info);
  u64 bad = 0;
  for (u64 i = 0; i < m.count; ++i) bad += marked(m.pages[i]);
  const bool ok = got == pid && info.how == u32(abi::Termination::Exited) && info.code == vmas_code() && bad == 0;
  println("forktree: vmas: {} marked pages; child code {}; parent's pages {}{}", m.count, info.code,
          bad == 0 ? "intact" : "CHANGED", proof_note(m.count ^ (u64(info.code) << 16) ^ (bad << 32)));
  return ok ? 0 : 1;
}

int vmas(u64 maps, u64 heap_pages, u64 stack_pages) {
  maps = min(maps, kMaxVmaRegions);
  heap_pages = min(heap_pages, kMaxHeapPages);
  stack_pages = min(stack_pages, kMaxStackPages);
  static Marked m;
  for (u64 i = 0; i < kDataPages; ++i) m.add(u64(reinterpret_cast<uptr>(g_vma_data)) + i * arch::kPageSize);
  for (u64 r = 0; r < maps; ++r) {
    const u64 pages = 1 + r % 3;
    const i64 at = mmap(0, pages * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
    if (abi::is_error(at)) {
      println("forktree: vmas: mmap failed: {}", abi::errno_name(abi::errno_of(at)));
      return 2;
    }
    for (u64 i = 0; i < pages; ++i) m.add(u64(at) + i * arch::kPageSize);
    // The first region becomes read-only: its pages are shared by fork and never copied.
    if (r == 0 && mprotect(u64(at), pages * arch::kPageSize, abi::kProtRead) != 0) return 2;
  }
  const i64 old = sbrk(0);
  const u64 heap = (u64(old) + arch::kPageSize - 1) & ~(arch::kPageSize - 1);
  if (abi::is_error(sbrk(i64(heap - u64(old) + heap_pages * arch::kPageSize)))) {
    println("forktree: vmas: sbrk failed");
    return 2;
  }
  for (u64 i = 0; i < heap_pages; ++i) m.add(heap + i * arch::kPageSize);
  return fork_deep_in_stack(m, stack_pages);
}

// ---- readcow: read() into a copy-on-write buffer -------------------------------------------

i32 bytes_code(const volatile char* p, u64 n) {
  u64 d = 0;
  for (u64 i = 0; i < n; ++i) d = d * 131 + u8(p[i]);
  return i32(1 + d % 200);
}

int readcow(u64 offset) {
  constexpr u64 kFill = 0x5555'5555'5555'5555ull;
  constexpr u64 kMaxLine = 240;
  const i64 buf = mmap(0, 2 * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(buf)) return 2;
  auto* words = reinterpret_cast<volatile u64*>(buf);
  for (u64 i = 0; i < 2 * arch::kPageSize / 8; ++i) words[i] = kFill;
  if (offset == 0 || offset >= arch::kPageSize) offset = arch::kPageSize - 32;
  const i64 pid = fork();
  if (pid == 0) {
    auto* line = reinterpret_cast<volatile char*>(buf + offset);
    u64 got = 0;
    while (got < kMaxLine) {
      const i64 r = read(abi::kStdin, const_cast<char*>(line) + got, kMaxLine - got);
      if (r <= 0) exit(101);
      got += u64(r);
      if (line[got - 1] == '\n') break;
    }
    (void)yield();  // the grader compares the roots here
    exit(bytes_code(line, got));
  }
  if (pid < 0) {
    println("forktree: readcow: fork failed: {}", abi::errno_name(abi::errno_of(pid)));
    return 2;
  }
  abi::ExitInfo info{};
  const i64 got = waitpid(pid, &info);
  u64 bad = 0;
  for (u64 i = 0; i < 2 * arch::kPageSize / 8; ++i) bad += words[i] != kFill;
  println("forktree: readcow: child {} code {}; parent's buffer {}{}", got == pid ? "reaped" : "LOST", info.code,
          bad == 0 ? "intact" : "CHANGED", proof_note(u64(info.code) ^ (bad << 16)));
  return got == pid && bad == 0 ? 0 : 1;
}

int hang(u64 n) {
  u64 forked = 0;
  for (; forked < n; ++forked) {
    const i64 pid = fork();
    if (pid == 0)
      for (;;) (void)sleep(100);
    if (pid < 0) break;
  }
  println("forktree: hang: pid {} and {} children waiting to be ended (Ctrl-C)", getpid(), forked);
  abi::ExitInfo info{};
  while (wait(&info) > 0) {}
  return 0;
}

// ---- runs: fork narrows a run of writable pages; the parent writes one at once --------------

constexpr u64 kRunsSkip = 32;

i32 runs_code() { return i32(derived::value(derived::forktree_runs_code)); }

int runs(u64 n, u64 k) {
  if (n < 2 || n > 16 || k == 0 || k >= n) {
    println("forktree: runs: N in 2..16, K in 1..N-1");
    return 2;
  }
  // A first fork, whose child ends at once: the kernel's fork path is then translated (QEMU TCG
  // translates code on first use, many times slower than running it), so the fork below is over
  // well within the parent's turn.
  const i64 warm = fork();
  if (warm == 0) exit(0);
  abi::ExitInfo warm_info{};
  if (warm < 0 || waitpid(warm, &warm_info) != warm) {
    println("forktree: runs: the first fork failed: {}", warm);
    return 2;
  }
  // The run starts 32 pages into a larger mapping (the rest unmapped): a TLB indexed by the low
  // bits of the page number (QEMU's holds at least 64 entries) keeps its pages apart from the
  // program's text, data and stack pages, which could otherwise evict one of them before the write.
  const i64 whole = mmap(0, (kRunsSkip + n) * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  const i64 at = abi::is_error(whole) ? whole : whole + i64(kRunsSkip * arch::kPageSize);
  if (abi::is_error(at) || munmap(u64(whole), kRunsSkip * arch::kPageSize) != 0) {
    println("forktree: runs: mmap failed: {}", abi::errno_name(abi::errno_of(at)));
    return 2;
  }
  auto word = [&](u64 i) { return reinterpret_cast<volatile u64*>(u64(at) + i * arch::kPageSize); };
  for (u64 i = 0; i < n; ++i) *word(i) = derived::value(derived::forktree_runs_word, i);
  // A turn of its own begins after the sleep (a tick ends a turn only after kTicksPerTurn): the
  // writes below put each page's writable translation in the TLB again (the switch flushed it),
  // and fork and the write after it come well within the turn, with no switch between them.
  (void)sleep(1);
  for (u64 i = 0; i < n; ++i) *word(i) = derived::value(derived::forktree_runs_word, i);
  const i64 pid = fork();
  if (pid > 0) *word(k) = derived::value(derived::forktree_runs_mark);  // before anything else: the parent's next write
  if (pid == 0) {
    u64 bad = 0;
    for (u64 i = 0; i < n; ++i) bad += *word(i) != derived::value(derived::forktree_runs_word, i);
    exit(bad == 0 ? runs_code() : 100 + i32(min<u64>(bad, 100)));
  }
  if (pid < 0) {
    println("forktree: runs: fork failed: {}", abi::errno_name(abi::errno_of(pid)));
    return 2;
  }
  abi::ExitInfo info{};
  const i64 got = waitpid(pid, &info);
  u64 bad = 0;
  for (u64 i = 0; i < n; ++i)
    bad += *word(i) !=
           (i == k ? derived::value(derived::forktree_runs_mark) : derived::value(derived::forktree_runs_word, i));
  const bool ok = got == pid && info.how == u32(abi::Termination::Exited) && info.code == runs_code() && bad == 0;
  println("forktree: runs: {} pages at {:#x}, wrote page {} after fork; child code {}; parent's pages {}{}", n, at, k,
          info.code, bad == 0 ? "intact" : "CHANGED", proof_note(u64(info.code) ^ (bad << 32) ^ (k << 40)));
  return ok ? 0 : 1;
}

// ---- growchild: a forked child grows its stack ------------------------------------------------

i32 grow_code(u64 sum) { return i32(1 + (derived::value(derived::forktree_grow_tag) ^ sum) % 100); }

[[gnu::noinline]] u64 grow_down(u64 pages) {
  volatile u8 frame[arch::kPageSize - 64];
  frame[0] = u8(pages);
  frame[sizeof frame - 1] = u8(pages);
  asm volatile("" ::"r"(frame) : "memory");
  if (pages == 0) return frame[0];
  return grow_down(pages - 1) + frame[sizeof frame - 1];
}

int growchild(u64 depth) {
  const i64 pid = fork();
  if (pid == 0) exit(grow_code(grow_down(depth)));
  if (pid < 0) {
    println("forktree: growchild: fork failed: {}", abi::errno_name(abi::errno_of(pid)));
    return 2;
  }
  abi::ExitInfo info{};
  const i64 got = waitpid(pid, &info);
  u64 sum = 0;
  for (u64 p = 1; p <= depth; ++p) sum += p & 0xff;
  const bool ok = got == pid && info.how == u32(abi::Termination::Exited) && info.code == grow_code(sum);
  println("forktree: growchild: {} pages; child {} code {}{}", depth,
          info.how == u32(abi::Termination::Exited) ? "exited" : "killed", info.code,
          proof_note(u64(info.code) ^ (u64(info.how) << 16)));
  return ok ? 0 : 1;
}

// ---- orphan: an orphan ends while pid 1 waits ------------------------------------------------

/// 1..50: never C's 0x33 (51), A's 0x44 (68) or the failures' 98 and 99, which the grader tells
/// the orphan's exit apart from by its code (a token whose code was 68 made the orphan look like A).
i32 orphan_code() { return i32(derived::value(derived::forktree_orphan_code)); }

int orphan() {
  const i64 a = fork();
  if (a == 0) {  // A
    // pid 1 runs while A sleeps (nothing else is ready) and is in wait() before C and B exist:
    // their exits then meet a waiting adopter in every run, not only when pid 1 was quick.
    (void)sleep(1);
    const i64 c = fork();
    if (c == 0) {  // C
      const i64 b = fork();
      if (b == 0) exit(orphan_code());  // B: ends at once
      // C never reaps B, and ends only once B has (foreground() of an ended process is ESRCH;
      // the foreground is put back each time): B is a zombie when C's exit hands it to pid 1 in
      // every run, however the ticks fall.
      for (u64 i = 0; b > 0 && i < 1000; ++i) {
        const i64 was = foreground(b);
        if (was < 0) break;
        (void)foreground(was);
        (void)sleep(1);
      }
      exit(b > 0 ? 0x33 : 99);  // C ends: B, a zombie, goes to pid 1
    }
    abi::ExitInfo ci{};
    const i64 reaped = waitpid(c, &ci);
    (void)sleep(40);  // A lives on while pid 1 reaps the orphan
    exit(reaped == c && ci.code == 0x33 ? 0x44 : 98);
  }
  if (a < 0) {
    println("forktree: orphan: fork failed: {}", abi::errno_name(abi::errno_of(a)));
    return 2;
  }
  abi::ExitInfo first{}, second{}, none{};
  const i64 p1 = wait(&first);
  const i64 p2 = wait(&second);
  const i64 p3 = wait(&none);
  const bool ok = p1 > 0 && p1 != a && first.code == orphan_code() && p2 == a && second.code == 0x44 && p3 < 0;
  println("forktree: orphan: first {} code {}, then {} code {}, then {}{}", p1 == a ? "A" : "the orphan", first.code,
          p2 == a ? "A" : "the orphan", second.code, p3, proof_note(u64(first.code) ^ (u64(second.code) << 8)));
  return ok ? 0 : 1;
}

}  // namespace

int main(int, char**) {
  const StringView mode = arg(1);
  if (mode == "basic") return basic(arg_number(2, 4));
  if (mode == "deep") {
    const u64 depth = arg_number(2, 8);
    const i32 code = deep(0, depth);
    println("forktree: deep {}: code {}{}", depth, code, proof_note(u64(code)));
    return code == leaf_code() + i32(depth) ? 0 : 1;
  }
  if (mode == "exec") return exec_test();
  if (mode == "bomb") return bomb(arg_number(2, 0));
  if (mode == "wide") return wide(arg_number(2, kMaxWide));
  if (mode == "vmas") return vmas(arg_number(2, 3), arg_number(3, 4), arg_number(4, 4));
  if (mode == "readcow") return readcow(arg_number(2, 0));
  if (mode == "hang") return hang(arg_number(2, 3));
  if (mode == "runs") return runs(arg_number(2, 4), arg_number(3, 1));
  if (mode == "growchild") return growchild(arg_number(2, 16));
  if (mode == "orphan") return orphan();
  println("forktree: usage: forktree basic N | deep D | exec | bomb MIB | wide N | vmas M H S | readcow OFFSET | "
          "hang N | runs N K | growchild D | orphan");
  return 2;
}
