// swapkeep: pages written back and kept, written again or not, evicted, unmapped while out, and
// left behind by exec (lab 7).
//
//   swapkeep PAGES MASK [exec]
//
// maps PAGES pages (at most 64) and writes every word: word i of page j holds
// abi::swap_pattern(seed, j, i, 0), seed = proof(token, 0x6b0). Then:
//   1. evict(page, kEvictKeep) for every page: each is written back and stays mapped, clean;
//      yield() (moment A);
//   2. writes version 1 into the pages whose bit is set in MASK; yield() (moment B: those are
//      dirty again, the others still clean);
//   3. evicts every page (plain evict): only the pages of MASK need a write (when nothing else
//      evicted them meanwhile: run it with room for its pages, PAGES + 16 frames); yield()
//      (moment C);
//      at the shell it prints how many slots the kernel says it wrote (swap_info: believed);
//   4. reads every page back and checks it (version 1 in MASK, 0 elsewhere);
//   5. evicts every page again, then munmaps the first half of them while they are out (their
//      slots are let go); yield() (moment D);
//   6. with "exec", execs echo (its line: "swapkeep: exec with N pages out"): the second half's
//      slots go with the old address space; without it, prints
//        swapkeep: 16 pages, 5 written again, 0 wrong proof=...
//      (the proof: of the wrong words << 16 ^ MASK's popcount) and exits 0 (1 when a word was
//      wrong, 2 when it cannot start: no swap, evict says ENOSYS).
#include "user/lib/derived.hpp"
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

constexpr u64 kWords = arch::kPageSize / 8;

u64 seed() { return derived::value(derived::swapkeep_seed); }

bool evict_all(volatile u64* base, u64 first, u64 count, u64 flags) {
  for (u64 j = first; j < first + count; ++j) {
    const i64 r = evict(const_cast<const u64*>(base + j * kWords), flags);
    if (abi::is_error(r)) {
      println("swapkeep: evict of page {} failed: {}", j, abi::errno_name(abi::errno_of(r)));
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int, char**) {
  const u64 pages = arg_number(1, 16);
  const u64 mask = arg_number(2, 0x5);
  // (the grader's token= argument follows the program's own: it is no mode)
  const StringView mode = arg(3).starts_with(abi::kTokenArgPrefix) ? StringView() : arg(3);
  const bool then_exec = mode == "exec";
  if (pages < 2 || pages > 64 || (pages < 64 && mask >> pages != 0) || (!then_exec && !mode.empty())) {
    println("swapkeep: usage: swapkeep PAGES MASK [exec] (2 <= PAGES <= 64, MASK below 2^PAGES)");
    return 2;
  }
  const i64 region = mmap(0, pages * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(region)) {
    println("swapkeep: mmap failed: {}", abi::errno_name(abi::errno_of(region)));
    return 2;
  }
  auto* base = reinterpret_cast<volatile u64*>(region);
  for (u64 j = 0; j < pages; ++j)
    for (u64 i = 0; i < kWords; ++i) base[j * kWords + i] = abi::swap_pattern(seed(), j, i, 0);
  if (!evict_all(base, 0, pages, abi::kEvictKeep)) return 2;
  (void)yield();  // moment A
  for (u64 j = 0; j < pages; ++j)
    if (mask >> j & 1)
      for (u64 i = 0; i < kWords; ++i) base[j * kWords + i] = abi::swap_pattern(seed(), j, i, 1);
  (void)yield();  // moment B
  abi::SwapInfo before{}, after{};
  const i64 asked = swap_info(&before);
  if (!evict_all(base, 0, pages, 0)) return 2;
  const i64 told = swap_info(&after);
  (void)yield();  // moment C
  if (!grading() && asked == i64(sizeof before) && told == i64(sizeof after))
    println("swapkeep: the kernel says the evictions wrote {} slots ({} pages written again)",
            after.writes - before.writes, __builtin_popcountll(mask));
  u64 bad = 0;
  for (u64 j = 0; j < pages; ++j)
    for (u64 i = 0; i < kWords; ++i) bad += base[j * kWords + i] != abi::swap_pattern(seed(), j, i, mask >> j & 1);
  if (!evict_all(base, 0, pages, 0)) return 2;
  const u64 half = pages / 2;
  const i64 unmapped = munmap(u64(region), half * arch::kPageSize);
  (void)yield();  // moment D
  if (abi::is_error(unmapped)) {
    println("swapkeep: munmap failed: {}", abi::errno_name(abi::errno_of(unmapped)));
    return 1;
  }
  if (then_exec && bad == 0) {
    char line[64];
    BufferSink text(line, sizeof line);
    format_to(text, "swapkeep: exec with {} pages out", pages - half);
    line[text.view().size()] = '\0';
    const char* const args[] = {"echo", line, nullptr};
    const i64 r = exec("echo", args);
    println("swapkeep: exec failed: {}", abi::errno_name(abi::errno_of(r)));
    return 1;
  }
  println("swapkeep: {} pages, {} written again, {} wrong{}", pages, __builtin_popcountll(mask), bad,
          proof_note(bad << 16 ^ u64(__builtin_popcountll(mask))));
  return bad == 0 ? 0 : 1;
}
