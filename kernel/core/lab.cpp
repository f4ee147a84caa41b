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

void lab_todo(const Error& error, const char* stand_in) {
  if (error.message == nullptr) {
    println("LAB TODO: {}", error);
    return;
  }
  for (usize i = 0; i < g_printed_count; ++i)
    if (g_printed[i] == error.message) return;
  if (g_printed_count < kRemembered) g_printed[g_printed_count++] = error.message;
  if (stand_in == nullptr) println("LAB TODO: {}", error.message);
  else println("LAB TODO: {} (meanwhile: {})", error.message, stand_in);
}

Error lab_not_done(const char* message, const char* made_in, u32 made_at) {
  const Error error(Error::NotImplemented, message, made_in, made_at);
  lab_todo(error);
  return error;
}

}  // namespace pagoda
