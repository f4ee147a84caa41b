// abiprobe: shows that the system-call ABI works end to end. It prints its arguments (the
// process-entry contract), then makes a call with a number the kernel must refuse and six
// distinct arguments (the register convention), and prints what came back.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

/// Six arguments whose registers a tracer can tell apart.
constexpr u64 kProbeArgs[6] = {0x1111'0000'0000'0001, 0x2222'0000'0000'0002, 0x3333'0000'0000'0003,
                               0x4444'0000'0000'0004, 0x5555'0000'0000'0005, 0x6666'0000'0000'0006};

}  // namespace

int main(int argc, char** argv) {
  println("abiprobe: argc {}", argc);
  for (int i = 0; i < argc; ++i) println("abiprobe: argv[{}] = \"{}\"", i, argv[i]);
  const u64 number = abi::kSyscallCount + 1;
  const i64 r = syscall_raw(number, kProbeArgs[0], kProbeArgs[1], kProbeArgs[2], kProbeArgs[3], kProbeArgs[4],
                            kProbeArgs[5]);
  println("abiprobe: syscall {} -> {} ({}) proof={:016x}", number, r,
          abi::is_error(r) ? abi::errno_name(abi::errno_of(r)) : "no error", proof(token(), u64(r)));
  return abi::is_error(r) && abi::errno_of(r) == abi::Errno::NoSys ? 0 : 1;
}
