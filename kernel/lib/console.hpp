/// @file console.hpp
/// @brief Kernel console output: print() and println() over the arch console driver.
///
/// Declared here so that every layer can print; defined above lib/ (kernel/core/console.cpp
/// writes to the arch's serial port; the host tests capture into a string), so that nothing in
/// lib/ depends on the layers above it.
#pragma once

#include "lib/format.hpp"

namespace pagoda {

/// Writes raw text to the console (the arch's serial port).
void console_write(StringView text);

/// The console as a FormatSink.
FormatSink& console_sink();

/// Formats to the console. The format is checked against the arguments at compile time.
template <class... Args> void print(FormatString<Args...> format, const Args&... args) {
  format_to(console_sink(), format, args...);
}

/// print() followed by a newline.
template <class... Args> void println(FormatString<Args...> format, const Args&... args) {
  format_to(console_sink(), format, args...);
  console_write("\n");
}

}  // namespace pagoda
