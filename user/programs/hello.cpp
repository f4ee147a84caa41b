// hello: the first user program. It computes something the grader can check and prints it
// with a proof bound to the boot token, through the write system call.
//
// The value: the number of Collatz steps from n down to 1, where n = 1 + proof(token, "HE")
// mod 1,000,000, so it differs on every boot and cannot be printed without computing it.
#include "user/lib/derived.hpp"
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

/// Steps of n -> n/2 (even) or 3n+1 (odd) until n is 1.
u64 collatz_steps(u64 n) {
  u64 steps = 0;
  for (; n != 1; ++steps) n = n % 2 == 0 ? n / 2 : 3 * n + 1;
  return steps;
}

}  // namespace

int main(int, char**) {
  const u64 n = derived::value(derived::hello_n);
  const u64 steps = collatz_steps(n);
  println("hello: from user space on {}: collatz({}) takes {} steps{}", arch::kName, n, steps, proof_note(steps));
  return 0;
}
