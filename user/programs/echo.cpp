// echo: prints its arguments (lab 6: what exec put on the new stack), with a proof over them.
//
//   echo ARG...        prints "echo: argc N: ARG1 ARG2 ... proof=P", P = proof(token, sum of
//                      the lengths and bytes of the arguments after argv[0], token= ones left out)
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

int main(int, char**) {
  // One write for the whole line, so that it is not interleaved with other processes' output.
  char line[abi::kMaxArgBytes + 64];
  usize used = format_buffer(line, sizeof line, "echo: argc {}:", argc()).size();
  u64 digest = 0;
  for (int i = 1; i < argc(); ++i) {
    const StringView a = arg(i);
    if (a.starts_with(abi::kTokenArgPrefix)) continue;
    used += format_buffer(line + used, sizeof line - used, " {}", a).size();
    digest = digest * 31 + a.size();
    for (usize k = 0; k < a.size(); ++k) digest = digest * 131 + u8(a[k]);
  }
  println("{} proof={:016x}", StringView(line, used), proof(token(), digest));
  return 0;
}
