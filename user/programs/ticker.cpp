// ticker: prints argv[1] numbered lines, sleeping argv[2] ticks before each: a process that
// needs the CPU only now and then, beside others that never give it up (lab 3's preemption and
// probe tests: every one of its lines must arrive whole, and it must survive its siblings).
#include "user/lib/derived.hpp"
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {
constexpr u64 kTickerTag = derived::ticker_line.tag;
}

int main(int, char**) {
  const u64 lines = arg_number(1, 5), pause = arg_number(2, 2);
  const i64 pid = getpid();
  for (u64 i = 1; i <= lines; ++i) {
    sleep(pause);
    println("ticker: pid {} line {} of {}{}", pid, i, lines, proof_note(kTickerTag ^ (i << 16) ^ lines));
  }
  return 0;
}
