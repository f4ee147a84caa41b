// Lab 4's probe of the temp-map slot stack, witnessed from outside (grade/test_lab4.py,
// temp_map_slots). Given code: it only makes guards and writes through them; the grader replays
// the writes and finds in guest RAM where each one landed.
#include "core/arch.hpp"
#include "core/panic.hpp"
#include "core/selftest.hpp"
#include "lib/abi.hpp"
#include "lib/console.hpp"
#include "lib/facts.hpp"
#include "mm/tempmap/temp_map.hpp"
#include "mm/vm.hpp"

namespace pagoda {
namespace {

constexpr usize kProbeFrames = 6;  ///< frames the probe maps, above the window when there is RAM there
constexpr usize kProbeDepth = 4;   ///< the deepest nesting of a round (slots 0..3)
constexpr usize kLiveGuards = 3;   ///< guards live at the grader's stop in the middle
constexpr u64 kMaxRounds = 6;
constexpr usize kWords = kPageSize / sizeof(u64);
/// Write n's value is temp_map_pattern(seed ^ kValueSalt, n), its word temp_map_pattern(seed, n).
constexpr u64 kValueSalt = 0x7772'6974'6573ull;
PAGODA_FACT(temp_probe_value_salt, kValueSalt)

/// The three stops of the probe (the first argument of pagoda_grader_checkpoint()).
enum ProbeStop : u64 {
  kFramesStop = 0x544d01,
  kLiveStop = 0x544d02,
  kReadsStop = 0x544d03,
  kPushStop = 0x544d04,    ///< the grader steps from here to kPushedStop: one push, interrupts on
  kPushedStop = 0x544d05,  ///< ... and from here to kPoppedStop: its pop
  kPoppedStop = 0x544d06,
};
PAGODA_FACT(temp_probe_frames_stop, kFramesStop)
PAGODA_FACT(temp_probe_live_stop, kLiveStop)
PAGODA_FACT(temp_probe_reads_stop, kReadsStop)
PAGODA_FACT(temp_probe_push_stop, kPushStop)
PAGODA_FACT(temp_probe_pushed_stop, kPushedStop)
PAGODA_FACT(temp_probe_popped_stop, kPoppedStop)
PAGODA_FACT(temp_probe_frames, kProbeFrames)
PAGODA_FACT(temp_probe_depth, kProbeDepth)
PAGODA_FACT(temp_probe_live_guards, kLiveGuards)

/// What the probe shows the grader at its stops; static so that the grader finds it.
struct Probe {
  u64 frames[kProbeFrames] = {};
  u64 live[kLiveGuards][2] = {};  ///< {guard address, frame} of each guard live at the middle stop
  u64 count = 0;                  ///< writes made so far (the grader's plan says which each is)
  u64 seed = 0;
};
constinit Probe g_probe;

/// Which frame guard @p i of depth @p depth in round @p round maps (the grader's twin:
/// grade/test_lab4.py): consecutive guards of one slot always map different frames.
usize frame_of(u64 round, usize depth, usize i) { return usize((i + depth + round) % kProbeFrames); }

/// Makes the probe's next write through @p map: write n stores a value of the seed's at a word of
/// the seed's (a volatile store: each one happens, in order). Where it lands is the witness: the
/// grader replays the plan and reads the frames in guest RAM (a stale translation puts it in the
/// frame the slot mapped before; two guards in one slot, in the other guard's frame).
void write_through(const TempMap& map) {
  const u64 n = g_probe.count;
  const usize word = usize(abi::temp_map_pattern(g_probe.seed, n) % kWords);
  reinterpret_cast<volatile u64*>(map.bytes())[word] = abi::temp_map_pattern(g_probe.seed ^ kValueSalt, n);
  g_probe.count = n + 1;
}

/// Guards @p i .. @p depth - 1 of one round, nested: each written through right after it is made,
/// and every live one again once the deepest is.
void nest(u64 round, usize depth, usize i, const TempMap* const* outer) {
  if (i == depth) {
    for (usize k = 0; k < depth; ++k) write_through(*outer[k]);
    return;
  }
  const PhysAddr frame(g_probe.frames[frame_of(round, depth, i)]);
  TempMap map(frame);
  write_through(map);
  const TempMap* guards[kProbeDepth];
  for (usize k = 0; k < i; ++k) guards[k] = outer[k];
  guards[i] = &map;
  nest(round, depth, i + 1, guards);
}

}  // namespace

/// The temp-map slot stack, seen from outside. Takes kProbeFrames frames (above the window when
/// the machine has RAM there) and stops (kFramesStop) so that the grader fills them with values
/// of its own. Then: three nested guards, each written through, and a stop while all three are
/// live (kLiveStop: the grader walks the live root at each guard's address); then rounds=N rounds
/// of nesting 1, 2, 3 and 4 guards deep, each guard of a slot mapping another frame than the one
/// before it, every guard written through when made and again when the deepest is. Then one guard
/// made and released with interrupts on, which the grader steps through one instruction at a time
/// (kPushStop .. kPoppedStop), and a last stop (kReadsStop) where the grader reads the frames: a
/// write that is not where the plan puts it went through another frame (a stale translation of a
/// slot given back without invalidating it, or a slot two live guards share). seed=S picks the
/// words and values written.
PAGODA_SELFTEST(temp_map_slots) {
  if (!vm::ready()) panic("lab 1 is not done: the kernel has no page tables of its own");
  if (TempMapArea::current() == nullptr)
    panic("temp_map_slots: the kernel has no temp-map area: lab 4: write TempMapArea::init(), push() and pop() in "
          "kernel/mm/tempmap/temp_map.cpp (labs/04-temp-mappings/README.md)");
  const u64 rounds = ctx.arg("rounds", 4);
  if (rounds == 0 || rounds > kMaxRounds) panic("temp_map_slots: rounds={}: 1..{}", rounds, kMaxRounds);
  g_probe.seed = ctx.arg("seed", 0x544d);
  for (u64& f : g_probe.frames) {
    const Result<PhysAddr> frame = vm::frames().allocate_high();
    if (frame.is_error()) panic("temp_map_slots: no frame for the probe: {}", frame.error());
    f = frame.value().value();
  }
  pagoda_grader_checkpoint(kFramesStop, reinterpret_cast<u64>(g_probe.frames), kProbeFrames);

  {
    const PhysAddr a(g_probe.frames[0]), b(g_probe.frames[1]), c(g_probe.frames[2]);
    // Each guard's address and frame noted as it is made (before the next one could take its slot).
    const auto note = [](usize k, const TempMap& map) {
      g_probe.live[k][0] = map.address().value();
      g_probe.live[k][1] = map.frame().value();
    };
    TempMap first(a);
    note(0, first);
    write_through(first);
    TempMap second(b);
    note(1, second);
    write_through(second);
    TempMap third(c);
    note(2, third);
    write_through(third);
    pagoda_grader_checkpoint(kLiveStop, reinterpret_cast<u64>(g_probe.live), kLiveGuards);
    write_through(first);
    write_through(second);
    write_through(third);
  }
  for (u64 round = 0; round < rounds; ++round)
    for (usize depth = 1; depth <= kProbeDepth; ++depth) nest(round, depth, 0, nullptr);
  // Interrupt safety, stepped by the grader one instruction at a time from kPushStop to
  // kPoppedStop: with interrupts on (as in a system call), one guard is made and released. At
  // every instruction an interrupt could land and make a guard of its own.
  arch::interrupts_enable();
  pagoda_grader_checkpoint(kPushStop, TempMapArea::current()->depth(), 0);
  {
    TempMap guard(PhysAddr(g_probe.frames[3]));
    pagoda_grader_checkpoint(kPushedStop, guard.address().value(), guard.slot());
  }
  pagoda_grader_checkpoint(kPoppedStop, 0, 0);
  arch::interrupts_disable();
  pagoda_grader_checkpoint(kReadsStop, g_probe.count, 0);
  println("temp_map_slots: {} writes through temp-map slots in {} rounds; slots live now: {}", g_probe.count, rounds,
          TempMapArea::current()->depth());
  for (const u64 f : g_probe.frames) vm::frames().free(PhysAddr(f));
}

}  // namespace pagoda

// ---- copy_frame(), seen from outside (grade/test_lab4.py, copy_frame) ----------------------------

namespace pagoda {
namespace {

/// The two stops of the copy test (the first argument of pagoda_grader_checkpoint()).
enum CopyStop : u64 {
  kCopyFramesStop = 0x544d11,  ///< the frames taken: the grader fills them all
  kCopiedStop = 0x544d12,      ///< every copy_frame() has returned: the grader reads them all
};
PAGODA_FACT(temp_copy_frames_stop, kCopyFramesStop)
PAGODA_FACT(temp_copy_copied_stop, kCopiedStop)

/// The copies, each between frames of its own: both above the window, the source in the window
/// and the target above it, the source above and the target in the window.
constexpr usize kCopies = 3;

/// A frame for the copy test, above the window (@p high, when the machine has RAM there) or in it.
PhysAddr copy_test_frame(bool high) {
  const PhysAddr limit = vm::reachable_limit();
  const Result<PhysAddr> frame = high ? vm::frames().allocate_high() : vm::frames().allocate_below(limit);
  if (frame.is_error()) panic("copy_frame: no frame for the test: {}", frame.error());
  return frame.value();
}

}  // namespace

/// vm::copy_frame(), witnessed. Takes a source and a target for each of the kCopies cases (case
/// k: frames[2k], frames[2k + 1]) and stops (kCopyFramesStop, with the frames and kCopies) so
/// that the grader fills each frame with values of its own; makes the copies with
/// vm::copy_frame(), starting at case first=K (the grader's pick) and going round, and stops
/// again (kCopiedStop): the grader reads every frame from guest RAM, and judges. Given code.
PAGODA_SELFTEST(copy_frame) {
  if (!vm::ready()) panic("lab 1 is not done: the kernel has no page tables of its own");
  constexpr bool kHigh[2 * kCopies] = {true, true, false, true, true, false};
  u64 frames[2 * kCopies];
  for (usize i = 0; i < 2 * kCopies; ++i) frames[i] = copy_test_frame(kHigh[i]).value();
  const u64 first = ctx.arg("first", 0) % kCopies;
  pagoda_grader_checkpoint(kCopyFramesStop, reinterpret_cast<u64>(frames), kCopies);
  for (usize i = 0; i < kCopies; ++i) {
    const usize k = (first + i) % kCopies;
    vm::copy_frame(PhysAddr(frames[2 * k + 1]), PhysAddr(frames[2 * k]));
  }
  const usize live = TempMapArea::current() != nullptr ? TempMapArea::current()->depth() : 0;
  pagoda_grader_checkpoint(kCopiedStop, reinterpret_cast<u64>(frames), kCopies);
  println("copy_frame: {} copies from case {}; temp-map slots live now: {}", kCopies, first, live);
  for (const u64 f : frames) vm::frames().free(PhysAddr(f));
}

}  // namespace pagoda
