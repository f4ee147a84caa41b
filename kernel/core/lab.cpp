#include "core/lab.hpp"

#include "lib/console.hpp"

namespace pagoda {
namespace {

/// Messages already printed (skeletons can be reached in loops); compared by address, which is
/// enough for the string literals skeletons pass.
constexpr usize kRemembered = 16;
const char* g_printed[kRemembered];
usize g_printed_count = 0;

}  // namespace

Error lab_not_done(StringView message) {
  for (usize i = 0; i < g_printed_count; ++i)
    if (g_printed[i] == message.data()) return Error::NotImplemented;
  if (g_printed_count < kRemembered) g_printed[g_printed_count++] = message.data();
  println("LAB TODO: {}", message);
  return Error::NotImplemented;
}

}  // namespace pagoda
