// churn: many processes over one run, never many at once (lab 3: every exit gives its kernel
// stack slot back, so a run may make more processes than there are slots; and its frames back,
// so a run may touch more frames than the guest has). A chain: link i touches P pages of its own
// memory, sleeps a tick (the idle loop then frees link i - 1, which has ended; a spawn that runs
// short frees ended links too), spawns link i + 1 and exits; the last link says so. With `exec` (lab 6) every odd link execs the next one in its
// own process instead (exec frees the old program's pages), without sleeping.
//
//   churn N [I [P [exec]]]   link I (default 1) of a chain of N, each touching P pages (0..64)
//
// A spawn or exec that fails ends the chain: "churn: link I of N: spawn failed: E". The last
// link calls churn_last() (on a page of its own: the grader stops there, in user mode, and
// walks its root for the P pages).
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {
constexpr u64 kMostPages = 64;
/// The pages each link touches (the bss: an eager loader maps it all, a lazy one what is touched).
volatile u8 g_pages[kMostPages * arch::kPageSize];
}  // namespace

/// The last link, in user mode: @p n links, @p pages touched each (the grader's stop).
extern "C" [[gnu::noinline, gnu::used, gnu::aligned(arch::kPageSize)]] void churn_last(u64 n, u64 pages) {
  asm volatile("" ::"r"(n), "r"(pages) : "memory");
}

namespace {
/// The link's work (on a page of its own, after churn_last's: a breakpoint there single-steps only that page).
[[gnu::noinline, gnu::aligned(arch::kPageSize)]] int link() {
  const u64 n = arg_number(1, 0), i = arg_number(2, 1), pages = arg_number(3, 0);
  const bool exec_mode = arg(4) == "exec";
  if (n == 0 || n > 10000 || i == 0 || i > n || pages > kMostPages) {
    println("churn: usage: churn N [I [P [exec]]]");
    return 2;
  }
  for (u64 p = 0; p < pages; ++p) g_pages[p * arch::kPageSize] = u8(1 + p + i);
  const bool exec_next = exec_mode && i % 2 == 1;
  if (!exec_next) (void)sleep(1);  // nothing else is ready: the idle loop runs, and frees the link before this one
  if (i == n) {
    churn_last(n, pages);
    println("churn: link {} of {} ran, the last{}", i, n, proof_note(n));
    return 0;
  }
  char count[24] = {}, index[24] = {}, touched[24] = {};
  BufferSink counted(count, sizeof count), indexed(index, sizeof index), paged(touched, sizeof touched);
  format_to(counted, "{}", n);
  format_to(indexed, "{}", i + 1);
  format_to(paged, "{}", pages);
  char token_arg[80] = {};
  const StringView prefix = abi::kTokenArgPrefix, tok = token();
  usize k = 0;
  for (usize j = 0; j < prefix.size() && k + 1 < sizeof token_arg; ++j) token_arg[k++] = prefix[j];
  for (usize j = 0; j < tok.size() && k + 1 < sizeof token_arg; ++j) token_arg[k++] = tok[j];
  const char* const argv_next[] = {"churn", count, index, touched, exec_mode ? "exec" : "-", token_arg, nullptr};
  const i64 pid = exec_next ? exec("churn", argv_next) : spawn("churn", argv_next);
  if (pid < 0) {
    println("churn: link {} of {}: {} failed: {} proof={:016x}", i, n, exec_next ? "exec" : "spawn", pid,
            proof(tok, u64(pid) ^ i));
    return 1;
  }
  return 0;
}
}  // namespace

int main(int, char**) { return link(); }
