// fuzz: makes argv[1] (default 10,000) system calls whose numbers and arguments come from a
// generator seeded by the boot token, and counts what came back. The kernel must answer every
// one with a result, never a panic (lab 3). It prints one line at the end.
//
// What it never does, because it would end or stall the test rather than probe the kernel:
// exit (it would end the fuzzing; its number is drawn but replaced by getpid), fork (lab 6: every
// child would fuzz on with the same stream, repeating the same calls and faults; replaced by
// getpid too), kill (it could end the fuzzer or its siblings; getpid too), read from the
// console (fd 0 with a usable buffer would wait for input: the descriptor is changed), long
// sleeps (valid tick counts are cut to 1), and more than kMaxOutput bytes of output through
// write to fd 1 or 2, and munmap, mprotect or a fixed mmap over its own image or stack (a range
// drawn from a page-aligned address and a pointer-sized length reaches the image now and then;
// the kernel rightly takes the pages away, and the fuzzer dies at its next fetch: drawn, then
// replaced by getpid), and a spawn or exec that would succeed: a name pointer drawn into the
// scratch buffer can meet a program's name that an earlier call (programs()) wrote there, and a
// shell spawned would wait on the console and keep the run from ending, an exec would replace the
// fuzzer. Both always get an argv in the kernel half, so they fail (EFAULT) once the name is
// checked.
#include "lib/random.hpp"
#include "user/lib/derived.hpp"
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

/// Calls made so far: the grader reads it from guest RAM while the fuzzer runs and at its end.
extern "C" volatile u64 fuzz_calls = 0;

namespace {

constexpr usize kScratch = 512;
constexpr usize kMaxOutput = 256;

/// What valid pointers point into (never the fuzzer's own state).
alignas(16) u8 g_scratch[kScratch];

/// How far below the stack pointer at start the stack is kept from munmap and mprotect.
constexpr u64 kStackKept = 1024 * 1024;

/// True when system call @p number with arguments @p a would change the mappings of a page of
/// [image_lo, image_hi) or from @p stack_lo up: munmap, mprotect, or mmap with kMapFixed over
/// [a[0], a[0] + a[1]) (rounded out to pages; a range that wraps is refused by the kernel).
bool hits_self(u64 number, const u64 (&a)[6], u64 image_lo, u64 image_hi, u64 stack_lo) {
  const bool changes = number == u64(abi::Syscall::Munmap) || number == u64(abi::Syscall::Mprotect) ||
                       (number == u64(abi::Syscall::Mmap) && (a[3] & abi::kMapFixed) != 0);
  if (!changes) return false;
  const u64 lo = a[0] & ~(arch::kPageSize - 1);
  const u64 hi = a[0] + a[1] + arch::kPageSize;
  if (hi < a[0]) return false;  // wraps: refused (EINVAL)
  return (lo < image_hi && hi > image_lo) || hi > stack_lo;
}

[[gnu::noinline]] u64 pick_number(TestRandom& r) {
  switch (r.below(8)) {
    case 0: return r.next();      // anything at all
    case 1: return r.below(256);  // past the table, and reserved numbers
    case 2: return abi::kSyscallCount + r.below(64);
    default: return 1 + r.below(abi::kFirstTestSyscall + 4);  // mostly real calls
  }
}

u64 pick_argument(TestRandom& r) {
  switch (r.below(10)) {
    case 0: return 0;
    case 1: return r.below(64);                                                  // small counts, descriptors
    case 2: return r.next();                                                     // anything
    case 3: return reinterpret_cast<uptr>(g_scratch) + r.below(kScratch);        // inside a valid buffer
    case 4: return reinterpret_cast<uptr>(g_scratch) + kScratch - r.below(16);   // running off its end
    case 5: return 0xffff'8000'0000'0000ull + (r.next() & 0x7fff'ffff'ffffull);  // the kernel half
    case 6: return 0x0000'8000'0000'0000ull + (r.next() & 0x7fff'ffff'ffffull);  // non-canonical
    case 7: return reinterpret_cast<uptr>(&pick_number) + r.below(64);           // own text (read-only)
    case 8: return ~u64{0} - r.below(16);                                        // wraps around
    default: return r.below(1u << 20);                                           // medium sizes, low addresses
  }
}

}  // namespace

extern "C" void _start();
extern "C" char _end[];  // user.ld: the end of the last segment

int main(int, char**) {
  const u64 count = arg_number(1, 10'000);
  const u64 seed = derived::value(derived::fuzz_seed) | 1;
  TestRandom r{seed};
  u64 errors = 0, printed = 0, mix = 0;
  const u64 image_lo = reinterpret_cast<uptr>(&_start) & ~(arch::kPageSize - 1);
  const u64 image_hi = reinterpret_cast<uptr>(_end);
  const u64 stack_lo = (reinterpret_cast<uptr>(&count) & ~(arch::kPageSize - 1)) - kStackKept;
  for (u64 i = 0; i < count; ++i) {
    u64 number = pick_number(r);
    u64 a[6];
    for (u64& x : a) x = pick_argument(r);
    if (number == u64(abi::Syscall::Exit) || number == u64(abi::Syscall::Fork) || number == u64(abi::Syscall::Kill) ||
        hits_self(number, a, image_lo, image_hi, stack_lo))
      number = u64(abi::Syscall::GetPid);
    if (number == u64(abi::Syscall::Read) && a[0] == u64(abi::kStdin)) a[0] = 0x7f;
    if (number == u64(abi::Syscall::Sleep) && a[0] <= 1000) a[0] = 1;
    if (number == u64(abi::Syscall::Write) && (a[0] == 1 || a[0] == 2)) {
      a[2] %= 4;
      if (printed + a[2] > kMaxOutput) a[0] = 0x7f;
      else printed += a[2];
    }
    if (number == u64(abi::Syscall::Spawn) || number == u64(abi::Syscall::Exec)) a[1] = 0xffff'8000'0000'0000ull;
    const i64 result = syscall_raw(number, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (abi::is_error(result)) ++errors;
    mix = (mix ^ u64(result)) * 0x100000001b3ull;
    fuzz_calls = i + 1;
  }
  println("");
  println("fuzz: pid {} made {} calls from seed {:#x}: {} errors, mix {:016x} proof={:016x}", getpid(), u64(fuzz_calls),
          seed, errors, mix, proof(token(), fuzz_calls ^ seed));
  return 0;
}
