// spin: counts in memory and never makes a system call while it counts, so only the timer
// interrupt can take the CPU from it (lab 3's preemption test). It stops when spin_stop becomes
// non-zero (the grader writes it from outside, through the process's own root) or when it has
// counted to argv[1]; then it prints its count. With argv[2] (N, not 0) it sleeps N ticks after
// every 2^16 counts (lab 8's lazy TLB: its CPU idles with spin's root still loaded). With argv[3]
// "fork" it forks first, and parent and child count, each in its own copy of the count's page,
// running the same code from the frames they share (lab 8's eviction of a shared frame).
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

/// The count so far and the stop request: the grader reads and writes them in guest RAM, at
/// the addresses this ELF's symbols give, through this process's page tables.
extern "C" {
volatile u64 spin_count = 0;
volatile u64 spin_stop = 0;
}

int main(int, char**) {
  const u64 limit = arg_number(1, 50'000'000), nap = arg_number(2, 0);
  if (arg(3) == "fork" && abi::is_error(fork())) return 1;
  while (spin_stop == 0 && spin_count < limit) {
    spin_count = spin_count + 1;
    if (nap != 0 && (spin_count & 0xffff) == 0) sleep(nap);
  }
  const u64 n = spin_count;
  println("spin: pid {} counted to {}{}", getpid(), n, proof_note(n));
  return 0;
}
