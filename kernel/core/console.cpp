// The kernel's console (declared in lib/console.hpp) over the arch's console driver. It lives in
// core/ so that lib/ stays free of anything above it; host tests supply their own (a string).
// Every byte of output goes through one HeldLine (core/held_line.hpp): a reader waiting in
// read() keeps its prompt and what it echoed on the last line whoever else writes.
#include "lib/console.hpp"

#include "core/arch.hpp"
#include "core/held_line.hpp"
#include "lib/facts.hpp"

namespace pagoda {
namespace {

void to_driver(StringView text) { arch::console_write(text); }

constinit HeldLine g_line(to_driver);
// Who waits for input (g_line's reader): once the grader can type no more, that process never
// runs again (grade/pagoda_grade/idle.py).
PAGODA_FACT(held_line_reader_offset, HeldLine::reader_offset())

class ConsoleSink final : public FormatSink {
 public:
  void put(StringView text) override { g_line.write(kKernelWriter, text); }
};

constinit ConsoleSink g_console_sink;

}  // namespace

void console_write(StringView text) { g_line.write(kKernelWriter, text); }

void console_write_from(u32 writer, StringView text) { g_line.write(writer, text); }

void console_hold_line(u32 reader) { g_line.hold(reader); }

void console_release_line(u32 reader) { g_line.release(reader); }

void console_settle() { g_line.settle(); }

FormatSink& console_sink() { return g_console_sink; }

}  // namespace pagoda
