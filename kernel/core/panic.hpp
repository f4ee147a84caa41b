/// @file panic.hpp
/// @brief panic(): report an unrecoverable state, print a backtrace and stop with a failure.
#pragma once

#include "lib/console.hpp"

namespace pagoda {

/// Prints "PANIC: <message>" and a backtrace, then shuts the machine down with a failure
/// status. Safe to reach from an exception handler; a panic inside a panic stops at once.
template <class... Args> [[noreturn]] void panic(FormatString<Args...> format, const Args&... args);

/// @cond internal
/// The parts of panic() that do not depend on the argument types.
void panic_begin();
[[noreturn]] void panic_end();
/// @endcond

template <class... Args> [[noreturn]] void panic(FormatString<Args...> format, const Args&... args) {
  panic_begin();
  print("PANIC: ");
  println(format, args...);
  panic_end();
}

/// Checks an invariant; on failure panics naming the expression and the source line.
#define PAGODA_ASSERT(cond)                                                                   \
  do {                                                                                        \
    if (!(cond)) ::pagoda::panic("assertion failed: {} at {}:{}", #cond, __FILE__, __LINE__); \
  } while (0)

}  // namespace pagoda
