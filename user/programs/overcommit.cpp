// overcommit: a working set larger than the frames it may have (lab 7). Boot with a cap
// (`userframes=N`) and a swap disk, give it 4 to 8 times N pages, and the pages go out and come
// back while it checks every word it wrote.
//
//   overcommit PAGES ROUNDS [WRITES]
//
// maps PAGES pages (at most 4000) of anonymous memory and writes every word of every page:
// word i of page j holds abi::swap_pattern(seed, j, i, v), v = 0, where seed = proof(token, 0x7c0).
// Then ROUNDS rounds (at most 64); round r (1, 2, ...) goes over the pages from page
// start(r) = proof(token, 0x7c1 + r) % PAGES on, wrapping around, and for each page:
//   - reads every word and compares it with what was written last (version v of that page);
//   - writes it again, every word, with version r, when bit (j % 64) of the round's mask
//     proof(token, 0x7e0 + r) is set and WRITES (0..100, default 50) is above
//     proof(token, 0x800 + r * 4000 + j) % 100: about WRITES percent of the pages are written,
//     the others only read (a clean page whose slot still holds it needs no write at its next
//     eviction).
// After each round it calls yield() (a moment for the grader: every page holds its version, in
// a frame or in its slot). It ends with one line and exit code 0 when every word it read back
// was the one it wrote last (1 otherwise, 2 for bad arguments):
//   overcommit: 512 pages (2048 KiB), 3 rounds: 786432 words checked, 0 wrong proof=...
// (the proof: of the wrong count << 32 ^ the number of page writes), then, at the shell, what
// the kernel says it did (swap_info: believed, not a proof).
#include "user/lib/derived.hpp"
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

constexpr u64 kWords = arch::kPageSize / 8;
constexpr u64 kMaxPages = 4000;
constexpr u64 kMaxRounds = 64;

u64 seed() { return derived::value(derived::overcommit_seed); }

/// Whether round @p r writes page @p j (see the header).
bool writes(u64 r, u64 j, u64 percent) {
  const u64 mask = derived::value(derived::overcommit_mask, r);
  return (mask >> (j % 64) & 1) != 0 && derived::value(derived::overcommit_roll, r * kMaxPages + j) < percent;
}

void fill(volatile u64* page, u64 s, u64 j, u64 version) {
  for (u64 i = 0; i < kWords; ++i) page[i] = abi::swap_pattern(s, j, i, version);
}

/// Words of @p page that are not version @p version's.
u64 wrong(const volatile u64* page, u64 s, u64 j, u64 version) {
  u64 bad = 0;
  for (u64 i = 0; i < kWords; ++i) bad += page[i] != abi::swap_pattern(s, j, i, version);
  return bad;
}

}  // namespace

int main(int, char**) {
  const u64 pages = arg_number(1, 256);
  const u64 rounds = arg_number(2, 3);
  const u64 percent = arg_number(3, 50);
  if (pages == 0 || pages > kMaxPages || rounds > kMaxRounds || percent > 100) {
    println("overcommit: usage: overcommit PAGES ROUNDS [WRITES] (1 <= PAGES <= {}, ROUNDS <= {}, WRITES <= 100)",
            kMaxPages, kMaxRounds);
    return 2;
  }
  const i64 region = mmap(0, pages * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(region)) {
    println("overcommit: mmap of {} pages failed: {}", pages, abi::errno_name(abi::errno_of(region)));
    return 2;
  }
  // The version each page holds (the round that wrote it last): the program's own model.
  const i64 model = mmap(0, pages * sizeof(u8), abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(model)) {
    println("overcommit: mmap of its model failed: {}", abi::errno_name(abi::errno_of(model)));
    return 2;
  }
  auto* base = reinterpret_cast<volatile u64*>(region);
  auto* version = reinterpret_cast<volatile u8*>(model);
  const u64 s = seed();
  for (u64 j = 0; j < pages; ++j) fill(base + j * kWords, s, j, 0);
  (void)yield();  // moment 0: every page written once
  u64 checked = 0, bad = 0, writes_done = pages;
  for (u64 r = 1; r <= rounds; ++r) {
    const u64 start = derived::value(derived::overcommit_start, r) % pages;
    for (u64 k = 0; k < pages; ++k) {
      const u64 j = (start + k) % pages;
      volatile u64* page = base + j * kWords;
      bad += wrong(page, s, j, version[j]);
      checked += kWords;
      if (!writes(r, j, percent)) continue;
      fill(page, s, j, r);
      version[j] = u8(r);
      ++writes_done;
    }
    (void)yield();  // moment r: the round is done
  }
  println("overcommit: {} pages ({} KiB), {} rounds: {} words checked, {} wrong{}", pages,
          pages * arch::kPageSize / 1024, rounds, checked, bad, proof_note(bad << 32 ^ writes_done));
  if (!grading()) {
    abi::SwapInfo info{};
    if (swap_info(&info) == i64(sizeof info) && (info.slots != 0 || info.frame_cap != 0))
      println("overcommit: the kernel says: {} resident frames (cap {}), {} evictions ({} clean), {} slots written, "
              "{} read back, {} of {} slots in use",
              info.resident, info.frame_cap, info.evictions, info.clean_evictions, info.writes, info.reads,
              info.slots_in_use, info.slots);
  }
  return bad == 0 ? 0 : 1;
}
