// The console's input for processes, the foreground process and Ctrl-C (see terminal.hpp).
#include "proc/terminal.hpp"

#include "core/arch.hpp"
#include "lib/abi.hpp"
#include "lib/console.hpp"
#include "proc/process.hpp"
#include "proc/scheduler.hpp"

namespace pagoda::proc {
namespace {

/// Bytes typed ahead that no process has read yet (more are dropped).
constexpr usize kInputSize = 1024;

char g_input[kInputSize];
usize g_head = 0;   ///< the oldest byte
usize g_count = 0;  ///< bytes waiting
bool g_started = false;
u32 g_foreground = 0;

/// The foreground process if it is still alive (else none any more).
Process* live_foreground() {
  Process* p = g_foreground != 0 ? find_process(g_foreground) : nullptr;
  if (p == nullptr || p->state == State::Zombie) {
    g_foreground = 0;
    return nullptr;
  }
  return p;
}

/// The interrupt character was typed: ends the foreground process and its descendants; false
/// when there is none (then the byte is input).
bool interrupt() {
  Process* p = live_foreground();
  if (p == nullptr) return false;
  console_write("^C\n");
  g_count = 0;  // what was typed ahead was meant for the program that is ending
  (void)kill(p->pid, abi::Termination::Interrupted, true);
  return true;
}

}  // namespace

void terminal_start() { g_started = true; }

void terminal_poll() {
  if (!g_started) return;
  for (int c; (c = arch::console_read_byte()) >= 0;) {
    if (char(c) == abi::kConsoleInterrupt && interrupt()) continue;
    if (g_count == kInputSize) continue;
    g_input[(g_head + g_count++) % kInputSize] = char(c == '\r' ? '\n' : c);
  }
  console_settle();
}

usize terminal_take(char* out, usize size) {
  usize k = 0;
  while (k < size && g_count > 0) {
    const char c = g_input[g_head];
    g_head = (g_head + 1) % kInputSize;
    --g_count;
    out[k++] = c;
    if (c == '\n') break;
  }
  return k;
}

u32 foreground() { return live_foreground() != nullptr ? g_foreground : 0; }

u32 set_foreground(u32 pid) {
  const u32 previous = foreground();
  g_foreground = pid;
  return previous;
}

}  // namespace pagoda::proc
