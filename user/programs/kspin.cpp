// kspin: waits in the kernel, interrupts on, for argv[1] timer ticks (the kernel_spin test
// call), while other processes are ready (lab 3: a tick that interrupts kernel code must not
// switch; only a tick from user mode ends a turn). Prints what the call returned.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

int main(int, char**) {
  const u64 n = arg_number(1, 4);
  const i64 r = syscall_raw(u64(abi::Syscall::KernelSpin), n, abi::kKernelSpinConfirm);
  println("kspin: pid {} waited {} ticks in the kernel -> {}{}", getpid(), n, r, proof_note(u64(r)));
  return r >= i64(n) ? 0 : 1;
}
