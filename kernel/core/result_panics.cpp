// What a misused Result or Optional, or a failed MUST, does: a panic. Written once for the kernel
// and the host tests alike; what a panic then is differs: the kernel's panic_end() stops the
// machine (core/panic.cpp), the host tests' throws (kernel/tests/host_support.cpp).
#include "core/panic.hpp"
#include "lib/result.hpp"

namespace pagoda::detail {

void result_misuse(const char* what, const Error* error) {
  if (error != nullptr) panic("{}: it holds the error {}", what, *error);
  panic("{}", what);
}

void must_failed(const char* expression, const Error& error, const char* file, u32 line) {
  panic("MUST({}) failed at {}:{}: {}", expression, file, line, error);
}

}  // namespace pagoda::detail
