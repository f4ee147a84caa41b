// swapbench: what an eviction and a swap-in cost, for `./pagoda bench swap` (lab 7). Under QEMU's
// -icount shift=0 the cycle counter counts guest instructions.
//
//   swapbench PAGES
//
// maps PAGES pages (at most 1000) and writes every word of each; then times, each over every
// page: evict() of a dirty page (no slot yet: a write), a first read of each page (a fault that
// brings it back: a read of its slot), evict() again (the page is clean and keeps its slot: no
// write), evict() of a page that is out already (the call and the look-up alone), and a read
// of pages that are resident (no fault). It prints
//   swapbench: N pages: dirty D, swap-in S, clean C, out O, resident R counts
//   swapbench: disk: dirty Q requests W waited, swap-in Q requests W waited counts
// the second line from the disk driver's own times (swap_info: what its requests waited, from
// the notify to the completion seen, during the dirty evictions and the swap-ins: D - W counts
// the guest's own instructions, the halts and the interrupts taken in them left out)
// (run it with room for its pages: userframes=PAGES+32, so that nothing else is evicted).
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

constexpr u64 kWords = arch::kPageSize / 8;
constexpr u64 kMaxPages = 1000;

/// The disk driver's (requests, waited) so far; zeros when swap is off.
abi::SwapInfo disk_so_far() {
  abi::SwapInfo info{};
  (void)swap_info(&info);
  return info;
}

/// What one timed pass cost: counts, and the disk's requests and waits in it.
struct Pass {
  u64 counts, requests, waited;
};

template <class F> Pass timed(u64 pages, F each) {
  const abi::SwapInfo before = disk_so_far();
  const u64 start = arch::cycle_counter();
  for (u64 j = 0; j < pages; ++j) each(j);
  const u64 counts = arch::cycle_counter() - start;
  const abi::SwapInfo after = disk_so_far();
  return {counts, after.disk_requests - before.disk_requests, after.disk_waited - before.disk_waited};
}

}  // namespace

int main(int, char**) {
  const u64 pages = arg_number(1, 256);
  if (pages == 0 || pages > kMaxPages) {
    println("swapbench: usage: swapbench PAGES (1 <= PAGES <= {})", kMaxPages);
    return 2;
  }
  const i64 region = mmap(0, pages * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(region)) {
    println("swapbench: mmap failed: {}", abi::errno_name(abi::errno_of(region)));
    return 2;
  }
  auto* base = reinterpret_cast<volatile u64*>(region);
  for (u64 j = 0; j < pages; ++j)
    for (u64 i = 0; i < kWords; ++i) base[j * kWords + i] = j ^ i;
  bool ok = true;
  const auto out = [&](u64 j) { ok = !abi::is_error(evict(const_cast<const u64*>(base + j * kWords))) && ok; };
  u64 sink = 0;
  const auto touch = [&](u64 j) { sink += base[j * kWords]; };
  const Pass dirty = timed(pages, out);
  const Pass swap_in = timed(pages, touch);
  const u64 clean = timed(pages, out).counts;
  const u64 already = timed(pages, out).counts;
  (void)timed(pages, touch);
  const u64 resident = timed(pages, touch).counts;
  if (!ok) {
    println("swapbench: an evict() failed (no swap disk?)");
    return 1;
  }
  println("swapbench: {} pages: dirty {}, swap-in {}, clean {}, out {}, resident {} counts{}", pages, dirty.counts,
          swap_in.counts, clean, already, resident, sink == ~u64{0} ? "" : "");
  println("swapbench: disk: dirty {} requests {} waited, swap-in {} requests {} waited counts", dirty.requests,
          dirty.waited, swap_in.requests, swap_in.waited);
  return 0;
}
