// echo: prints its arguments (lab 6: what exec put on the new stack).
//
//   echo ARG...        prints "ARG1 ARG2 ...", one line
//
// Under the grader (it has a boot token, grading()) the line is the grader's instead:
// "echo: argc N: ARG1 ARG2 ... proof=P", P = proof(token, sum of the lengths and bytes of the
// arguments after argv[0], token= ones left out): argc and the proof show that exec passed
// exactly these arguments.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

int main(int, char**) {
  // One write for the whole line, so that it is not interleaved with other processes' output.
  char line[abi::kMaxArgBytes + 64];
  usize used = grading() ? format_buffer(line, sizeof line, "echo: argc {}:", argc()).size() : 0;
  u64 digest = 0;
  bool first = true;
  for (int i = 1; i < argc(); ++i) {
    const StringView a = arg(i);
    if (a.starts_with(abi::kTokenArgPrefix)) continue;
    if (first && !grading()) used += format_buffer(line + used, sizeof line - used, "{}", a).size();
    else used += format_buffer(line + used, sizeof line - used, " {}", a).size();
    first = false;
    digest = digest * 31 + a.size();
    for (usize k = 0; k < a.size(); ++k) digest = digest * 131 + u8(a[k]);
  }
  println("{}{}", StringView(line, used), proof_note(digest));
  return 0;
}
