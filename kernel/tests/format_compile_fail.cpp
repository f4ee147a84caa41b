// Each CASE is one misuse of the formatter that must be rejected at compile time (see
// CMakeLists.txt: every case but 0 is expected to fail to compile).
#include "lib/format.hpp"

using namespace pagoda;

struct NotPrintable {};

void use(FormatSink& sink) {
#if CASE == 0
  format_to(sink, "{} {:x} {:>4} {:s} {{}}", 1, 2u, "s", StringView("v"));  // control: compiles
#elif CASE == 1
  format_to(sink, "{} {}", 1);  // more placeholders than arguments
#elif CASE == 2
  format_to(sink, "{}", 1, 2);  // more arguments than placeholders
#elif CASE == 3
  format_to(sink, "{:x}", "text");  // hex of a string
#elif CASE == 4
  format_to(sink, "{:s}", 42);  // string conversion of an integer
#elif CASE == 5
  format_to(sink, "{", 1);  // unbalanced brace
#elif CASE == 6
  format_to(sink, "{}", NotPrintable{});  // a type with no format()
#elif CASE == 7
  format_to(sink, "{:q}", 1);  // unknown conversion
#endif
}
