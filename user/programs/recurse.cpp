// recurse: asks the kernel to recurse argv[1] levels deep (the kernel_recurse test call): deep
// enough, the kernel runs off the bottom of this process's kernel stack into its guard page,
// and must say "kernel stack overflow" (lab 3). The kernel does not survive it, by design.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

int main(int, char**) {
  const u64 depth = arg_number(1, 1000);
  println("recurse: pid {} asks the kernel for {} levels", getpid(), depth);
  const i64 r = syscall_raw(u64(abi::Syscall::KernelRecurse), depth, abi::kKernelRecurseConfirm);
  println("recurse: pid {} came back from {} levels: {}", getpid(), depth, r);
  return 0;
}
