/// @file last_failure.hpp
/// @brief The kernel's last failure line, printed and kept for the debugger.
///
/// A process that could not start, a process the kernel killed, a fork or an exec that failed:
/// the kernel prints one line saying why, and keeps its text in pagoda_last_failure (with a count
/// in pagoda_failure_count), so that fault-why (tools/gdb) reads the same words at a stop after
/// the line has scrolled by, or at a clean exit where a test failed:
///
///     FailureLine line;                       // a new line: the kept text starts empty
///     format_to(line, "run: cannot start {}: {}", name, error);
///                                             // the destructor ends the line
#pragma once

#include "lib/format.hpp"
#include "lib/types.hpp"

extern "C" {
/// The text of the last failure line (NUL-terminated, cut at its size). For GDB.
extern char pagoda_last_failure[];
/// How many failure lines the kernel has written since boot. For GDB.
extern pagoda::u64 pagoda_failure_count;
}

namespace pagoda {

/// One failure line: what is formatted to it goes to the console and into pagoda_last_failure.
class FailureLine final : public FormatSink {
 public:
  /// The size of pagoda_last_failure (the console gets the whole line).
  static constexpr usize kKept = 512;

  /// A new line; @p keep false prints it without keeping it (a refusal the caller asked for on
  /// purpose, such as a damaged image's: not a failure fault-why should name).
  explicit FailureLine(bool keep = true);
  ~FailureLine();
  FailureLine(const FailureLine&) = delete;
  FailureLine& operator=(const FailureLine&) = delete;

  void put(StringView text) override;

 private:
  usize kept_ = 0;
  bool keep_;
};

}  // namespace pagoda
