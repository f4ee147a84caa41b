// The kernel's console (declared in lib/console.hpp) over the arch's console driver. It lives in
// core/ so that lib/ stays free of anything above it; host tests supply their own (a string).
// Every byte of output goes through one HeldLine (core/held_line.hpp): a reader waiting in
// read() keeps its prompt and what it echoed on the last line whoever else writes. One CPU at a
// time writes (console_lock(): a lock its holder may take again).
#include "lib/console.hpp"

#include "core/arch.hpp"
#include "core/cpu.hpp"
#include "core/held_line.hpp"
#include "lib/facts.hpp"

namespace pagoda {
namespace {

void to_driver(StringView text) { arch::console_write(text); }

constinit HeldLine g_line(to_driver);
// Who waits for input (g_line's reader): once the grader can type no more, that process never
// runs again (grade/pagoda_grade/idle.py).
PAGODA_FACT(held_line_reader_offset, HeldLine::reader_offset())

/// The CPU holding the console (its slot offset + 1; 0: none) and how many times it took it.
usize g_owner = 0;
usize g_depth = 0;

usize me() { return arch::this_cpu_slot() + 1; }

/// console_lock() for the length of one write.
class [[nodiscard]] Held {
 public:
  Held() { console_lock(); }
  ~Held() { console_unlock(); }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;
};

class ConsoleSink final : public FormatSink {
 public:
  void put(StringView text) override {
    Held held;
    g_line.write(kKernelWriter, text);
  }
};

constinit ConsoleSink g_console_sink;

}  // namespace

void console_lock() {
  const usize cpu = me();
  if (__atomic_load_n(&g_owner, __ATOMIC_RELAXED) == cpu) {
    ++g_depth;
    return;
  }
  usize free = 0;
  while (!__atomic_compare_exchange_n(&g_owner, &free, cpu, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
    free = 0;
    arch::cpu_relax();
  }
  g_depth = 1;
}

void console_unlock() {
  if (--g_depth == 0) __atomic_store_n(&g_owner, usize{0}, __ATOMIC_RELEASE);
}

void console_take_over() {
  __atomic_store_n(&g_owner, me(), __ATOMIC_RELEASE);
  g_depth = 1;
}

void console_write(StringView text) {
  Held held;
  g_line.write(kKernelWriter, text);
}

void console_write_from(u32 writer, StringView text) {
  Held held;
  g_line.write(writer, text);
}

void console_hold_line(u32 reader) {
  Held held;
  g_line.hold(reader);
}

void console_release_line(u32 reader) {
  Held held;
  g_line.release(reader);
}

void console_settle() {
  Held held;
  g_line.settle();
}

FormatSink& console_sink() { return g_console_sink; }

}  // namespace pagoda
