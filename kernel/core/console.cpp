// The kernel's console (declared in lib/console.hpp) over the arch's console driver. It lives in
// core/ so that lib/ stays free of anything above it; host tests supply their own (a string).
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
