// churn: many processes over one run, one at a time (lab 3: every exit gives its kernel stack
// slot back, so a run may make more processes than there are slots).
//
//   churn N      spawns churn (as "churn child") N times, each after the last one was reaped
//   churn child  exits at once with a code from its pid and the token
//
// A spawn that fails ends the loop: "churn: spawn I of N failed: E". Last line: how many
// children ran and were reaped with the code due.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

int child_code(i64 pid) { return int(proof(token(), 0x4348'0000 + u64(pid)) % 100); }

}  // namespace

int main(int, char**) {
  if (arg(1) == "child") return child_code(getpid());
  const u64 n = arg_number(1, 0);
  if (n == 0 || n > 10000) {
    println("churn: usage: churn N | churn child");
    return 2;
  }
  char token_arg[80] = {};
  const StringView prefix = abi::kTokenArgPrefix, tok = token();
  usize k = 0;
  for (usize i = 0; i < prefix.size() && k + 1 < sizeof token_arg; ++i) token_arg[k++] = prefix[i];
  for (usize i = 0; i < tok.size() && k + 1 < sizeof token_arg; ++i) token_arg[k++] = tok[i];
  const char* const argv[] = {"churn", "child", token_arg, nullptr};
  u64 reaped = 0;
  for (u64 i = 1; i <= n; ++i) {
    const i64 pid = spawn("churn", argv);
    if (pid < 0) {
      println("churn: spawn {} of {} failed: {} proof={:016x}", i, n, pid, proof(token(), u64(pid) ^ i));
      break;
    }
    abi::ExitInfo info{};
    const i64 got = waitpid(pid, &info, 0);
    if (got != pid || info.how != u32(abi::Termination::Exited) || info.code != child_code(pid)) {
      println("churn: child {} (pid {}): wait returned {}, how {}, code {} (due {})", i, pid, got, info.how, info.code,
              child_code(pid));
      break;
    }
    ++reaped;
  }
  println("churn: {} of {} children ran and were reaped{}", reaped, n, proof_note(reaped));
  return reaped == n ? 0 : 1;
}
