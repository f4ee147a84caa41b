// swapbuf: system calls whose user buffers are swapped out (lab 7). The kernel's copies fault
// the pages back in; the pages a copy brought in stay pinned until it ends.
//
//   swapbuf OFFSET [FILL]
//
// maps a buffer of 4 pages and a line of text, LINE = "swapbuf: the kernel copied this line
// from swapped-out pages <hex of proof(token, 0x5b0)>", placed at byte OFFSET (below the second
// page's end, so that it may straddle the boundary between the first two pages). With FILL
// (a number of pages, at most 4000, default 0) it first maps and writes that many more pages,
// so that under a cap the resident frames are at the cap and every fault of the copies below
// must evict (the clock must pass by the pages a copy has pinned).
//   1. evicts the buffer's first two pages (the evict test call), then write(1, LINE): the
//      line on the console must be LINE, whole;
//   2. evicts them again and calls read(0) into the buffer at OFFSET (at most 200 bytes): the
//      grader types a line; the program prints
//        swapbuf: read N bytes into swapped-out pages: "<the line>" proof=...
//      (the proof: of N << 32 ^ proof(the line without its newline, 0): lib/proof.hpp's hash
//      with the line in the token's place);
//   3. checks that the pages of the buffer it did not pass to the calls still hold what it
//      wrote there (the third and fourth pages, words abi::swap_pattern(seed, j, i, 0)).
// Exit code 0 when all is well, 1 when a call failed or a page changed, 2 when it cannot start
// (no swap: evict says ENOSYS).
#include "user/lib/derived.hpp"
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

constexpr u64 kWords = arch::kPageSize / 8;
constexpr u64 kPages = 4;
constexpr u64 kMaxFill = 4000;
constexpr usize kMaxRead = 200;

u64 seed() { return derived::value(derived::swapbuf_seed); }

bool evict_pages(u8* buffer, u64 first, u64 count) {
  for (u64 j = first; j < first + count; ++j) {
    const i64 r = evict(buffer + j * arch::kPageSize);
    if (abi::is_error(r)) {
      println("swapbuf: evict of page {} failed: {}", j, abi::errno_name(abi::errno_of(r)));
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int, char**) {
  const u64 offset = arg_number(1, arch::kPageSize - 40);
  const u64 fill = arg_number(2, 0);
  if (offset + kMaxRead > 2 * arch::kPageSize || fill > kMaxFill) {
    println("swapbuf: usage: swapbuf OFFSET [FILL] (OFFSET + {} within the first two pages, FILL <= {})", kMaxRead,
            kMaxFill);
    return 2;
  }
  const i64 region = mmap(0, kPages * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(region)) {
    println("swapbuf: mmap failed: {}", abi::errno_name(abi::errno_of(region)));
    return 2;
  }
  u8* buffer = reinterpret_cast<u8*>(region);
  auto* words = reinterpret_cast<volatile u64*>(region);
  for (u64 j = 2; j < kPages; ++j)
    for (u64 i = 0; i < kWords; ++i) words[j * kWords + i] = abi::swap_pattern(seed(), j, i, 0);
  // Both pages the calls use are brought in (a page never touched has nothing to evict).
  words[0] = 0;
  words[kWords] = 0;
  // The line, written into the buffer at OFFSET.
  char text[160];
  BufferSink line(text, sizeof text);
  format_to(line, "swapbuf: the kernel copied this line from swapped-out pages {:016x}\n", seed());
  for (usize i = 0; i < line.view().size(); ++i) buffer[offset + i] = u8(line.view()[i]);
  if (fill != 0) {
    const i64 more = mmap(0, fill * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
    if (abi::is_error(more)) {
      println("swapbuf: mmap of {} filler pages failed: {}", fill, abi::errno_name(abi::errno_of(more)));
      return 2;
    }
    for (u64 j = 0; j < fill; ++j) reinterpret_cast<volatile u64*>(more)[j * kWords] = j;
  }
  if (!evict_pages(buffer, 0, 2)) return 2;
  const i64 wrote = write(abi::kStdout, buffer + offset, line.view().size());
  if (!evict_pages(buffer, 0, 2)) return 2;
  const i64 got = read(abi::kStdin, buffer + offset, kMaxRead);
  bool ok = wrote == i64(line.view().size()) && got >= 0;
  const usize n = got > 0 ? usize(got) : 0;
  const StringView in(reinterpret_cast<const char*>(buffer + offset),
                      n > 0 && buffer[offset + n - 1] == '\n' ? n - 1 : n);
  u64 bad = 0;
  for (u64 j = 2; j < kPages; ++j)
    for (u64 i = 0; i < kWords; ++i) bad += words[j * kWords + i] != abi::swap_pattern(seed(), j, i, 0);
  ok = ok && bad == 0;
  println("swapbuf: read {} bytes into swapped-out pages: \"{}\"; write {}, other pages {}{}", n, in,
          wrote == i64(line.view().size()) ? "whole" : "SHORT", bad == 0 ? "intact" : "CHANGED",
          proof_note(u64(n) << 32 ^ proof(in, 0)));
  return ok ? 0 : 1;
}
