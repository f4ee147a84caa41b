// nullcall: the cost of a system call that does nothing (getpid), for `./pagoda bench syscall`.
// It times argv[1] getpid calls, and the same loop without the call, with the cycle counter,
// which counts guest instructions under QEMU's -icount shift=0; the difference per call is the
// round trip user -> kernel -> user.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

[[gnu::noinline]] u64 time_calls(u64 n, bool call) {
  const u64 start = arch::cycle_counter();
  for (u64 i = 0; i < n; ++i) {
    if (call) (void)getpid();
    else asm volatile("" ::: "memory");
  }
  return arch::cycle_counter() - start;
}

}  // namespace

int main(int, char**) {
  const u64 n = arg_number(1, 100'000);
  (void)time_calls(n / 10 + 1, true);  // warm up
  const u64 with = time_calls(n, true), without = time_calls(n, false);
  println("nullcall: {} calls: {} counts with the call, {} without", n, with, without);
  return 0;
}
