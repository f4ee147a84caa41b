/// @file held_line.hpp
/// @brief The console line a reader waits on, kept whole when someone else writes.
///
/// A program that reads the console has usually put something on the current line first: the
/// shell its prompt and what the user typed so far (it echoes the keys itself). When another
/// writer (a background job, the kernel) writes while the reader waits, that text would land
/// in the middle of the line, and the user would go on typing under someone else's output.
/// HeldLine remembers what the reader has on the current line; another writer's text starts on
/// a line of its own, and once the others have ended their lines and gone quiet (settle(), at
/// the next timer tick: a report of many lines is not cut by prompts) the reader's line is
/// written again:
///
///     $ ech                      the shell waits in read() with "$ ech" on the line
///     $ ech                      a background job writes "[3] done\n": the line is ended,
///     [3] done                   the job's text written,
///     $ ech                      and at the next tick the held line written again; the user
///                                types on
///
/// Writers are ids: a process id, 0 for the kernel. The console (core/console.cpp) sends every
/// byte of output through one HeldLine; read() holds the line while it waits. Pure: the output
/// goes to a sink, so that the host tests drive it (kernel/tests/held_line_test.cpp).
#pragma once

#include "lib/string_view.hpp"
#include "lib/types.hpp"

namespace pagoda {

class HeldLine {
 public:
  /// The longest line kept; a longer held line is not redrawn (the terminal has it, we do not).
  static constexpr usize kCapacity = 320;
  /// Where the text goes.
  using Out = void (*)(StringView text);

  constexpr explicit HeldLine(Out out) : out_(out) {}

  /// Writes @p text for @p writer (see the class comment).
  void write(u32 writer, StringView text) {
    if (reader_ == 0 || writer == reader_) {
      emit(text);
      return;
    }
    if (shown_ && line_size_ > 0) emit("\n");
    shown_ = false;
    emit(text);
  }

  /// The others are quiet: when their text has ended its line, the held line is written again.
  void settle() {
    if (reader_ == 0 || shown_ || line_size_ != 0) return;
    if (held_valid_ && held_size_ > 0) emit(StringView(held_, held_size_));
    shown_ = true;
  }

  /// @p reader waits for input: what is on the current line is its own, to be kept whole.
  void hold(u32 reader) {
    reader_ = reader;
    held_size_ = line_size_;
    held_valid_ = !line_overflow_;
    for (usize i = 0; i < line_size_; ++i) held_[i] = line_[i];
    shown_ = true;
  }

  /// @p reader no longer waits (it has its input, or it ended).
  void release(u32 reader) {
    if (reader_ == reader) reader_ = 0;
  }

  /// The reader holding the line (0: none).
  u32 reader() const { return reader_; }

  /// Where a HeldLine keeps its reader: the grader reads who waits for input in guest RAM (fact
  /// held_line_reader_offset, core/console.cpp).
  static constexpr usize reader_offset();

 private:
  /// Writes @p text and follows what the terminal's current line holds.
  void emit(StringView text) {
    if (text.empty()) return;
    out_(text);
    usize start = 0;
    for (usize i = text.size(); i > 0; --i)
      if (text[i - 1] == '\n') {
        start = i;
        line_size_ = 0;
        line_overflow_ = false;
        break;
      }
    for (usize i = start; i < text.size(); ++i) {
      if (line_size_ == kCapacity) {
        line_overflow_ = true;
        break;
      }
      line_[line_size_++] = text[i];
    }
  }

  Out out_;
  char line_[kCapacity] = {};  ///< the terminal's current line (since the last '\n')
  usize line_size_ = 0;
  bool line_overflow_ = false;  ///< it is longer than kCapacity
  u32 reader_ = 0;              ///< who holds the line (0: nobody)
  char held_[kCapacity] = {};   ///< the reader's line
  usize held_size_ = 0;
  bool held_valid_ = false;  ///< held_ is the whole line
  bool shown_ = false;       ///< the terminal's current line is the held line
};

constexpr usize HeldLine::reader_offset() { return offsetof(HeldLine, reader_); }

}  // namespace pagoda
