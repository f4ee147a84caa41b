#include "lib/console.hpp"

#include "core/arch.hpp"

namespace pagoda {
namespace {

class ConsoleSink final : public FormatSink {
 public:
  void put(StringView text) override { arch::console_write(text); }
};

constinit ConsoleSink g_console_sink;

}  // namespace

void console_write(StringView text) { arch::console_write(text); }

FormatSink& console_sink() { return g_console_sink; }

}  // namespace pagoda
