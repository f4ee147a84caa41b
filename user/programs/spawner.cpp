// spawner: starts another program while it runs itself (lab 4: the kernel loads the child into
// a root that is not the live one, through temporary mappings), then keeps running until the
// child has had its turn.
//
//   spawner PROGRAM [N]   spawns PROGRAM (with this boot's token) N times (default 1)
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

int main(int, char**) {
  const StringView program = arg(1);
  const u64 n = arg_number(2, 1);
  if (program.empty() || program.size() > abi::kMaxProgramName) {
    println("spawner: usage: spawner PROGRAM [N]");
    return 2;
  }
  char name[abi::kMaxProgramName + 1] = {};
  for (usize i = 0; i < program.size(); ++i) name[i] = program[i];
  char token_arg[80] = {};
  const StringView prefix = abi::kTokenArgPrefix, tok = token();
  usize k = 0;
  for (usize i = 0; i < prefix.size() && k + 1 < sizeof token_arg; ++i) token_arg[k++] = prefix[i];
  for (usize i = 0; i < tok.size() && k + 1 < sizeof token_arg; ++i) token_arg[k++] = tok[i];
  const char* const argv[] = {name, token_arg, nullptr};
  u64 started = 0;
  for (u64 i = 0; i < n; ++i) {
    const i64 pid = spawn(name, argv);
    println("spawner: pid {} spawned {} as pid {}", getpid(), program, pid);
    if (pid > 0) ++started;
  }
  for (int i = 0; i < 20; ++i) (void)yield();  // still alive while the children run
  println("spawner: {} of {} started{}", started, n, proof_note(started));
  return started == n ? 0 : 1;
}
