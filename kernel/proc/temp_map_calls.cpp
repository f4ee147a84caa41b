// The test calls of lab 4 (see temp_map_calls.hpp).
#include "proc/temp_map_calls.hpp"

#include "core/arch.hpp"
#include "core/stop.hpp"
#include "lib/string.hpp"
#include "lib/abi.hpp"
#include "lib/facts.hpp"
#include "mm/tempmap/temp_map.hpp"
#include "mm/vm.hpp"
#include "proc/process.hpp"
#include "proc/user_memory.hpp"

namespace pagoda::proc {

/// A frame handed from TempFill to TempTake (the grader reads it too: frame, by symbol).
struct HeldFrame {
  u64 frame;  ///< physical address; 0 when the entry is free
  u64 owner;  ///< pid of the process that filled it
  u64 seed;
};

/// What a TempStress call is doing now; the timer hook and the grader (at a stop inside the
/// call: pagoda_temp_stress_round) read it.
struct StressState {
  u64 active;  ///< 1 while a checked call runs
  u64 seed;
  u64 frames[abi::kTempStressFrames];
  u64 mismatches;
  u64 irq_maps;
  u64 max_depth;
  u64 irq_maps_total;  ///< every call's, since boot
};

}  // namespace pagoda::proc

/// The frames TempFill holds (read by the grader from guest RAM).
extern "C" constinit pagoda::proc::HeldFrame pagoda_temp_frames[pagoda::abi::kTempFrames] = {};
/// The running TempStress call (read by the grader and by the timer hook).
extern "C" constinit volatile pagoda::proc::StressState pagoda_temp_stress = {};

/// A round of TempStress with slots live: a function of its own so that the grader can stop
/// there (grade/test_lab4.py) and see the slot stack, the slot entries and the frames.
extern "C" [[PAGODA_STOP(pagoda_temp_stress_round)]] void pagoda_temp_stress_round(pagoda::u64 round,
                                                                                   pagoda::u64 depth) {
  asm volatile("" ::"r"(round), "r"(depth) : "memory");
}

/// A temporary mapping of @p frame is live at @p va: a function of its own so that the grader can
/// stop there (grade/test_lab4.py temp_maps_live) and see, with its own walk of the live root, that
/// the slot maps the frame now. What the arguments say is only where to look.
extern "C" [[PAGODA_STOP(pagoda_temp_map_live)]] void pagoda_temp_map_live(pagoda::u64 va, pagoda::u64 frame) {
  asm volatile("" ::"r"(va), "r"(frame) : "memory");
}

namespace pagoda::proc {
namespace {

// Where the grader finds what it reads of these (grade/test_lab4.py).
PAGODA_FACT(temp_frames_stride, sizeof(HeldFrame))
PAGODA_FACT(temp_frames_frame, offsetof(HeldFrame, frame))
PAGODA_FACT(temp_frames_owner, offsetof(HeldFrame, owner))
PAGODA_FACT(temp_frames_seed, offsetof(HeldFrame, seed))
PAGODA_FACT(temp_stress_seed, offsetof(StressState, seed))
PAGODA_FACT(temp_stress_frames, offsetof(StressState, frames))
PAGODA_FACT(temp_stress_irq_maps_total, offsetof(StressState, irq_maps_total))

using abi::Errno;

constexpr i64 fail(Errno e) { return abi::error_result(e); }
constexpr usize kWords = kPageSize / sizeof(u64);

/// A frame above the window (TempMap is the only way to it); NoMemory without temp maps.
Result<PhysAddr> high_frame() {
  if (TempMapArea::current() == nullptr) return Error(Error::NoMemory, "no temporary mappings (lab 4)");
  return vm::frames().allocate_high();
}

void fill(PhysAddr frame, u64 seed) {
  TempMap map(frame);
  pagoda_temp_map_live(reinterpret_cast<u64>(map.bytes()), frame.value());
  u64* words = reinterpret_cast<u64*>(map.bytes());
  for (usize i = 0; i < kWords; ++i) words[i] = abi::temp_map_pattern(seed, i);
}

u64 word(const TempMap& map, usize index) { return reinterpret_cast<const volatile u64*>(map.bytes())[index]; }

void note_depth() {
  const u64 depth = TempMapArea::current()->depth();
  if (depth > pagoda_temp_stress.max_depth) pagoda_temp_stress.max_depth = depth;
}

/// Reads word @p index of stress frame @p k through @p map and counts a mismatch.
u64 checked(const TempMap& map, usize k, usize index) {
  const u64 got = word(map, index);
  if (got != abi::temp_map_pattern(pagoda_temp_stress.seed + k, index))
    pagoda_temp_stress.mismatches = pagoda_temp_stress.mismatches + 1;
  return got;
}

}  // namespace

i64 sys_temp_fill(Process& p, u64 seed) {
  usize slot = 0;
  while (slot < abi::kTempFrames && pagoda_temp_frames[slot].frame != 0) ++slot;
  if (slot == abi::kTempFrames) return fail(Errno::Again);
  const Result<PhysAddr> frame = high_frame();
  if (frame.is_error()) return fail(Errno::NoMem);
  fill(frame.value(), seed);
  pagoda_temp_frames[slot] = HeldFrame{.frame = frame.value().value(), .owner = p.pid, .seed = seed};
  return i64(slot);
}

i64 sys_temp_take(Process& p, u64 handle, u64 out, u64 size) {
  if (handle >= abi::kTempFrames || pagoda_temp_frames[handle].frame == 0) return fail(Errno::Inval);
  const usize n = usize(min<u64>(size, kPageSize));
  if (!in_user_half(out, n)) return fail(Errno::Fault);
  const PhysAddr frame(pagoda_temp_frames[handle].frame);
  u64 chunk[64];
  for (usize done = 0; done < n;) {
    const usize k = min(n - done, sizeof chunk);
    {
      TempMap map(frame);
      if (done == 0) pagoda_temp_map_live(reinterpret_cast<u64>(map.bytes()), frame.value());
      memcpy(chunk, map.bytes() + done, k);
    }  // released before touching user memory: a user copy never holds a slot
    if (copy_to_user(p.space(), out + done, chunk, k).is_error()) return fail(Errno::Fault);
    done += k;
  }
  pagoda_temp_frames[handle] = HeldFrame{};
  vm::frames().free(frame);
  return i64(n);
}

usize release_untaken_temp_frames() {
  usize freed = 0;
  for (HeldFrame& held : pagoda_temp_frames) {
    if (held.frame == 0) continue;
    vm::frames().free(PhysAddr(held.frame));
    held = HeldFrame{};
    ++freed;
  }
  return freed;
}

i64 sys_temp_stress(Process& p, u64 seed, u64 maps, u64 flags, u64 out) {
  if (flags & ~abi::kTempStressBare || maps > abi::kTempStressMaxMaps) return fail(Errno::Inval);
  if (!in_user_half(out, sizeof(abi::TempStressReport))) return fail(Errno::Fault);
  TempMapArea* area = TempMapArea::current();
  if (area == nullptr) return fail(Errno::NoMem);
  abi::TempStressReport report{};
  const u64 maps_before = area->maps();
  PhysAddr frames[abi::kTempStressFrames];
  usize got = 0;
  for (; got < abi::kTempStressFrames; ++got) {
    const Result<PhysAddr> f = high_frame();
    if (f.is_error()) break;
    frames[got] = f.value();
  }
  i64 result = 0;
  if (got < abi::kTempStressFrames) {
    result = fail(Errno::NoMem);
  } else if (flags & abi::kTempStressBare) {
    for (u64 i = 0; i < maps; ++i) {
      TempMap map(frames[0]);
      asm volatile("" ::"r"(map.bytes()) : "memory");
    }
  } else {
    for (usize k = 0; k < abi::kTempStressFrames; ++k) {
      fill(frames[k], seed + k);
      pagoda_temp_stress.frames[k] = frames[k].value();
      report.frames[k] = frames[k].value();
    }
    pagoda_temp_stress.seed = seed;
    pagoda_temp_stress.mismatches = 0;
    pagoda_temp_stress.irq_maps = 0;
    pagoda_temp_stress.max_depth = 0;
    pagoda_temp_stress.active = 1;
    u64 sum = 0;
    arch::interrupts_enable();  // ticks land inside the rounds and map frames of their own
    for (u64 r = 0; r < maps / 2; ++r) {
      const usize a = usize(r % abi::kTempStressFrames), b = usize((3 * r + 1) % abi::kTempStressFrames);
      const usize j = usize(abi::temp_map_pattern(seed, r) % kWords);
      TempMap outer(frames[a]);
      const u64 x = checked(outer, a, j);
      u64 y;
      {
        TempMap inner(frames[b]);
        note_depth();
        pagoda_temp_stress_round(r, area->depth());
        y = checked(inner, b, j ^ 1);
      }
      const u64 x2 = checked(outer, a, j);
      sum += x * 3 + y + x2;
    }
    arch::interrupts_disable();
    pagoda_temp_stress.active = 0;
    report.checksum = sum;
    report.mismatches = pagoda_temp_stress.mismatches;
    report.irq_maps = pagoda_temp_stress.irq_maps;
    report.max_depth = pagoda_temp_stress.max_depth;
  }
  for (usize k = 0; k < got; ++k) vm::frames().free(frames[k]);
  report.maps = area->maps() - maps_before;
  if (copy_to_user(p.space(), out, &report, sizeof report).is_error()) return fail(Errno::Fault);
  return result;
}

void temp_map_timer_hook() {
  if (!pagoda_temp_stress.active) return;
  // Two frames one after the other in the same slot, above whatever the interrupted round
  // holds: the second read shows a translation of the first left behind.
  for (int i = 0; i < 2; ++i) {
    const u64 n = pagoda_temp_stress.irq_maps;
    const usize k = usize(n % abi::kTempStressFrames), j = usize((n * 37) % kWords);
    TempMap map(PhysAddr(pagoda_temp_stress.frames[k]));
    note_depth();
    (void)checked(map, k, j);
    pagoda_temp_stress.irq_maps = n + 1;
    pagoda_temp_stress.irq_maps_total = pagoda_temp_stress.irq_maps_total + 1;
  }
}

}  // namespace pagoda::proc
