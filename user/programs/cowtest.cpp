// cowtest: copy-on-write seen from user space (lab 6). The grader stops at its system calls and
// compares the parent's and the child's roots in guest RAM; the program marks the moments.
//
//   cowtest N MASK     maps N pages (at most 64) and writes word 0 of page j = derived::value(derived::cowtest_word, j);
//                      maps one more page (the kernel-write page) holding 0x5555... in every word;
//                      forks. The child:
//                        getpid()                     moment A: nothing written since the fork
//                        writes derived::value(derived::cowtest_child_word, j) into page j for every bit j of MASK
//                        yield()                      moment B: the written pages were copied
//                        proc_info(kernel-write page) the kernel writes into a shared page
//                        yield()                      moment C: that page was copied first
//                      checks every word and exits 0 (or 1). The parent waits for it, checks its
//                      own words, then writes every page again (each now has one mapping: taken
//                      back, not copied), and calls yield() (moment D) before its summary line.
#include "user/lib/derived.hpp"
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

constexpr u64 kWords = arch::kPageSize / 8;
constexpr u64 kFill = 0x5555'5555'5555'5555ull;

}  // namespace

int main(int, char**) {
  const u64 n = arg_number(1, 8);
  const u64 mask = arg_number(2, 1);
  if (n == 0 || n > 64 || (n < 64 && mask >> n != 0)) {
    println("cowtest: usage: cowtest N MASK (1 <= N <= 64, MASK below 2^N)");
    return 2;
  }
  const i64 region = mmap(0, n * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  const i64 kbuf = mmap(0, arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(region) || abi::is_error(kbuf)) {
    println("cowtest: mmap failed ({} {})", region, kbuf);
    return 2;
  }
  auto* words = reinterpret_cast<volatile u64*>(region);
  auto* kwords = reinterpret_cast<volatile u64*>(kbuf);
  for (u64 j = 0; j < n; ++j) words[j * kWords] = derived::value(derived::cowtest_word, j);
  for (u64 i = 0; i < kWords; ++i) kwords[i] = kFill;
  println("cowtest: region {:#x} pages {} kernel-write page {:#x}", u64(region), n, u64(kbuf));

  const i64 pid = fork();
  if (pid < 0) {
    println("cowtest: fork failed: {}", abi::errno_name(abi::errno_of(pid)));
    return 1;
  }
  if (pid == 0) {
    (void)getpid();  // moment A
    for (u64 j = 0; j < n; ++j)
      if (mask >> j & 1) words[j * kWords] = derived::value(derived::cowtest_child_word, j);
    (void)yield();  // moment B
    abi::ProcInfo* info = reinterpret_cast<abi::ProcInfo*>(kbuf);
    const i64 got = syscall_raw(u64(abi::Syscall::ProcInfo), u64(kbuf), sizeof *info);
    (void)yield();  // moment C
    u64 bad = 0;
    for (u64 j = 0; j < n; ++j)
      bad += words[j * kWords] != ((mask >> j & 1) ? derived::value(derived::cowtest_child_word, j)
                                                   : derived::value(derived::cowtest_word, j));
    const bool kernel_ok = got == i64(sizeof *info) && info->pid == u64(getpid());
    println("cowtest: child wrote {} pages, {} wrong; the kernel's write {}{}", __builtin_popcountll(mask), bad,
            kernel_ok ? "landed" : "FAILED", proof_note(mask ^ (bad << 32) ^ (kernel_ok ? 0 : 1)));
    exit(bad == 0 && kernel_ok ? 0 : 1);
  }
  abi::ExitInfo info{};
  const i64 got = waitpid(pid, &info);
  u64 bad = 0;
  for (u64 j = 0; j < n; ++j) bad += words[j * kWords] != derived::value(derived::cowtest_word, j);
  for (u64 i = 0; i < kWords; ++i) bad += kwords[i] != kFill;
  for (u64 j = 0; j < n; ++j) words[j * kWords] = derived::value(derived::cowtest_kernel_word, j);
  (void)yield();  // moment D
  const bool child_ok = got == pid && info.how == u32(abi::Termination::Exited) && info.code == 0;
  println("cowtest: parent's words {} after the child's writes; child {}{}", bad == 0 ? "intact" : "CHANGED",
          child_ok ? "ok" : "FAILED", proof_note(n ^ (bad << 32) ^ (child_ok ? 0 : 1)));
  return bad == 0 && child_ok ? 0 : 1;
}
