#include "host_support.hpp"

#include "core/panic.hpp"

namespace pagoda {
namespace {

std::string g_console;
std::string g_before_panic;

class CaptureSink final : public FormatSink {
 public:
  void put(StringView text) override { g_console.append(text.data(), text.size()); }
};

CaptureSink g_sink;

}  // namespace

void console_write(StringView text) { g_console.append(text.data(), text.size()); }
FormatSink& console_sink() { return g_sink; }

void panic_begin() {
  g_before_panic.swap(g_console);
  g_console.clear();
}

void panic_end() { throw host::HostPanic(host::take_console()); }

namespace host {
std::string output_before_panic() { return g_before_panic; }

std::string take_console() {
  std::string out;
  out.swap(g_console);
  return out;
}
}  // namespace host

}  // namespace pagoda
