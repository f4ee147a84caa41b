// forkbench: what fork costs (lab 6, ./pagoda bench fork), in the guest's cycle counter, which
// counts instructions under QEMU's -icount shift=0.
//
//   forkbench MIB      touches MIB MiB of anonymous memory, then counts one fork() in the parent
//                      (the call and the whole copy or share of the address space), reaps the
//                      child (which exits at once); then maps and touches a second MIB MiB area
//                      and counts a tight loop copying the first into it word by word: the floor
//                      an eager fork is compared with (the same pages; the second area is made
//                      after the fork, so that the fork copies only the first). Prints one line.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

[[gnu::noinline]] void copy_words(volatile u64* to, const volatile u64* from, u64 words) {
  for (u64 i = 0; i < words; ++i) to[i] = from[i];
}

}  // namespace

int main(int, char**) {
  const u64 mib = arg_number(1, 1);
  const u64 bytes = mib << 20;
  const i64 a = mmap(0, bytes, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(a)) {
    println("forkbench: mmap of {} MiB failed", mib);
    return 2;
  }
  auto* from = reinterpret_cast<volatile u64*>(a);
  for (u64 off = 0; off < bytes / 8; off += 512) from[off] = off;

  const u64 start = arch::cycle_counter();
  const i64 pid = fork();
  if (pid == 0) exit(0);
  const u64 forked = arch::cycle_counter() - start;
  if (pid < 0) {
    println("forkbench: fork failed: {}", abi::errno_name(abi::errno_of(pid)));
    return 1;
  }
  abi::ExitInfo info{};
  (void)waitpid(pid, &info);
  const i64 b = mmap(0, bytes, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(b)) {
    println("forkbench: mmap of a second {} MiB failed", mib);
    return 2;
  }
  auto* to = reinterpret_cast<volatile u64*>(b);
  for (u64 off = 0; off < bytes / 8; off += 512) to[off] = 0;
  const u64 copy_start = arch::cycle_counter();
  copy_words(to, from, bytes / 8);
  const u64 copied = arch::cycle_counter() - copy_start;
  println("forkbench: {} MiB: fork {} counts, copy loop {} counts", mib, forked, copied);
  return 0;
}
