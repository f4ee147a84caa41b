// vmas: exercises lab 5's regions from user space, one mode per run (argv[1]):
//   lazy PAGES      maps 64 MiB, touches PAGES pages of it, reports the frames that cost
//   bss             checks that bss reads zero after data that shares its page
//   hole            maps 8 pages, unmaps the middle two, uses the ends, then touches the hole
//   protect         writes, makes the pages read-only, reads, makes them writable, writes, makes
//                   them read-only again and writes (killed: "write to read-only VMA")
//   brk PAGES       grows the heap by PAGES pages, touches them, shrinks it back; then maps the
//                   page just above the break and asks sbrk to grow past it (an error)
//   stack PAGES     recurses PAGES pages deep into its stack (past the limit: killed)
//   list            prints its VMAs (vma_list)
// Every line ends with a proof bound to the boot token.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

constexpr u64 kPage = 4096;

// Data and bss that share a page: the data's last bytes are followed by bss.
extern "C" {
volatile u64 vmas_data[3] = {0x1111, 0x2222, 0x3333};
volatile u64 vmas_bss[600];
}

abi::ProcInfo info() {
  abi::ProcInfo i{};
  proc_info(&i);
  return i;
}

int lazy(u64 pages) {
  const u64 size = 64ull << 20;
  const abi::ProcInfo before = info();
  const i64 at = mmap(0, size, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(at)) {
    println("vmas: mmap of 64 MiB failed: {}", at);
    return 1;
  }
  const abi::ProcInfo mapped = info();
  for (u64 i = 0; i < pages; ++i) {
    const u64 page = proof(token(), i) % (size / kPage);
    *reinterpret_cast<volatile u64*>(u64(at) + page * kPage + 8) = i + 1;
  }
  const abi::ProcInfo after = info();
  println("vmas: lazy: 64 MiB at {:#x}; user frames {} -> {} -> {}; tables {} -> {} proof={:016x}", at,
          before.user_frames, mapped.user_frames, after.user_frames, before.table_frames, after.table_frames,
          proof(token(), after.user_frames - before.user_frames));
  return 0;
}

int bss() {
  u64 nonzero = 0;
  for (u64 i = 0; i < 600; ++i) nonzero += vmas_bss[i] != 0;
  const bool data = vmas_data[0] == 0x1111 && vmas_data[1] == 0x2222 && vmas_data[2] == 0x3333;
  println("vmas: bss at {:#x}: {} nonzero words; data at {:#x} {} proof={:016x}", reinterpret_cast<uptr>(vmas_bss),
          nonzero, reinterpret_cast<uptr>(vmas_data), data ? "intact" : "DAMAGED", proof(token(), nonzero + !data));
  return nonzero == 0 && data ? 0 : 1;
}

int hole() {
  const i64 at = mmap(0, 8 * kPage, abi::kProtRead | abi::kProtWrite);
  auto word = [&](u64 page) { return reinterpret_cast<volatile u64*>(u64(at) + page * kPage); };
  for (u64 i = 0; i < 8; ++i) *word(i) = i + 1;
  const i64 r = munmap(u64(at) + 3 * kPage, 2 * kPage);
  abi::VmaInfo list[16];
  const i64 n = vma_list(list, 16);
  u64 ends = 0;
  constexpr u64 kEnds[] = {0, 1, 2, 5, 6, 7};
  for (u64 i : kEnds) ends += *word(i);
  println("vmas: hole: munmap -> {}; {} VMAs; ends sum {} proof={:016x}", r, n, ends, proof(token(), ends));
  println("vmas: touching the hole at {:#x}", u64(at) + 3 * kPage);
  return int(*word(3));
}

int protect() {
  const i64 at = mmap(0, 2 * kPage, abi::kProtRead | abi::kProtWrite);
  volatile u64* p = reinterpret_cast<volatile u64*>(at);
  p[0] = 7;
  const i64 a = mprotect(u64(at), 2 * kPage, abi::kProtRead);
  const u64 seen = p[0];
  const i64 b = mprotect(u64(at), 2 * kPage, abi::kProtRead | abi::kProtWrite);
  p[0] = seen + 1;
  const i64 c = mprotect(u64(at), kPage, abi::kProtRead);
  println("vmas: protect: {} {} {}; read {} then wrote {} proof={:016x}", a, b, c, seen, p[0], proof(token(), p[0]));
  println("vmas: writing the read-only page at {:#x}", at);
  p[0] = 9;
  return 1;
}

int brk_mode(u64 pages) {
  const i64 base = sbrk(0);
  const abi::ProcInfo before = info();
  const i64 old = sbrk(i64(pages * kPage));
  for (u64 i = 0; i < pages; ++i) reinterpret_cast<volatile u64*>(u64(base) + i * kPage)[1] = i;
  const abi::ProcInfo grown = info();
  const i64 back = sbrk(-i64(pages * kPage));
  const abi::ProcInfo shrunk = info();
  const u64 top = (u64(sbrk(0)) + kPage - 1) / kPage * kPage;
  const i64 wall = mmap(top + kPage, kPage, abi::kProtRead, abi::kMapFixedNoReplace);
  const i64 past = sbrk(i64(4 * kPage));
  println("vmas: brk: base {:#x} old {:#x}; frames {} -> {} -> {}; shrink {:#x}; wall {:#x}; sbrk past it -> {} "
          "proof={:016x}", base, old, before.user_frames, grown.user_frames, shrunk.user_frames, back, wall, past,
          proof(token(), grown.user_frames - before.user_frames));
  return 0;
}

[[gnu::noinline]] u64 dig(u64 pages) {
  volatile u8 frame[kPage - 64];
  frame[0] = u8(pages);
  frame[sizeof frame - 1] = u8(pages);
  asm volatile("" ::"r"(frame) : "memory");
  if (pages == 0) return frame[0];
  return dig(pages - 1) + frame[sizeof frame - 1];
}

int stack(u64 pages) {
  println("vmas: stack: {} pages deep", pages);
  const u64 sum = dig(pages);
  println("vmas: stack: back from {} pages proof={:016x}", pages, proof(token(), sum));
  return 0;
}

int list() {
  abi::VmaInfo v[32];
  const i64 n = vma_list(v, 32);
  for (i64 i = 0; i < n && i < 32; ++i)
    println("vmas: vma [{:#x}, {:#x}) prot {} kind {} offset {:#x}", v[i].start, v[i].end, v[i].prot,
            abi::memory_kind_name(abi::MemoryKind(v[i].kind)), v[i].offset);
  println("vmas: {} VMAs proof={:016x}", n, proof(token(), u64(n)));
  return 0;
}

}  // namespace

int main(int, char**) {
  const StringView mode = arg(1);
  if (mode == "lazy") return lazy(arg_number(2, 3));
  if (mode == "bss") return bss();
  if (mode == "hole") return hole();
  if (mode == "protect") return protect();
  if (mode == "brk") return brk_mode(arg_number(2, 4));
  if (mode == "stack") return stack(arg_number(2, 16));
  if (mode == "list") return list();
  println("vmas: unknown mode '{}' (lazy, bss, hole, protect, brk, stack, list)", mode);
  return 2;
}
