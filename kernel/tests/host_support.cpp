#include "host_support.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/arch.hpp"
#include "core/panic.hpp"
#include "core/cpu.hpp"
#include "core/shootdown.hpp"

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
void console_lock() {}
void console_unlock() {}

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

namespace {

// Every host test has a time limit that fails it, however it is run (./pagoda test, ctest, the
// binary itself): a loop that never ends (a merge that never finishes) must not hang the run.
// The limit is CPU time, which a busy machine does not stretch (the dearest test uses about 1 s
// of it), with a wall-clock limit for a test that waits without computing, scaled by
// PAGODA_SPEED_FACTOR when ./pagoda test exported it (the machine's speed and load: only the
// wall clock is slowed by the load). Reached, it names the test and ends the binary (status
// 124): nothing can stop a test that never returns and go on with the next.
constexpr double kCpuSeconds = 20;
constexpr double kWallSeconds = 300;

char g_cpu_timeout[640];  // what time_out() says, written before the test starts
char g_wall_timeout[640];

void time_out(int sig) {
  const char* text = sig == SIGXCPU ? g_cpu_timeout : g_wall_timeout;
  for (std::size_t n = std::strlen(text); n > 0;) {
    const ssize_t k = write(2, text, n);
    if (k <= 0) break;
    text += k;
    n -= static_cast<std::size_t>(k);
  }
  _exit(124);
}

class Watchdog final : public testing::EmptyTestEventListener {
 public:
  void OnTestStart(const testing::TestInfo& test) override {
    const char* factor = std::getenv("PAGODA_SPEED_FACTOR");
    const double scale = factor != nullptr && std::atof(factor) > 1 ? std::atof(factor) : 1;
    const char* why = "(its time limit, kernel/tests/host_support.cpp): a loop that never ends?";
    std::snprintf(g_cpu_timeout, sizeof g_cpu_timeout, "\n[ TIMEOUT  ] %s.%s used more than %.0f s of CPU time %s\n",
                  test.test_suite_name(), test.name(), kCpuSeconds, why);
    std::snprintf(g_wall_timeout, sizeof g_wall_timeout, "\n[ TIMEOUT  ] %s.%s ran for more than %.0f s %s\n",
                  test.test_suite_name(), test.name(), kWallSeconds * scale, why);
    signal(SIGXCPU, time_out);
    signal(SIGALRM, time_out);
    rusage used{};
    rlimit cpu{};
    if (getrusage(RUSAGE_SELF, &used) == 0 && getrlimit(RLIMIT_CPU, &cpu) == 0) {
      const rlim_t limit = static_cast<rlim_t>(used.ru_utime.tv_sec + used.ru_stime.tv_sec + 1 + kCpuSeconds);
      cpu.rlim_cur = cpu.rlim_max == RLIM_INFINITY || limit < cpu.rlim_max ? limit : cpu.rlim_max;
      setrlimit(RLIMIT_CPU, &cpu);
    }
    alarm(static_cast<unsigned>(kWallSeconds * scale));
  }
  void OnTestEnd(const testing::TestInfo&) override { alarm(0); }
};

// (Appended before main(): gtest_main's RUN_ALL_TESTS() reports to it.)
[[maybe_unused]] const bool g_watchdog = (testing::UnitTest::GetInstance()->listeners().Append(new Watchdog), true);

}  // namespace

// The host plays one CPU at a time (host::g_cpu, 0 unless a test says), and a shootdown reaches
// no other CPU: a test that wants to see it sets host::g_shootdown.
namespace host {
u32 g_cpu = 0;
u32 g_cpus_online = 1;
u32 g_local_flushes[kMaxCpus] = {};
std::function<void(u32, const uptr*, usize)> g_shootdown;
}  // namespace host
namespace arch {
u32 cpu_id() { return host::g_cpu; }
void invalidate_all_local() { ++host::g_local_flushes[host::g_cpu]; }
}  // namespace arch
u32 cpus_online() { return host::g_cpus_online; }
namespace {
void (*g_leave_space)(uptr) = nullptr;
}  // namespace
void cpu_set_leave_space(void (*leave)(uptr)) { g_leave_space = leave; }
// The host plays the target for the moment of the request (a LeaveSpace only).
u64 cpu_request(u32 target, MailboxOp op, uptr address) {
  if (op != MailboxOp::LeaveSpace || g_leave_space == nullptr) return 0;
  const u32 me = host::g_cpu;
  host::g_cpu = target;
  g_leave_space(address);
  host::g_cpu = me;
  return 0;
}
void shootdown(u32 targets, const uptr* pages, usize count) {
  if (host::g_shootdown) host::g_shootdown(targets, pages, count);
}

}  // namespace pagoda
