// tmfill: asks the kernel to fill a frame above its window while this process's root is live
// (lab 4's temp_maps_live test), then starts tmread, which reads the frame back while its own
// root is live, and stays alive while it does.
//
//   tmfill            the frame's pattern comes from the boot's token (TempFill's seed)
//   tmfill keep       fills the frame and ends without starting the reader: the kernel must
//                     free a frame nobody took when every process has ended
#include "user/lib/derived.hpp"
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

int main(int argc, char** args) {
  const u64 seed = derived::value(derived::tmfill_seed);  // the grader derives it too
  const i64 handle = call(abi::Syscall::TempFill, seed);
  println("tmfill: pid {} temp_fill -> {}", getpid(), handle);
  if (handle < 0) return 1;
  if (argc > 1 && StringView(args[1]) == "keep") return 0;
  char name[] = "tmread";
  char which[2] = {char('0' + handle), 0};
  char token_arg[80] = {};
  const StringView prefix = abi::kTokenArgPrefix, tok = token();
  usize k = 0;
  for (usize i = 0; i < prefix.size() && k + 1 < sizeof token_arg; ++i) token_arg[k++] = prefix[i];
  for (usize i = 0; i < tok.size() && k + 1 < sizeof token_arg; ++i) token_arg[k++] = tok[i];
  const char* const argv[] = {name, which, token_arg, nullptr};
  const i64 child = spawn(name, argv);
  println("tmfill: spawned tmread as pid {}", child);
  for (int i = 0; i < 20; ++i) (void)yield();  // alive while the reader runs
  return child > 0 ? 0 : 1;
}
