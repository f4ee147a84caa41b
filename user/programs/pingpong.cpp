// pingpong: the cost of a context switch, for `./pagoda bench switch`. Run two: each yields
// argv[1] times; while both run, every yield switches to the other process. The first to start
// times its loop with the cycle counter (guest instructions under -icount shift=0): 2 x N
// yields, each a system call and a switch of roots and stacks.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

int main(int, char**) {
  const u64 n = arg_number(1, 20'000);
  (void)yield();  // both are running from here on
  const u64 start = arch::cycle_counter();
  for (u64 i = 0; i < n; ++i) (void)yield();
  const u64 elapsed = arch::cycle_counter() - start;
  println("pingpong: pid {} {} yields: {} counts", getpid(), n, elapsed);
  return 0;
}
