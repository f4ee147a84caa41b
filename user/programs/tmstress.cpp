// tmstress: asks the kernel for many temporary mappings (temp_stress), nested and with timer
// interrupts landing inside, while other processes are preempted around it (lab 4's stress
// test). Calls of MAPS maps each, until TOTAL maps are made and some timer interrupt has mapped
// a frame of its own inside a call; then prints what the grader recomputes.
//
//   tmstress [TOTAL [MAPS]]     default 100000 maps, 10000 per call
//   tmstress bench N            N bare map+unmap pairs in one call, timed (./pagoda bench tempmap)
#include "user/lib/derived.hpp"
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

constexpr u64 kMaxCalls = 200;

i64 stress(u64 seed, u64 maps, u64 flags, abi::TempStressReport& r) {
  return call(abi::Syscall::TempStress, seed, maps, flags, u64(reinterpret_cast<uptr>(&r)));
}

int bench(u64 n) {
  abi::TempStressReport r{};
  (void)stress(0, n / 10 + 2, abi::kTempStressBare, r);  // warm up
  u64 start = arch::cycle_counter();
  const i64 a = stress(0, n, abi::kTempStressBare, r);
  const u64 with = arch::cycle_counter() - start;
  start = arch::cycle_counter();
  const i64 b = stress(0, 0, abi::kTempStressBare, r);
  const u64 without = arch::cycle_counter() - start;
  if (a != 0 || b != 0) {
    println("tmstress: bench: temp_stress -> {}, {}", a, b);
    return 1;
  }
  println("tmstress: bench: {} pairs: {} counts with them, {} without", n, with, without);
  return 0;
}

}  // namespace

int main(int, char**) {
  if (arg(1) == StringView("bench")) return bench(arg_number(2, 100'000));
  const u64 total = arg_number(1, 100'000), per_call = arg_number(2, 10'000);
  u64 maps = 0, checksum = 0, mismatches = 0, irq_maps = 0, depth = 0, calls = 0;
  while ((maps < total || irq_maps == 0) && calls < kMaxCalls) {
    abi::TempStressReport r{};
    const i64 got = stress(derived::value(derived::tmstress_seed, calls), per_call, 0, r);
    if (got != 0) {
      println("tmstress: call {}: temp_stress -> {}", calls, got);
      return 1;
    }
    ++calls;
    maps += r.maps;
    checksum += r.checksum;
    mismatches += r.mismatches;
    irq_maps += r.irq_maps;
    if (r.max_depth > depth) depth = r.max_depth;
    (void)yield();  // and the timer takes the CPU between calls too
  }
  println("tmstress: {} calls of {} maps: {} maps, {} in interrupts, deepest {}, {} mismatches", calls, per_call, maps,
          irq_maps, depth, mismatches);
  println("tmstress: checksum {:016x} proof={:016x}", checksum, proof(token(), checksum));
  return mismatches == 0 ? 0 : 1;
}
