// churn: many processes over one run, never many at once (lab 3: every exit gives its kernel
// stack slot back, so a run may make more processes than there are slots). A chain: link i
// sleeps a tick (the idle loop then frees link i - 1, which has ended), spawns link i + 1 and
// exits; the last link says so.
//
//   churn N [I]   link I (default 1) of a chain of N
//
// A spawn that fails ends the chain: "churn: link I of N: spawn failed: E".
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

int main(int, char**) {
  const u64 n = arg_number(1, 0), i = arg_number(2, 1);
  if (n == 0 || n > 10000 || i == 0 || i > n) {
    println("churn: usage: churn N [I]");
    return 2;
  }
  (void)sleep(1);  // nothing else is ready: the idle loop runs, and frees the link before this one
  if (i == n) {
    println("churn: link {} of {} ran, the last{}", i, n, proof_note(n));
    return 0;
  }
  char count[24] = {}, index[24] = {};
  BufferSink counted(count, sizeof count), indexed(index, sizeof index);
  format_to(counted, "{}", n);
  format_to(indexed, "{}", i + 1);
  char token_arg[80] = {};
  const StringView prefix = abi::kTokenArgPrefix, tok = token();
  usize k = 0;
  for (usize j = 0; j < prefix.size() && k + 1 < sizeof token_arg; ++j) token_arg[k++] = prefix[j];
  for (usize j = 0; j < tok.size() && k + 1 < sizeof token_arg; ++j) token_arg[k++] = tok[j];
  const char* const argv[] = {"churn", count, index, token_arg, nullptr};
  const i64 pid = spawn("churn", argv);
  if (pid < 0) {
    println("churn: link {} of {}: spawn failed: {} proof={:016x}", i, n, pid, proof(tok, u64(pid) ^ i));
    return 1;
  }
  return 0;
}
