// The kernel's last failure line (see last_failure.hpp).
#include "core/last_failure.hpp"

#include "lib/console.hpp"

extern "C" {
char pagoda_last_failure[pagoda::FailureLine::kKept];
pagoda::u64 pagoda_failure_count = 0;
}

namespace pagoda {

FailureLine::FailureLine(bool keep) : keep_(keep) {
  if (!keep_) return;
  pagoda_last_failure[0] = '\0';
  ++pagoda_failure_count;
}

FailureLine::~FailureLine() { console_sink().put("\n"); }

void FailureLine::put(StringView text) {
  console_sink().put(text);
  if (!keep_) return;
  for (usize i = 0; i < text.size() && kept_ + 1 < kKept; ++i) pagoda_last_failure[kept_++] = text[i];
  pagoda_last_failure[kept_] = '\0';
}

}  // namespace pagoda
