/// @file console.hpp
/// @brief Kernel console output: print() and println() over the arch console driver.
///
/// Declared here so that every layer can print; defined above lib/ (kernel/core/console.cpp
/// writes to the arch's serial port; the host tests capture into a string), so that nothing in
/// lib/ depends on the layers above it.
#pragma once

#include "lib/format.hpp"

namespace pagoda {

/// Writes raw text to the console (the arch's serial port), as the kernel.
void console_write(StringView text);

/// Who writes: a process id, or the kernel.
inline constexpr u32 kKernelWriter = 0;
/// Writes raw text to the console for @p writer (a process's write()).
void console_write_from(u32 writer, StringView text);
/// @p reader (a process id) waits for console input: what is on the console's current line is
/// its own (a prompt, its echo), written again below anything others write meanwhile
/// (core/held_line.hpp). console_release_line() when it has its input or ends.
void console_hold_line(u32 reader);
void console_release_line(u32 reader);
/// Writes the held line again if others wrote since and have ended their lines (at each tick).
void console_settle();

/// The console as a FormatSink.
FormatSink& console_sink();

/// Holds the console for this CPU while one print() or println() writes its pieces, so that
/// another CPU's output cannot cut into them; reentrant on its CPU (an interrupt's print, a panic
/// in the middle of a line). console_unlock() once per console_lock(). (core/console.cpp; the
/// host tests hold nothing.)
void console_lock();
void console_unlock();

/// Formats to the console. The format is checked against the arguments at compile time.
template <class... Args> void print(FormatString<Args...> format, const Args&... args) {
  console_lock();
  format_to(console_sink(), format, args...);
  console_unlock();
}

/// print() followed by a newline.
template <class... Args> void println(FormatString<Args...> format, const Args&... args) {
  console_lock();
  format_to(console_sink(), format, args...);
  console_write("\n");
  console_unlock();
}

}  // namespace pagoda
