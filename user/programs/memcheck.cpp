// memcheck: writes its value (argv[1]) at a fixed user address, gives the CPU away a few times,
// and checks that the value is still its own. Two of them at once use the same address in two
// roots: each must see its own value (lab 3), because each root maps that address to a frame
// of its own.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

/// The same virtual address in every memcheck process (this ELF's symbol tells the grader).
extern "C" volatile u64 memcheck_value = 0;

int main(int, char**) {
  const u64 mine = arg_number(1, 0x6d656d);
  memcheck_value = mine;
  for (int i = 0; i < 4; ++i) yield();
  const u64 seen = memcheck_value;
  println("memcheck: pid {} wrote {:#x} at {:#x}, reads {:#x} proof={:016x}", getpid(), mine,
          reinterpret_cast<uptr>(&memcheck_value), seen, proof(token(), seen));
  return seen == mine ? 0 : 1;
}
