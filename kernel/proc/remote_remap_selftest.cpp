// The remote eviction of lab 8, shown with a user process (issue 53's prototype gate): spin runs
// pinned to CPU 1, counting in its spin_count; CPU 0 moves the page that holds it to a new frame
// (a copy) in spin's own tables and invalidates only its own TLB. CPU 1 keeps its cached
// translation: spin goes on counting in the old frame, and the new frame's count stands still.
// Then the cure the boot asks for (cure=ipi: a shootdown, a request in CPU 1's mailbox whose IPI
// handler invalidates the page there; cure=space: the space's own invalidation of the page, what
// labs 1-7 do: on AArch64 TLBI VAE1IS reaches CPU 1, on x86_64 INVLPG runs only where the root
// is live, which on CPU 0 it is not), and two more looks say which frame spin counts in.
//
// The grader gives spin_count's address (count=VA, from the spin ELF's symbols) and reads the
// line this prints (grade/harness_tests/test_smp.py). Given code: the lab-8 shootdown is not yet
// a lab.
#include "core/arch.hpp"
#include "core/cpu.hpp"
#include "core/panic.hpp"
#include "core/selftest.hpp"
#include "dev/platform.hpp"
#include "lib/console.hpp"
#include "lib/facts.hpp"
#include "mm/base/layout.hpp"
#include "mm/tempmap/temp_map.hpp"
#include "mm/swap/swapper.hpp"
#include "mm/vm.hpp"
#include "proc/loader.hpp"
#include "proc/process.hpp"
#include "proc/programs.hpp"

namespace pagoda {
namespace {

using Format = arch::PageTableFormat;

/// Lets CPU 1 run for @p ticks of the boot CPU's timer: CPU 0 waits with interrupts on and
/// without the kernel lock (CPU 1 takes it for spin's first faults and its ticks).
void let_cpu1_run(u64 ticks) {
  kernel_lock_leave();
  arch::interrupts_enable();
  const u64 until = arch::timer_ticks() + ticks;
  while (arch::timer_ticks() < until) arch::wait_for_interrupt();
  arch::interrupts_disable();
  (void)kernel_lock_enter();
}

/// The frame that maps @p page in @p space, or PhysAddr() when none does.
PhysAddr frame_of(AddressSpace& space, VirtAddr page) {
  ConsistencyBatch batch = space.batch();
  AddressSpace::Cursor c = space.cursor(batch, page);
  const u64* leaf = c.page_entry();
  return leaf == nullptr ? PhysAddr() : Format::output_address(*leaf, Format::kLevels - 1);
}

/// The u64 at @p offset of frame @p frame (through a temporary mapping: user frames may lie
/// beyond the window).
u64 word_of(PhysAddr frame, usize offset) {
  const TempMap map(frame);
  return *reinterpret_cast<const volatile u64*>(map.address().value() + offset);
}

/// Unmaps @p page of @p space (mapped, resident), as munmap does, in one batch that first
/// invalidates the @p others pages after it, so that @p page is the last of the batch's pages:
/// past kShootdownPages pages in all, the shootdown asks the space's other CPUs for every
/// translation. The batch releases the frame (vm::put_user_frame, where the grader stops) after
/// its shootdown; the page's next access faults it back in (lab 5).
void unmap_last_in_batch(AddressSpace& space, VirtAddr page, usize others) {
  MUST(vm::forget_user_pages(space, page, page.offset(kPageSize)));
  ConsistencyBatch batch = space.batch();
  for (usize i = 1; i <= others; ++i) batch.invalidate(page.offset(i * kPageSize), false);
  AddressSpace::Cursor c = space.cursor(batch, page);
  batch.release_frame(MUST(c.unmap()));
}

constexpr u64 kTicksPerLook = 5;
constexpr u64 kMaxStartTicks = 2000;
constexpr u64 kMaxBackTicks = 200;

/// Where spin counts (the grader's count=VA, from the spin ELF's symbols): the page, and the
/// count's offset in it.
struct SpinCount {
  VirtAddr page;
  usize offset = 0;
};

/// The start every lab-8 self-test shares: panics, naming @p test, unless two CPUs are online
/// and @p ctx gives count=VA; then starts spin with @p args (argv[0] "spin"), pinned to CPU
/// @p cpu. Returns the process; @p where says where it counts.
proc::Process& start_spinner(const char* test, const SelfTestContext& ctx, Span<const StringView> args, u32 cpu,
                             SpinCount& where) {
  if (cpus_online() < 2) panic("{}: needs two CPUs online (QEMU's -smp 2)", test);
  const VirtAddr count(ctx.arg("count", 0));
  if (count.value() == 0) panic("{}: count=VA (spin's spin_count) is missing", test);
  where.page = count.align_down(kPageSize);
  where.offset = count.value() - where.page.value();
  const EmbeddedProgram* spin = find_program("spin");
  if (spin == nullptr) panic("{}: no program spin", test);
  proc::Process& p = *MUST(proc::create_process("spin", spin->image(), args));
  p.cpu = cpu;
  return p;
}

/// Lets CPU 1 run, kTicksPerLook ticks at a time, until @p p counts at @p where in a frame of its
/// own (lab 5: the page comes at its first touch); returns that frame. Panics, naming @p test,
/// past kMaxStartTicks.
PhysAddr await_counting(const char* test, proc::Process& p, const SpinCount& where) {
  PhysAddr frame;
  for (u64 waited = 0; frame == PhysAddr() || word_of(frame, where.offset) == 0; waited += kTicksPerLook) {
    if (waited > kMaxStartTicks) panic("{}: spin did not count on CPU 1 in {} ticks", test, waited);
    let_cpu1_run(kTicksPerLook);
    frame = frame_of(p.space(), where.page);
  }
  return frame;
}

/// Stages @p first to first+2 of an unmap in a batch of @p others pages more: @p first once
/// @p page is back (at most kTicksPerLook ticks: a kernel whose CPU 1 kept a stale translation
/// never faults it back, and the unmap is then skipped), first+1 and first+2 five and ten ticks
/// after the unmap.
void unmap_stages(AddressSpace& space, VirtAddr page, usize others, u64 first) {
  for (u64 waited = 0; frame_of(space, page) == PhysAddr() && waited < kTicksPerLook; waited += 1) let_cpu1_run(1);
  pagoda_grader_checkpoint(first, 0, 0);
  if (frame_of(space, page) != PhysAddr()) unmap_last_in_batch(space, page, others);
  let_cpu1_run(kTicksPerLook);
  pagoda_grader_checkpoint(first + 1, 0, 0);
  let_cpu1_run(kTicksPerLook);
  pagoda_grader_checkpoint(first + 2, 0, 0);
}

}  // namespace

PAGODA_SELFTEST(smp_remote_remap) {
  const bool by_ipi = ctx.arg("ipi", 1) != 0;
  const StringView args[] = {"spin", "0x10000000000"};  // counts on until the machine stops
  SpinCount at;
  proc::Process& p = start_spinner("smp_remote_remap", ctx, Span<const StringView>(args, 2), 1, at);
  const VirtAddr page = at.page;
  const usize offset = at.offset;
  const VirtAddr count = page.offset(offset);
  const PhysAddr old_frame = await_counting("smp_remote_remap", p, at);

  // CPU 0 moves the page to a copy and invalidates its own TLB alone.
  const PhysAddr new_frame = MUST(vm::frames().allocate());
  {
    const TempMap from(old_frame);
    vm::write_frame(new_frame, 0, reinterpret_cast<const void*>(from.address().value()), kPageSize);
  }
  {
    ConsistencyBatch batch = p.space().batch();
    AddressSpace::Cursor c = p.space().cursor(batch, page);
    u64* leaf = c.page_entry();
    *leaf = *leaf ^ old_frame.value() ^ new_frame.value();  // the same entry, the other frame
    batch.wrote();
  }
  arch::invalidate_page_local(page.value());
  u64 stale[4];
  stale[0] = word_of(old_frame, offset), stale[1] = word_of(new_frame, offset);
  let_cpu1_run(kTicksPerLook);
  stale[2] = word_of(old_frame, offset), stale[3] = word_of(new_frame, offset);

  // The cure.
  if (by_ipi) {
    (void)cpu_request(1, MailboxOp::InvalidatePage, page.value());
  } else {
    ConsistencyBatch batch = p.space().batch();
    batch.invalidate(page, false);
  }
  let_cpu1_run(kTicksPerLook);  // (a write in flight may still reach the old frame once)
  u64 cured[4];
  cured[0] = word_of(old_frame, offset), cured[1] = word_of(new_frame, offset);
  let_cpu1_run(kTicksPerLook);
  cured[2] = word_of(old_frame, offset), cured[3] = word_of(new_frame, offset);

  println("smp_remote_remap: spin (pid {}) on CPU 1 counts at {:#x}, moved from frame {:#x} to {:#x} by CPU 0 with "
          "a local invalidation: old frame {} -> {}, new frame {} -> {}; after the {}: old frame {} -> {}, new frame "
          "{} -> {}",
          p.pid, count.value(), old_frame.value(), new_frame.value(), stale[0], stale[2], stale[1], stale[3],
          by_ipi ? "shootdown" : "space's own invalidation", cured[0], cured[2], cured[1], cured[3]);
  arch::shutdown(ExitStatus::Success);
}

}  // namespace pagoda

namespace pagoda {

// Lab 8's remote eviction, for the grader (grade/test_lab8.py): spin (pid A) runs pinned to CPU 1,
// counting at count=VA; spin (pid B) is pinned to CPU 0 and never runs. CPU 0 evicts A's
// counting page through the swapper (lab 7) while A runs, then B's. The grader stops at each
// pagoda_grader_checkpoint(stage, 0, 0) and looks from outside: stage 1 before A's eviction,
// 2 after it and 5 ticks of CPU 1, 3 five ticks later, 4 before the eviction of B's top stack
// page (B never ran), 5 after it; 6 before A's page is unmapped, the last of a batch of more
// than kShootdownPages pages (a shootdown of "all"), 7 and 8 five and ten ticks after; 9 to 11
// the same with a batch of 4 pages (once the page is back), 12 to 14 with 40 (past what a batch
// lists: a flush of the whole space); 15 while spin C runs on CPU 1 in A's place, before A's
// page is evicted again, 16 right after, 17 once A had turns again (or 200 ticks went by). Needs swap (a disk and userframes=).
PAGODA_SELFTEST(smp_remote_evict) {
  const StringView args[] = {"spin", "0x10000000000"};
  const Span<const StringView> argv(args, 2);
  SpinCount at;
  proc::Process& a = start_spinner("smp_remote_evict", ctx, argv, 1, at);
  proc::Process& b = start_spinner("smp_remote_evict", ctx, argv, 0, at);
  const VirtAddr page = at.page;
  (void)await_counting("smp_remote_evict", a, at);
  pagoda_grader_checkpoint(1, 0, 0);
  MUST(vm::evict_user_page(a.space(), page, false));
  let_cpu1_run(kTicksPerLook);
  pagoda_grader_checkpoint(2, 0, 0);
  let_cpu1_run(kTicksPerLook);
  pagoda_grader_checkpoint(3, 0, 0);
  // B's top stack page (the loader's): B never ran, on any CPU.
  const VirtAddr b_page(proc::kUserStackTop - kPageSize);
  pagoda_grader_checkpoint(4, 0, 0);
  MUST(vm::evict_user_page(b.space(), b_page, false));
  pagoda_grader_checkpoint(5, 0, 0);
  // A's page (back by now: evicted at stage 1) the last of a batch past kShootdownPages pages;
  // again in a batch of 4, a request that lists them; again in one of 40, past what a batch
  // lists: it flushes the whole space.
  unmap_stages(a.space(), page, kShootdownPages, 6);
  unmap_stages(a.space(), page, 3, 9);
  unmap_stages(a.space(), page, ConsistencyBatch::kMaxPages + 7, 12);

  // A switched away: spin C joins A on CPU 1; A's page is evicted while C runs there (CPU 1
  // cannot switch while this CPU holds the kernel lock), and A comes back to it.
  proc::Process& c = start_spinner("smp_remote_evict", ctx, argv, 1, at);
  for (u64 waited = 0; proc::detail::g_current_of.of(1) != &c || frame_of(a.space(), page) == PhysAddr(); waited += 1) {
    if (waited > kMaxStartTicks) panic("smp_remote_evict: spin (pid {}) never ran on CPU 1 with A's page in", c.pid);
    let_cpu1_run(1);
  }
  pagoda_grader_checkpoint(15, 0, 0);
  MUST(vm::evict_user_page(a.space(), page, false));
  pagoda_grader_checkpoint(16, 0, 0);
  for (u64 waited = 0; frame_of(a.space(), page) == PhysAddr() && waited < kMaxBackTicks; waited += 1) let_cpu1_run(1);
  let_cpu1_run(kTicksPerLook);
  pagoda_grader_checkpoint(17, 0, 0);
  arch::shutdown(ExitStatus::Success);
}

}  // namespace pagoda

namespace pagoda {

// What a shootdown costs, for `./pagoda bench shootdown` (under `-icount shift=0`, where the
// guest's clock counts instructions, both vCPUs' in turn): CPU 0 asks CPU 1, idle, n=N times to
// drop one page, then N times 32 pages (past kShootdownPages: every translation, what a batch of
// 32 pages sends), and times as many empty turns; with the IPIs CPU 1 took for each set.
PAGODA_SELFTEST(smp_shootdown_cost) {
  if (cpus_online() < 2) panic("smp_shootdown_cost: needs two CPUs online (QEMU's -smp 2)");
  const u64 n = ctx.arg("n", 1000);
  constexpr usize kBatch = 32;
  uptr pages[kBatch];
  for (usize i = 0; i < kBatch; ++i) pages[i] = 0x400000 + i * kPageSize;
  const u64 ipis0 = cpu(1).ipis;
  const u64 t0 = arch::device_clock();
  for (u64 i = 0; i < n; ++i) shootdown(u32{1} << 1, pages, 1);
  const u64 t1 = arch::device_clock();
  const u64 ipis1 = cpu(1).ipis;
  for (u64 i = 0; i < n; ++i) shootdown(u32{1} << 1, pages, kBatch);
  const u64 t2 = arch::device_clock();
  const u64 ipis2 = cpu(1).ipis;
  for (u64 i = 0; i < n; ++i) asm volatile("" ::: "memory");
  const u64 t3 = arch::device_clock();
  println("smp_shootdown_cost: {} shootdowns to CPU 1: one page {} clock ticks, {} IPIs; {} pages {} clock ticks, {} "
          "IPIs; {} empty turns {} clock ticks",
          n, t1 - t0, ipis1 - ipis0, kBatch, t2 - t1, ipis2 - ipis1, n, t3 - t2);
  arch::shutdown(ExitStatus::Success);
}

}  // namespace pagoda

namespace pagoda {

// Lab 8's lazy TLB, for the grader (grade/test_lab8.py lazy_idle): spin A, pinned to CPU 1, counts
// at count=VA and sleeps 20 ticks after every 2^16 counts, so that CPU 1 idles, with A's root
// still loaded (lazy), while A sleeps. Stage 1 while A sleeps and CPU 1 idles, its count page in;
// CPU 0 then evicts that page (lab 7's swapper); stage 2 right after (arguments: A's mask and the
// CPUs a shootdown left alone since they idle, the kernel's words, for the grader to name a cause
// with, never to score); stage 3 once the page is back (or 200 ticks went by) and 5 ticks more,
// stage 4 25 ticks later (past a whole nap). Then a table given back: CPU 0 maps a page at far=VA
// (the grader's choice, where spin has no tables yet); stage 5 once spin sleeps again and CPU 1
// idles; CPU 0 unmaps that page, which frees the tables the map made; stage 6 right after (its
// arguments as stage 2's). Needs swap (a disk and userframes=).
PAGODA_SELFTEST(smp_lazy_idle) {
  constexpr u64 kNap = 20;
  const StringView args[] = {"spin", "0x10000000000", "20"};  // (kNap)
  SpinCount at;
  proc::Process& a = start_spinner("smp_lazy_idle", ctx, Span<const StringView>(args, 3), 1, at);
  const VirtAddr page = at.page;
  const usize offset = at.offset;
  const auto idle_with_page = [&] {
    const PhysAddr frame = frame_of(a.space(), page);
    return a.state == proc::State::Sleeping && proc::detail::g_current_of.of(1) == nullptr && frame != PhysAddr() &&
           word_of(frame, offset) != 0;
  };
  for (u64 waited = 0; !idle_with_page(); waited += 1) {
    if (waited > kMaxStartTicks) panic("smp_lazy_idle: spin never slept on CPU 1 with its count page in");
    let_cpu1_run(1);
  }
  pagoda_grader_checkpoint(1, 0, 0);
  MUST(vm::evict_user_page(a.space(), page, false));
  pagoda_grader_checkpoint(2, a.space().arch().cpus(), a.space().arch().missed());
  for (u64 waited = 0; frame_of(a.space(), page) == PhysAddr() && waited < kMaxBackTicks; waited += 1) let_cpu1_run(1);
  let_cpu1_run(kTicksPerLook);
  pagoda_grader_checkpoint(3, 0, 0);
  let_cpu1_run(kNap + kTicksPerLook);  // (past a whole nap: spin has counted on)
  pagoda_grader_checkpoint(4, 0, 0);

  // A table given back while CPU 1 idles in A's root: a page of CPU 0's own at far=VA, where A
  // has no tables (the map makes them), unmapped once A sleeps again, which frees them.
  const VirtAddr far(ctx.arg("far", 0));
  if (far.value() == 0) panic("smp_lazy_idle: far=VA (an address with no tables in spin's space) is missing");
  const PhysAddr frame = MUST(vm::frames().allocate());
  MUST(a.space().map(far, frame, Perms{.read = true, .user = true}));
  for (u64 waited = 0; !idle_with_page(); waited += 1) {
    if (waited > kMaxStartTicks) panic("smp_lazy_idle: spin never slept on CPU 1 again");
    let_cpu1_run(1);
  }
  pagoda_grader_checkpoint(5, 0, 0);
  {
    ConsistencyBatch batch = a.space().batch();
    AddressSpace::Cursor c = a.space().cursor(batch, far);
    (void)MUST(c.unmap());
  }
  vm::frames().free(frame);
  pagoda_grader_checkpoint(6, a.space().arch().cpus(), a.space().arch().missed());
  arch::shutdown(ExitStatus::Success);
}

}  // namespace pagoda

namespace pagoda {

// Lab 8's write-back of a page written on the other CPU, for the grader (grade/test_lab8.py
// clean_remote): spin A, pinned to CPU 1, counts at count=VA. Stage 1 while it counts; CPU 0
// writes its count page back and keeps it (lab 7's clean_frame: the entry cleaned, every mapper's
// CPUs told, then the write); stage 2 right after; stage 3 five ticks later (spin wrote on: its
// entry must say dirty again); then CPU 0 evicts the page (only a dirty page is written again),
// stage 4 right after; stage 5 once the page is back (or 200 ticks went by) and 5 ticks more.
// Needs swap (a disk and userframes=).
PAGODA_SELFTEST(smp_clean_remote) {
  const StringView args[] = {"spin", "0x10000000000"};
  SpinCount at;
  proc::Process& a = start_spinner("smp_clean_remote", ctx, Span<const StringView>(args, 2), 1, at);
  const VirtAddr page = at.page;
  (void)await_counting("smp_clean_remote", a, at);
  pagoda_grader_checkpoint(1, 0, 0);
  MUST(vm::evict_user_page(a.space(), page, true));
  pagoda_grader_checkpoint(2, 0, 0);
  let_cpu1_run(kTicksPerLook);
  pagoda_grader_checkpoint(3, 0, 0);
  MUST(vm::evict_user_page(a.space(), page, false));
  pagoda_grader_checkpoint(4, 0, 0);
  for (u64 waited = 0; frame_of(a.space(), page) == PhysAddr() && waited < kMaxBackTicks; waited += 1) let_cpu1_run(1);
  let_cpu1_run(kTicksPerLook);
  pagoda_grader_checkpoint(5, 0, 0);
  arch::shutdown(ExitStatus::Success);
}

}  // namespace pagoda

namespace pagoda {

// Lab 8's eviction of a frame two processes share, for the grader (grade/test_lab8.py
// cow_evict): spin P, pinned to CPU 1, forks spin C there (its child runs where it runs); both
// count at count=VA, each in its own copy of that page, and run the code at text=VA from the one
// frame they share. Stage 1 once CPU 1 runs the mapper the reverse map lists last (not the first
// it gives) and both count (the code page written back once before: the eviction needs no write,
// and CPU 1's next tick rarely comes while it runs); CPU 0 evicts the shared code page (every mapping a swap entry); stage
// 2 right after; CPU 0 keeps the kernel lock (CPU 1 cannot switch) until CPU 1 took two timer
// ticks, stage 3; stage 4 once both mapped the page again (or 200 ticks went by) and 5 ticks
// more. Needs swap (a disk and userframes=).
PAGODA_SELFTEST(smp_cow_evict) {
  const VirtAddr text(ctx.arg("text", 0));
  if (text.value() == 0) panic("smp_cow_evict: text=VA (spin's code) is missing");
  const VirtAddr code = text.align_down(kPageSize);
  const StringView args[] = {"spin", "0x10000000000", "0", "fork"};
  SpinCount at;
  proc::Process& p = start_spinner("smp_cow_evict", ctx, Span<const StringView>(args, 4), 1, at);
  const VirtAddr page = at.page;
  const usize offset = at.offset;
  const auto counting = [&](proc::Process* q) {
    const PhysAddr f = q == nullptr ? PhysAddr() : frame_of(q->space(), page);
    return f != PhysAddr() && word_of(f, offset) != 0;
  };
  // The mapper the reverse map lists last, running on CPU 1, with the code page shared.
  const auto ready = [&](proc::Process* c) {
    if (!counting(&p) || !counting(c)) return false;
    const PhysAddr shared = frame_of(p.space(), code);
    if (shared == PhysAddr() || frame_of(c->space(), code) != shared) return false;
    const RmapNode* last = vm::swapper().table().first_mapping(shared);
    if (last == nullptr) return false;
    while (const RmapNode* n = vm::swapper().table().next_mapping(*last)) last = n;
    return proc::detail::g_current_of.of(1) != nullptr && &proc::detail::g_current_of.of(1)->space() == last->space;
  };
  // The runner counts now, in user mode (not held in the kernel by a tick that waits for this
  // CPU's kernel lock): its count moves before CPU 1 takes another tick.
  const auto counts_now = [&] {
    const PhysAddr f = frame_of(proc::detail::g_current_of.of(1)->space(), page);
    const u64 before = word_of(f, offset), ticks = __atomic_load_n(&cpu(1).ticks, __ATOMIC_RELAXED);
    while (word_of(f, offset) == before)
      if (__atomic_load_n(&cpu(1).ticks, __ATOMIC_RELAXED) > ticks) return false;
    return true;
  };
  proc::Process* c = nullptr;
  bool backed = false;
  for (u64 waited = 0; c == nullptr || !ready(c) || !backed || !counts_now(); waited += 1) {
    if (waited > kMaxStartTicks) panic("smp_cow_evict: spin and its child never counted on CPU 1 sharing their code");
    // (written back once, kept: the eviction then writes nothing, and is short)
    if (c != nullptr && !backed && frame_of(c->space(), code) == frame_of(p.space(), code) && counting(c))
      backed = vm::evict_user_page(p.space(), code, true).ok();
    let_cpu1_run(1);
    if (c == nullptr) c = proc::find_process(p.pid + 1);
  }
  pagoda_grader_checkpoint(1, 0, 0);
  MUST(vm::evict_user_page(p.space(), code, false));
  pagoda_grader_checkpoint(2, 0, 0);
  const u64 ticks = __atomic_load_n(&cpu(1).ticks, __ATOMIC_RELAXED);
  while (__atomic_load_n(&cpu(1).ticks, __ATOMIC_RELAXED) < ticks + 2) arch::cpu_relax();
  pagoda_grader_checkpoint(3, 0, 0);
  for (u64 waited = 0;
       (frame_of(p.space(), code) == PhysAddr() || frame_of(c->space(), code) == PhysAddr()) && waited < kMaxBackTicks;
       waited += 1)
    let_cpu1_run(1);
  let_cpu1_run(kTicksPerLook);
  pagoda_grader_checkpoint(4, 0, 0);
  arch::shutdown(ExitStatus::Success);
}

}  // namespace pagoda

namespace pagoda {

// Lab 8's reuse of an ASID across CPUs, for the grader (grade/test_lab8.py asid_reuse; AArch64
// tags translations with ASIDs, x86_64 without PCIDs drops them at every CR3 load): spin R,
// pinned to CPU 1, counts at count=VA (spin_stop at stop=VA is in the same page). Stage 1 while it
// counts. CPU 0 then takes that page out of R's tables without any invalidation: the translation
// CPU 1 keeps is one that R's own unmaps (its teardown's) never reach, and that only the end of
// R's ASID may drop. CPU 0 keeps the frame, sets spin_stop there (R, still counting through
// CPU 1's TLB, ends: CPU 1 idles in R's root), writes the grader's mark=N as the count; stage 2.
// CPU 0 reaps R (R's space ends on CPU 0), makes and drops churn=K address spaces (each takes an
// ASID: AArch64's run out and roll over), and starts spin N, pinned to CPU 1: given R's ASID
// again when K is what takes the allocator back to it. CPU 0 then switches into a space made
// after N's and back (CPU 0 switches into the ASIDs' new generation first). Stage 3 once N counts (in a page of its own, or on from the mark in
// the kept frame through R's translation) or 200 ticks went by, and 5 ticks more.
PAGODA_SELFTEST(smp_asid_reuse) {
  if (cpus_online() < 2) panic("smp_asid_reuse: needs two CPUs online (QEMU's -smp 2)");
  const VirtAddr count(ctx.arg("count", 0)), stop(ctx.arg("stop", 0));
  const u64 mark = ctx.arg("mark", 0), churn = ctx.arg("churn", 0);
  if (count.value() == 0 || stop.value() == 0 || mark == 0)
    panic("smp_asid_reuse: count=VA, stop=VA (spin's) and mark=N are needed");
  const VirtAddr page = count.align_down(kPageSize);
  const usize offset = count.value() - page.value();
  if (stop.align_down(kPageSize) != page) panic("smp_asid_reuse: spin_stop is not in spin_count's page");
  const EmbeddedProgram* spin = find_program("spin");
  if (spin == nullptr) panic("smp_asid_reuse: no program spin");
  const StringView args[] = {"spin", "0x10000000000"};
  proc::Process& r = *MUST(proc::create_process("spin", spin->image(), Span<const StringView>(args, 2)));
  r.cpu = 1;
  r.parent = ~u32{0};  // (no such process: the idle loop leaves the zombie to this self-test)
  PhysAddr frame;
  for (u64 waited = 0; frame == PhysAddr() || word_of(frame, offset) == 0; waited += kTicksPerLook) {
    if (waited > kMaxStartTicks) panic("smp_asid_reuse: spin did not count on CPU 1 in {} ticks", waited);
    let_cpu1_run(kTicksPerLook);
    frame = frame_of(r.space(), page);
  }
  pagoda_grader_checkpoint(1, 0, 0);
  MUST(vm::forget_user_pages(r.space(), page, page.offset(kPageSize)));
  {
    ConsistencyBatch batch = r.space().batch();
    AddressSpace::Cursor c = r.space().cursor(batch, page);
    *c.page_entry() = 0;  // (the frame is this self-test's now)
    batch.wrote();
  }
  const u64 one = 1, zero = 0;
  vm::write_frame(frame, stop.value() - page.value(), &one, sizeof one);
  for (u64 waited = 0; r.state != proc::State::Zombie || proc::detail::g_current_of.of(1) != nullptr; waited += 1) {
    if (waited > kMaxStartTicks) panic("smp_asid_reuse: spin (pid {}) did not end on CPU 1 once stopped", r.pid);
    let_cpu1_run(1);
  }
  if (frame_of(r.space(), page) != PhysAddr())
    panic("smp_asid_reuse: spin faulted its count page back in: CPU 1 dropped the translation before it ended");
  vm::write_frame(frame, stop.value() - page.value(), &zero, sizeof zero);
  vm::write_frame(frame, offset, &mark, sizeof mark);
  pagoda_grader_checkpoint(2, 0, 0);
  (void)proc::reap(r);
  for (u64 i = 0; i < churn; ++i) (void)MUST(AddressSpace::create_user(vm::kernel_space()));
  proc::Process& n = *MUST(proc::create_process("spin", spin->image(), Span<const StringView>(args, 2)));
  n.cpu = 1;
  {
    // CPU 0 switches into a space made after N's, and back: CPU 0 is up to date, CPU 1 not.
    AddressSpace q = MUST(AddressSpace::create_user(vm::kernel_space()));
    q.activate();
    vm::kernel_space().activate();
  }
  const auto counting = [&] {
    const PhysAddr f = frame_of(n.space(), page);
    return word_of(frame, offset) != mark || (f != PhysAddr() && word_of(f, offset) != 0);
  };
  for (u64 waited = 0; !counting() && waited < kMaxBackTicks; waited += 1) let_cpu1_run(1);
  let_cpu1_run(kTicksPerLook);
  pagoda_grader_checkpoint(3, 0, 0);
  arch::shutdown(ExitStatus::Success);
}

}  // namespace pagoda

namespace pagoda {
namespace {

/// smp_kernel_remap's kernel-half page, which CPU 1 writes through: the last page below the
/// device area, which nothing else maps. The grader reads it as a fact of its own build.
constexpr uptr kRemapPage = layout::kMmioBase - kPageSize;
PAGODA_FACT(smp_remap_page, kRemapPage)

const VirtAddr g_remap_page(kRemapPage);
u64 g_remap_word;  ///< what CPU 1 writes there next

/// smp_kernel_remap on CPU 1, in its IPI handler (spin's root still loaded there): writes
/// g_remap_word at the start of g_remap_page, through whatever translation CPU 1 holds.
u64 write_on_cpu1() {
  *reinterpret_cast<volatile u64*>(g_remap_page.value()) = g_remap_word;
  return 0;
}

}  // namespace

// Lab 8's kernel half on two CPUs, for the grader (grade/test_lab8.py kernel_half): spin A, pinned
// to CPU 1, counts, so that CPU 1 runs with A's root loaded (on x86_64 out of the kernel space's
// own mask). CPU 0 maps a page of the kernel half no one else uses (the last below kMmioBase, not
// global) to a fresh frame and asks CPU 1 (a Call, in its IPI handler) to write first=W1 there:
// CPU 1's TLB now holds the page. Stage 1 (argument: the page). CPU 0 unmaps the page (a change of
// the kernel half: every online CPU must drop it, whatever the masks say) and maps it to another
// fresh frame; CPU 1 writes second=W2 there the same way. Stage 2. The grader walks the kernel
// half and reads both frames in guest RAM: W2 must be in the second, not the first.
PAGODA_SELFTEST(smp_kernel_remap) {
  const StringView args[] = {"spin", "0x10000000000"};
  SpinCount at;
  proc::Process& a = start_spinner("smp_kernel_remap", ctx, Span<const StringView>(args, 2), 1, at);
  (void)await_counting("smp_kernel_remap", a, at);
  AddressSpace& kernel = vm::kernel_space();
  const PhysAddr first = MUST(vm::frames().allocate()), second = MUST(vm::frames().allocate());
  MUST(kernel.map(g_remap_page, first, kKernelData));
  g_remap_word = ctx.arg("first", 1);
  (void)cpu_request(1, MailboxOp::Call, reinterpret_cast<uptr>(&write_on_cpu1));
  pagoda_grader_checkpoint(1, g_remap_page.value(), 0);
  if (MUST(kernel.unmap(g_remap_page)) != first) panic("smp_kernel_remap: the page did not map the first frame");
  MUST(kernel.map(g_remap_page, second, kKernelData));
  g_remap_word = ctx.arg("second", 2);
  (void)cpu_request(1, MailboxOp::Call, reinterpret_cast<uptr>(&write_on_cpu1));
  pagoda_grader_checkpoint(2, g_remap_page.value(), 0);
  arch::shutdown(ExitStatus::Success);
}

namespace {

StringView g_panic_token;  ///< smp_panic_stop: this boot's token, in the panic's message

/// smp_panic_stop on CPU 0, served in its wait for CPU 1's ack: panics while CPU 1 waits, with
/// interrupts off, for the ack of this very request.
u64 panic_on_cpu0() { panic("smp_panic_stop: CPU 0 panics while CPU 1 waits for its ack, token {}", g_panic_token); }

/// smp_panic_stop on CPU 1, in its IPI handler (interrupts off): asks CPU 0 to run panic_on_cpu0()
/// and waits for an ack that never comes.
u64 ask_cpu0_to_panic() { return cpu_request(0, MailboxOp::Call, reinterpret_cast<uptr>(&panic_on_cpu0)); }

}  // namespace

// A panic on two CPUs, for the grader (grade/test_lab8.py panic_stops_both): CPU 0 asks CPU 1 (a
// Call) to ask CPU 0 for a Call of its own, which CPU 0 serves in its wait for CPU 1's ack, and
// which panics. So CPU 0 panics while CPU 1 waits for its ack with interrupts off, where no stop
// IPI can reach it: the panic must still stop CPU 1 (each turn of such a wait looks for a stop).
// The grader stops at panic_end(), the report printed, and reads where each CPU is (the gdbstub).
PAGODA_SELFTEST(smp_panic_stop) {
  if (cpus_online() < 2) panic("smp_panic_stop: needs two CPUs online (QEMU's -smp 2)");
  g_panic_token = ctx.token;
  (void)cpu_request(1, MailboxOp::Call, reinterpret_cast<uptr>(&ask_cpu0_to_panic));
  panic("smp_panic_stop: CPU 1's request came back: CPU 0 never panicked");
}

}  // namespace pagoda
