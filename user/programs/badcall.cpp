// badcall: makes system call argv[1] (a number the kernel does not know, chosen by the grader)
// and prints what came back: it must be -ENOSYS, and the process must go on (lab 3).
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

int main(int, char**) {
  const u64 number = arg_number(1, abi::kSyscallCount + 7);
  const i64 r = syscall_raw(number, 1, 2, 3, 4, 5, 6);
  println("badcall: pid {} syscall {:#x} -> {} ({}) proof={:016x}", getpid(), number, r,
          abi::is_error(r) ? abi::errno_name(abi::errno_of(r)) : "no error", proof(token(), u64(r) ^ number));
  return 0;
}
