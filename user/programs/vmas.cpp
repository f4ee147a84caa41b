// vmas: exercises lab 5's regions from user space, one mode per run (argv[1]):
//   lazy PAGES      maps 64 MiB, touches PAGES pages of it, reports the frames that cost
//   bss             checks that bss reads zero after data that shares its page
//   hole            maps 8 pages, unmaps the middle two, uses the ends, then touches the hole
//   protect         writes, makes the pages read-only, reads, makes them writable, writes, makes
//                   them read-only again and writes (killed: "write to read-only VMA")
//   none            writes a pattern the token picks, makes the page PROT_NONE, hands it to read()
//                   and write() (EFAULT both), makes it read/write again and checks the pattern,
//                   makes it PROT_NONE again and reads it (killed: "access to inaccessible VMA")
//   nonefork        the same pattern, PROT_NONE, then fork (lab 6): the child finds the page
//                   no-access too (read() EFAULT), makes it read/write, finds the pattern and
//                   overwrites it; the parent, once the child is reaped, finds its pattern intact
//   brk PAGES       grows the heap by PAGES pages, touches them, shrinks it back; then maps the
//                   page just above the break and asks sbrk to grow past it (an error)
//   stack PAGES     recurses PAGES pages deep into its stack (past the limit: killed)
//   list            prints its VMAs (vma_list)
//   fault PAGES     times a first touch of PAGES fresh pages and a second touch of the same
//                   pages (./pagoda bench fault: the difference is the demand-zero fault)
//   random OPS [MARKER]  OPS random mmap/munmap/mprotect/access operations on a 64-page window, each
//                   checked against a model of the window kept here (seeded by the token); the
//                   checksum of every result and value read, which the grader recomputes; the first
//                   result that differs from the model is handed to vmas_mismatch (the grader stops there)
//   noexec          calls into a read-only page it never touched, at an offset the token picks
//                   (killed: "execute in non-executable VMA", the page never brought in)
//   cut PAGE        munmaps page PAGE of vmas_table (read-only data of the image, none of it touched
//                   yet), then reads a word of every other page of it: the regions left on each side
//                   of the hole must still read the file's bytes at their own offsets
//   brkodd BYTES PAGES  moves the break BYTES bytes past the heap's start (not page aligned), touches
//                   its last byte, then grows it by PAGES pages and touches each: the heap grows from
//                   the page above the old break, one region; then shrinks back to the
//                   unaligned break (its page stays, with its byte)
//   jump PAGES      touches the stack PAGES pages below its lowest mapped page first (one fault far
//                   below), says where, then touches the pages between: the stack must be one region
//   merge PAGE      three neighbours made one again: the middle of three rw- pages mprotect'ed r--
//                   and back; a page mapped into the one-page gap between two; page PAGE of
//                   vmas_table (never touched) made rw- and back to r--, then a word of each of its
//                   pages read: the record holds each as one region, the table's bytes the file's;
//                   then the page of vmas_bss's last word (past the file bytes) made r-- and read
//   xonly           calls a function alone in its text page, makes the page execute-only and calls
//                   it again: an execute-only region's page stays present and executable; then
//                   reads an execute-only page never touched (allowed)
// Every line ends with a proof bound to the boot token.
#include "lib/random.hpp"
#include "user/lib/derived.hpp"
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

// vmas's data segment does not start on a page (user/user.ld reads this absolute symbol): its
// p_vaddr is its p_offset modulo the page size, as GNU ld lays a data segment out, so the loader
// must take the first page's bytes from before p_offset (lab 5's bss_data reads them back).
asm(".globl pagoda_unaligned_data\n.set pagoda_unaligned_data, 1");

// Data and bss that share a page: the data's last bytes are followed by bss.
extern "C" {
volatile u64 vmas_data[3] = {0x1111, 0x2222, 0x3333};
volatile u64 vmas_bss[600];

/// Called once, before operation MARKER of `random` (argv[3]), for the grader to stop at: the
/// model is between two operations there. In a page of its own (a breakpoint slows its page).
[[gnu::noinline, gnu::aligned(arch::kPageSize)]] void vmas_marker(u64 op) { asm volatile("" ::"r"(op) : "memory"); }

/// Called at the first result of `random` that differs from the model (operation @p op: the
/// system call or the read gave @p got, the model wants @p want), for the grader to stop at and
/// read the three from the argument registers. In a page of its own, as vmas_marker.
[[gnu::noinline, gnu::aligned(arch::kPageSize)]] void vmas_mismatch(u64 op, i64 got, i64 want) {
  asm volatile("" ::"r"(op), "r"(got), "r"(want) : "memory");
}
}

// Read-only data of the image several pages long, for `cut`: word i is table_word(i). Pages of
// its own (page aligned), in the read-only segment, brought in from the file on first touch.
constexpr u64 kTablePages = 6;
constexpr u64 kTableWords = kTablePages * arch::kPageSize / 8;
constexpr u64 table_word(u64 i) { return (i + 1) * 0x9e3779b97f4a7c15ull ^ 0x7661736d74626cull; }
struct Table {
  u64 words[kTableWords];
};
constexpr Table make_table() {
  Table t{};
  for (u64 i = 0; i < kTableWords; ++i) t.words[i] = table_word(i);
  return t;
}
extern "C" {
extern const Table vmas_table;
[[gnu::used, gnu::aligned(arch::kPageSize)]] const Table vmas_table = make_table();
}

// A function alone in a text page of its own (the page padded to its end), for `xonly`: "ret"
// is the return instruction on both ISAs. Emitted from inside a function so the page size can be an
// asm operand (kPageSize, not the number written again).
extern "C" void vmas_xonly();
[[gnu::used]] static void vmas_xonly_emit() {
  asm volatile(".pushsection .text.vmas_xonly,\"ax\"\n"
               ".balign %c0\n"
               ".globl vmas_xonly\n"
               "vmas_xonly:\n"
               "  ret\n"
               ".balign %c0\n"
               ".popsection\n" ::"i"(arch::kPageSize));
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
    const u64 page = derived::value(derived::vmas_lazy_page, i);
    *reinterpret_cast<volatile u64*>(u64(at) + page * arch::kPageSize + 8) = i + 1;
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
  const i64 at = mmap(0, 8 * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  auto word = [&](u64 page) { return reinterpret_cast<volatile u64*>(u64(at) + page * arch::kPageSize); };
  for (u64 i = 0; i < 8; ++i) *word(i) = i + 1;
  const i64 r = munmap(u64(at) + 3 * arch::kPageSize, 2 * arch::kPageSize);
  abi::VmaInfo list[16];
  const i64 n = vma_list(list, 16);
  u64 ends = 0;
  constexpr u64 kEnds[] = {0, 1, 2, 5, 6, 7};
  for (u64 i : kEnds) ends += *word(i);
  println("vmas: hole: munmap -> {}; {} VMAs; ends sum {} proof={:016x}", r, n, ends, proof(token(), ends));
  println("vmas: touching the hole at {:#x}", u64(at) + 3 * arch::kPageSize);
  return int(*word(3));
}

int protect() {
  const i64 at = mmap(0, 2 * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  volatile u64* p = reinterpret_cast<volatile u64*>(at);
  p[0] = 7;
  const i64 a = mprotect(u64(at), 2 * arch::kPageSize, abi::kProtRead);
  const u64 seen = p[0];
  const i64 b = mprotect(u64(at), 2 * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  p[0] = seen + 1;
  const i64 c = mprotect(u64(at), arch::kPageSize, abi::kProtRead);
  println("vmas: protect: {} {} {}; read {} then wrote {} proof={:016x}", a, b, c, seen, p[0], proof(token(), p[0]));
  println("vmas: writing the read-only page at {:#x}", at);
  p[0] = 9;
  return 1;
}

int brk_mode(u64 pages) {
  const i64 base = sbrk(0);
  const abi::ProcInfo before = info();
  const i64 old = sbrk(i64(pages * arch::kPageSize));
  for (u64 i = 0; i < pages; ++i) reinterpret_cast<volatile u64*>(u64(base) + i * arch::kPageSize)[1] = i;
  const abi::ProcInfo grown = info();
  const i64 back = sbrk(-i64(pages * arch::kPageSize));
  const abi::ProcInfo shrunk = info();
  const u64 top = (u64(sbrk(0)) + arch::kPageSize - 1) / arch::kPageSize * arch::kPageSize;
  const i64 wall = mmap(top + arch::kPageSize, arch::kPageSize, abi::kProtRead, abi::kMapFixedNoReplace);
  const i64 past = sbrk(i64(4 * arch::kPageSize));
  println("vmas: brk: base {:#x} old {:#x}; frames {} -> {} -> {}; shrink {:#x}; wall {:#x}; sbrk past it -> {} "
          "proof={:016x}",
          base, old, before.user_frames, grown.user_frames, shrunk.user_frames, back, wall, past,
          proof(token(), grown.user_frames - before.user_frames));
  return 0;
}

[[gnu::noinline]] u64 dig(u64 pages) {
  volatile u8 frame[arch::kPageSize - 64];
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

/// Touches one word in each of @p pages pages at @p base; the cycle counter's count (guest
/// instructions under -icount shift=0).
[[gnu::noinline]] u64 touch_pages(u64 base, u64 pages) {
  const u64 start = arch::cycle_counter();
  for (u64 i = 0; i < pages; ++i) reinterpret_cast<volatile u64*>(base + i * arch::kPageSize)[0] = i;
  return arch::cycle_counter() - start;
}

int fault(u64 pages) {
  const i64 at = mmap(0, pages * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(at)) {
    println("vmas: fault: mmap of {} pages failed: {}", pages, at);
    return 1;
  }
  const u64 first = touch_pages(u64(at), pages);
  const u64 second = touch_pages(u64(at), pages);
  println("vmas: fault: {} pages: {} counts first touch, {} counts second", pages, first, second);
  return 0;
}

// ---- random operations against a model -----------------------------------------------------
// The grader replays the same model (grade/test_lab5.py, random_model): change one, change both.

constexpr u64 kWindowPages = 64;
constexpr u64 kWindow = u64{1} << 37;  // 128 GiB: in the mmap area, far from the image and the stack
constexpr u64 kProts[] = {abi::kProtNone, abi::kProtRead, abi::kProtRead | abi::kProtWrite};

struct Page {
  bool mapped = false;
  u64 prot = 0;
  u64 value = 0;  // the word at offset 0 (0 until written)
};

struct Model {
  Page pages[kWindowPages];
  u64 hash = 0xcbf29ce484222325ull;
  u64 mismatches = 0;

  u64 op = 0;  // the operation under way (vmas_mismatch's)

  void mix(u64 x) { hash = (hash ^ x) * 0x100000001b3ull; }
  void expect(i64 got, i64 want) {
    mix(u64(got));
    if (got == want) return;
    if (mismatches == 0) vmas_mismatch(op, got, want);
    ++mismatches;
  }
};

int random_ops(u64 ops, u64 marker) {
  TestRandom r{derived::value(derived::vmas_random_seed) | 1};
  Model m;
  auto at = [](u64 page) { return kWindow + page * arch::kPageSize; };
  for (u64 op = 0; op < ops; ++op) {
    if (marker != 0 && op == marker) vmas_marker(op);
    m.op = op;
    const u64 kind = r.below(4);
    const u64 first = r.below(kWindowPages);
    const u64 count = 1 + r.below(min<u64>(8, kWindowPages - first));
    bool any = false, all = true;
    for (u64 i = first; i < first + count; ++i) {
      any = any || m.pages[i].mapped;
      all = all && m.pages[i].mapped;
    }
    if (kind == 0) {  // mmap: fixed, or fixed without replacing
      const u64 prot = kProts[r.below(3)];
      const bool keep = r.below(2) == 0;
      const i64 got = mmap(at(first), count * arch::kPageSize, prot, keep ? abi::kMapFixedNoReplace : abi::kMapFixed);
      if (keep && any) {
        m.expect(got, abi::error_result(abi::Errno::Exist));
        continue;
      }
      m.expect(got, i64(at(first)));
      for (u64 i = first; i < first + count; ++i) m.pages[i] = Page{true, prot, 0};
    } else if (kind == 1) {  // munmap (holes are fine)
      m.expect(munmap(at(first), count * arch::kPageSize), 0);
      for (u64 i = first; i < first + count; ++i) m.pages[i] = Page{};
    } else if (kind == 2) {  // mprotect to ---, r-- or rw- (the whole range must be mapped; --- keeps the values)
      const u64 prot = kProts[r.below(3)];
      m.expect(mprotect(at(first), count * arch::kPageSize, prot), all ? 0 : abi::error_result(abi::Errno::NoMem));
      if (all)
        for (u64 i = first; i < first + count; ++i) m.pages[i].prot = prot;
    } else {  // touch one page: write if writable, read if readable; a kernel write must fail if not writable
      Page& p = m.pages[first];
      volatile u64* word = reinterpret_cast<volatile u64*>(at(first));
      const bool writable = p.mapped && (p.prot & abi::kProtWrite);
      if (writable) {
        p.value = r.next();
        *word = p.value;
      }
      if (p.mapped && (p.prot & abi::kProtRead)) m.expect(i64(*word), i64(p.value));
      if (!writable)
        m.expect(proc_info(reinterpret_cast<abi::ProcInfo*>(at(first))), abi::error_result(abi::Errno::Fault));
    }
  }
  m.expect(munmap(kWindow, kWindowPages * arch::kPageSize), 0);
  println("vmas: random: {} operations, {} mismatches, checksum {:016x} proof={:016x}", ops, m.mismatches, m.hash,
          proof(token(), m.hash));
  return m.mismatches == 0 ? 0 : 1;
}

/// An instruction fetch from a region without execute: a read-only page, never touched, called
/// at an offset the token picks. The first fetch must end the process ("execute in
/// non-executable VMA") without bringing the page in.
int noexec() {
  const i64 at = mmap(0, arch::kPageSize, abi::kProtRead);
  if (abi::is_error(at)) {
    println("vmas: noexec: mmap failed: {}", at);
    return 1;
  }
  const u64 target = u64(at) + derived::value(derived::vmas_noexec_word) * 4;
  println("vmas: noexec: calling {:#x} in the read-only page at {:#x}", target, at);
  reinterpret_cast<void (*)()>(target)();
  println("vmas: noexec: came back from {:#x}", target);
  return 1;
}

/// munmap of page @p page of vmas_table before any of it was touched: its region is cut in
/// three (a head, the hole, a tail). Then one word of every other page of the table (the word
/// the token picks), read through volatile loads: each page comes from the file now, at the
/// offset of its own region. The VMA list is taken after the reads (the grader stops at it).
int cut(u64 page) {
  const u64 base = reinterpret_cast<uptr>(&vmas_table);
  if (page == 0 || page + 1 >= kTablePages) {
    println("vmas: cut: page {} is not inside the table (1..{})", page, kTablePages - 2);
    return 2;
  }
  const i64 r = munmap(base + page * arch::kPageSize, arch::kPageSize);
  const volatile u64* words = vmas_table.words;
  const u64 slot = derived::value(derived::vmas_cut_slot, page);
  u64 wrong = 0, sum = 0;
  for (u64 p = 0; p < kTablePages; ++p) {
    if (p == page) continue;
    const u64 i = p * (arch::kPageSize / 8) + slot;
    const u64 v = words[i];
    sum += v;
    wrong += v != table_word(i);
  }
  abi::VmaInfo list[32];
  const i64 n = vma_list(list, 32);
  println("vmas: cut: munmap of {:#x} -> {}; {} VMAs; {} wrong words, sum {:#x} proof={:016x}",
          base + page * arch::kPageSize, r, n, wrong, sum, proof(token(), sum));
  return wrong == 0 ? 0 : 1;
}

constexpr u64 kNoneWords = 8;

/// The number of pattern words at @p p that hold the pattern.
u64 pattern_intact(volatile u64* p) {
  u64 intact = 0;
  for (u64 i = 0; i < kNoneWords; ++i) intact += p[i] == derived::value(derived::vmas_none_word, i);
  return intact;
}

/// PROT_NONE keeps a page's contents while nothing may touch it. The grader stops at the
/// write() of the first line (the page rw-, holding the pattern), at the read() (the leaf invalid
/// to the MMU, its frame still holding the pattern) and at the write() of the last line (the page
/// rw- again, the pattern intact), then watches the read of the no-access page fault.
int none() {
  const i64 at = mmap(0, 2 * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(at)) {
    println("vmas: none: mmap failed: {}", at);
    return 1;
  }
  volatile u64* p = reinterpret_cast<volatile u64*>(at);
  for (u64 i = 0; i < kNoneWords; ++i) p[i] = derived::value(derived::vmas_none_word, i);
  println("vmas: none: pattern at {:#x}", at);
  const i64 a = mprotect(u64(at), 2 * arch::kPageSize, abi::kProtNone);  // one page brought in, one not
  const i64 r = read(abi::kStdin, reinterpret_cast<void*>(at), 16);
  const i64 w = write(abi::kStdout, reinterpret_cast<const void*>(at), 16);
  const i64 b = mprotect(u64(at), 2 * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  const u64 intact = pattern_intact(p);
  println("vmas: none: mprotect {} read {} write {} mprotect {}; {} of {} words intact proof={:016x}", a, r, w, b,
          intact, kNoneWords, proof(token(), intact));
  const i64 c = mprotect(u64(at), arch::kPageSize, abi::kProtNone);
  println("vmas: none: mprotect {}; reading the no-access page at {:#x}", c, at);
  return int(p[1]);
}

/// A PROT_NONE page across fork (lab 6): the child's copy (or shared frame) is no-access too and
/// holds the pattern; the child's write after mprotect lands in its own frame only. The grader
/// stops at the child's read() (both roots: the leaves invalid to the MMU, the frames, their
/// reference counts) and at the parent's last line.
int none_fork() {
  const i64 at = mmap(0, 2 * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  if (abi::is_error(at)) {
    println("vmas: nonefork: mmap failed: {}", at);
    return 1;
  }
  volatile u64* p = reinterpret_cast<volatile u64*>(at);
  for (u64 i = 0; i < kNoneWords; ++i) p[i] = derived::value(derived::vmas_none_word, i);
  const i64 a = mprotect(u64(at), 2 * arch::kPageSize, abi::kProtNone);
  println("vmas: nonefork: pattern at {:#x}, mprotect {}", at, a);
  const i64 pid = fork();
  if (pid < 0) {
    println("vmas: nonefork: fork failed: {}", abi::errno_name(abi::errno_of(pid)));
    return 1;
  }
  if (pid == 0) {
    const i64 r = read(abi::kStdin, reinterpret_cast<void*>(at), 16);
    const i64 b = mprotect(u64(at), 2 * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
    const u64 intact = pattern_intact(p);
    for (u64 i = 0; i < kNoneWords; ++i) p[i] = ~p[i];  // the child's own copy from here on
    println("vmas: nonefork: child: read {} mprotect {}; {} of {} words intact proof={:016x}", r, b, intact, kNoneWords,
            proof(token(), intact));
    exit(intact == kNoneWords ? 0 : 1);
  }
  abi::ExitInfo info{};
  const i64 got = waitpid(pid, &info);
  const bool child_ok = got == pid && info.how == u32(abi::Termination::Exited) && info.code == 0;
  const i64 b = mprotect(u64(at), 2 * arch::kPageSize, abi::kProtRead | abi::kProtWrite);
  const u64 intact = pattern_intact(p);
  println("vmas: nonefork: parent: child {}; mprotect {}; {} of {} words intact proof={:016x}",
          child_ok ? "ok" : "FAILED", b, intact, kNoneWords, proof(token(), intact ^ (child_ok ? 0 : 1ull << 32)));
  return intact == kNoneWords && child_ok ? 0 : 1;
}

/// brk from a break that is not page aligned: the heap region already covers the break's page,
/// so growing it must start at the page above (align_up of the old break), not at the break.
int brk_odd(u64 bytes, u64 pages) {
  const u64 base = u64(sbrk(0));
  const i64 first = sbrk(i64(bytes));
  volatile u8* last = reinterpret_cast<volatile u8*>(base + bytes - 1);
  if (!abi::is_error(first)) *last = 0x5a;
  const i64 grown = sbrk(i64(pages * arch::kPageSize));
  u64 sum = 0;
  if (!abi::is_error(grown))
    for (u64 i = 0; i < pages; ++i) {
      volatile u64* w = reinterpret_cast<volatile u64*>(base + bytes + i * arch::kPageSize);
      *w = i + 1;
      sum += *w;
    }
  const u64 end = u64(sbrk(0));
  abi::VmaInfo list[32];
  const i64 n = vma_list(list, 32);
  println("vmas: brkodd: base {:#x} break {:#x} -> {} grow {} pages -> {}; break {:#x}; {} VMAs; sum {} "
          "proof={:016x}",
          base, base + bytes, first, pages, grown, end, n, sum, proof(token(), sum + end - base));
  // Back down to the unaligned break: the page that holds it stays, with its byte.
  const i64 shrunk = sbrk(-i64(pages * arch::kPageSize));
  (void)vma_list(list, 32);
  println("vmas: brkodd: shrunk -> {}; break {:#x}; byte {:#x}", shrunk, u64(sbrk(0)), u64(*last));
  return abi::is_error(grown) ? 1 : 0;
}

/// The first touch of a deep frame is its lowest word, @p pages pages below the page the caller
/// runs on (a fault far below the stack's lowest mapped page); the grader stops at the line that
/// says where and reads the record; then the pages between are touched, top down.
[[gnu::noinline]] u64 jump_into(u64 pages) {
  constexpr u64 kMost = 16;
  volatile u8 frame[kMost * arch::kPageSize];
  if (pages > kMost) pages = kMost;
  volatile u8* low = &frame[(kMost - pages) * arch::kPageSize];
  asm volatile("" ::"r"(frame) : "memory");
  *low = 0x4a;
  println("vmas: jump: touched {:#x}, {} pages down", reinterpret_cast<uptr>(low), pages);
  u64 sum = 0;
  for (u64 i = pages; i-- > 0;) {
    low[i * arch::kPageSize + 8] = u8(i + 1);
    sum += low[i * arch::kPageSize + 8];
  }
  return sum + *low;
}

int jump(u64 pages) {
  const u64 sum = jump_into(pages);
  abi::VmaInfo list[32];
  const i64 n = vma_list(list, 32);
  println("vmas: jump: back, {} VMAs, sum {} proof={:016x}", n, sum, proof(token(), sum));
  return 0;
}

/// Three neighbours joined back into one region, three ways (the grader reads the record at the
/// vma_list call and brings in the table's pages through its own walk).
int merge(u64 page) {
  const u64 rw = abi::kProtRead | abi::kProtWrite;
  const i64 at = mmap(0, 16 * arch::kPageSize, rw);
  if (abi::is_error(at)) {
    println("vmas: merge: mmap failed: {}", at);
    return 1;
  }
  const u64 a = u64(at);
  for (u64 i = 0; i < 3; ++i) reinterpret_cast<volatile u64*>(a + i * arch::kPageSize)[0] = i + 1;
  const i64 r1 = mprotect(a + arch::kPageSize, arch::kPageSize, abi::kProtRead);
  const i64 r2 = mprotect(a + arch::kPageSize, arch::kPageSize, rw);
  // Pages 8 and 10 alone (9 unmapped), then page 9: the new region joins both neighbours.
  const u64 b = a + 8 * arch::kPageSize;
  const i64 r3 = munmap(a + 4 * arch::kPageSize, 12 * arch::kPageSize);
  const i64 r4 = mmap(b, arch::kPageSize, rw, abi::kMapFixedNoReplace);
  const i64 r5 = mmap(b + 2 * arch::kPageSize, arch::kPageSize, rw, abi::kMapFixedNoReplace);
  const i64 r6 = mmap(b + arch::kPageSize, arch::kPageSize, rw, abi::kMapFixedNoReplace);
  // An image region cut in three by mprotect and joined back, none of it touched yet.
  const u64 table = reinterpret_cast<uptr>(&vmas_table);
  const i64 r7 = mprotect(table + page * arch::kPageSize, arch::kPageSize, rw);
  const i64 r8 = mprotect(table + page * arch::kPageSize, arch::kPageSize, abi::kProtRead);
  const volatile u64* words = vmas_table.words;
  const u64 slot = derived::value(derived::vmas_merge_slot, page);
  u64 wrong = 0, sum = 0;
  for (u64 p = 0; p < kTablePages; ++p) {
    const u64 i = p * (arch::kPageSize / 8) + slot;
    const u64 v = words[i];
    sum += v;
    wrong += v != table_word(i);
  }
  // The data segment cut inside its bss, past its file bytes (the page of vmas_bss's last word,
  // never touched): the tail has no file bytes, and reads zeros.
  const u64 bss_page = reinterpret_cast<uptr>(&vmas_bss[599]) & ~(arch::kPageSize - 1);
  const i64 r9 = mprotect(bss_page, arch::kPageSize, abi::kProtRead);
  const u64 bss_word = vmas_bss[599];
  abi::VmaInfo list[32];
  const i64 n = vma_list(list, 32);
  println("vmas: merge: at {:#x}: {} {} {} {} {} {} {} {}; {} VMAs; {} wrong words, sum {:#x} proof={:016x}", a, r1, r2,
          r3, r4, r5, r6, r7, r8, n, wrong, sum, proof(token(), sum));
  println("vmas: merge: bss page {:#x} read-only -> {}, word {:#x}", bss_page, r9, bss_word);
  return wrong == 0 && bss_word == 0 ? 0 : 1;
}

/// An execute-only region: the page of vmas_xonly, brought in by a first call, made PROT_EXEC;
/// the second call must run it.
int xonly() {
  const u64 page = reinterpret_cast<uptr>(&vmas_xonly);
  vmas_xonly();
  const i64 r = mprotect(page, arch::kPageSize, abi::kProtExec);
  println("vmas: xonly: mprotect of {:#x} to --x -> {}", page, r);
  vmas_xonly();
  println("vmas: xonly: called {:#x} again proof={:016x}", page, proof(token(), page + u64(r)));
  // A read of an execute-only region never touched: allowed (the region allows something).
  const i64 x = mmap(0, arch::kPageSize, abi::kProtExec);
  if (abi::is_error(x)) return 1;
  println("vmas: xonly: reading the execute-only page at {:#x}", x);
  const u64 v = *reinterpret_cast<volatile u64*>(x + 8);
  println("vmas: xonly: read {:#x}", v);
  return r == 0 && v == 0 ? 0 : 1;
}

}  // namespace

int main(int, char**) {
  const StringView mode = arg(1);
  if (mode == "lazy") return lazy(arg_number(2, 3));
  if (mode == "bss") return bss();
  if (mode == "hole") return hole();
  if (mode == "protect") return protect();
  if (mode == "none") return none();
  if (mode == "nonefork") return none_fork();
  if (mode == "brk") return brk_mode(arg_number(2, 4));
  if (mode == "stack") return stack(arg_number(2, 16));
  if (mode == "list") return list();
  if (mode == "fault") return fault(arg_number(2, 1000));
  if (mode == "random") return random_ops(arg_number(2, 1000), arg_number(3, 0));
  if (mode == "noexec") return noexec();
  if (mode == "cut") return cut(arg_number(2, 2));
  if (mode == "brkodd") return brk_odd(arg_number(2, 100), arg_number(3, 3));
  if (mode == "jump") return jump(arg_number(2, 4));
  if (mode == "merge") return merge(arg_number(2, 2));
  if (mode == "xonly") return xonly();
  println("vmas: unknown mode '{}' (lazy, bss, hole, protect, none, nonefork, brk, stack, list, fault, random, noexec, "
          "cut, brkodd, jump, merge, xonly)",
          mode);
  return 2;
}
