// badcall: makes system call argv[1] (a number the kernel does not know, chosen by the grader)
// with the six arguments argv[2..7] (also the grader's, so a tracer can tell which register each
// reached the kernel from; 1..6 when absent) and prints what came back: it must be -ENOSYS, and
// the process must go on (lab 3).
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

int main(int, char**) {
  const u64 number = arg_number(1, abi::kSyscallCount + 7);
  const i64 r = syscall_raw(number, arg_number(2, 1), arg_number(3, 2), arg_number(4, 3), arg_number(5, 4),
                            arg_number(6, 5), arg_number(7, 6));
  println("badcall: pid {} syscall {:#x} -> {} ({}) proof={:016x}", getpid(), number, r,
          abi::is_error(r) ? abi::errno_name(abi::errno_of(r)) : "no error", proof(token(), u64(r) ^ number));
  return 0;
}
