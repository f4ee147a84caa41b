// Processes from the command line (run=...), and the end of a process that faults (run.hpp).
#include "proc/run.hpp"

#include "core/arch.hpp"
#include "core/cmdline.hpp"
#include "core/last_failure.hpp"
#include "core/panic.hpp"
#include "core/selftest.hpp"
#include "core/stop.hpp"
#include "lib/facts.hpp"
#include "lib/string.hpp"
#include "mm/heap.hpp"
#include "mm/tempmap/temp_map.hpp"
#include "mm/vm.hpp"
#include "proc/arch.hpp"
#include "proc/elf.hpp"
#include "proc/elf_target.hpp"
#include "proc/kernel_stack.hpp"
#include "proc/loader.hpp"
#include "proc/process.hpp"
#include "proc/programs.hpp"
#include "proc/scheduler.hpp"
#include "proc/temp_map_calls.hpp"
#include "proc/terminal.hpp"
#include "proc/user_memory.hpp"

namespace pagoda::proc {
namespace {

/// Whether arch::user_mode_init() succeeded (init()): without it no process can run.
bool g_user_mode = false;
/// log=quiet: no lifecycle lines.
bool g_quiet = false;

/// Most programs one run= starts.
constexpr usize kMaxRun = kMaxProcesses;
/// Most arguments one program gets from run= (argv[0] and the token come on top).
constexpr usize kMaxRunArgs = abi::kMaxArgs - 2;

/// What pagoda_grader_checkpoint(tag, a, b) means during a run (grade/test_lab3.py stops there).
enum RunCheckpoint : u64 {
  kBefore = 0x52554e31,   ///< "RUN1": before the first process; a = the used-frame bitmap, b = its words
  kStarted = 0x52554e32,  ///< "RUN2": every process made, none run; a = the run's heap object, b = count
  kEnded = 0x52554e33,    ///< "RUN3": every process reaped; a, b as for kBefore
};

PAGODA_FACT(run_checkpoint_before, kBefore)
PAGODA_FACT(run_checkpoint_started, kStarted)
PAGODA_FACT(run_checkpoint_ended, kEnded)

// ---- Frame drains (drain=on: grade/pagoda_grade/churn.py) ------------------------------------
// The grader's witness that an ended process's frames came back, from behaviour rather than the
// allocator's bitmap: just before the first process is made and once every process has ended, the
// run takes every frame the allocator will hand out, records each in a bitmap of its own and gives
// them all back. The grader reads both records from guest RAM after the run and compares them; the
// frames of the last drain hold a stamp (from the token) that the grader reads in them.

/// The first two words of a stamped frame: kDrainMagic, then the run's key ^ the frame's address.
constexpr u64 kDrainMagic = 0x4e49415244474150;  // "PAGDRAIN"
/// A frame beyond the window is stamped (through a temporary mapping, which QEMU makes slow) when
/// its number ^ the key is a multiple of this; every frame the window reaches is.
constexpr u64 kDrainSample = 32;
PAGODA_FACT(drain_magic, kDrainMagic)
PAGODA_FACT(drain_sample, kDrainSample)

/// The drains of a run, read by the grader (g_drain; its layout is the grader's: six words).
struct DrainRecord {
  u64 phase = 0;          ///< 1 once the first drain is done, 2 once the last is
  u64 first = 0;          ///< the frame number of bit 0 of each bitmap
  u64 words = 0;          ///< words per bitmap
  u64* bits = nullptr;    ///< the first drain's bitmap, then the last's (2 * words)
  u64 taken[2] = {0, 0};  ///< frames each drain took (a moment's label: the grader counts the bits)
};
/// This run's drains (the grader reads it by its name).
[[gnu::used]] DrainRecord g_drain;
/// Whether the boot asked for the drains (drain=on).
bool g_drain_on = false;

/// One program of run=, parsed.
struct Launch {
  StringView name;
  StringView damage;  ///< after '!': how to damage a copy of the image (empty: none)
  StringView cpu;     ///< after '@': the CPU it runs on (two CPUs; empty: the boot CPU)
  StringView args[kMaxRunArgs];
  usize arg_count = 0;
};

/// The parsed run= (on the kernel heap while the processes run: the grader probes it from
/// user mode as "the heap").
struct RunPlan {
  Launch launches[kMaxRun];
  usize count = 0;
};

StringView take_until(StringView& text, char c) {
  const usize at = text.find(c);
  if (at == StringView::npos) {
    const StringView all = text;
    text = StringView();
    return all;
  }
  const StringView head = text.substr(0, at);
  text = text.substr(at + 1);
  return head;
}

bool parse_plan(StringView spec, RunPlan& plan) {
  while (!spec.empty()) {
    StringView item = take_until(spec, ',');
    if (item.empty()) continue;
    if (plan.count == kMaxRun) {
      println("run: more than {} programs; the rest are ignored", kMaxRun);
      return false;
    }
    Launch& l = plan.launches[plan.count++];
    StringView head = take_until(item, ':');  // NAME[!DAMAGE][@CPU]
    StringView program = take_until(head, '@');
    l.cpu = head;
    l.name = take_until(program, '!');
    l.damage = program;
    while (!item.empty()) {
      if (l.arg_count == kMaxRunArgs) {
        println("run: {}: more than {} arguments", l.name, kMaxRunArgs);
        return false;
      }
      l.args[l.arg_count++] = take_until(item, ':');
    }
  }
  return true;
}

// ---- Damaged images (run=NAME!DAMAGE) ------------------------------------------------------
// Offsets of the ELF64 fields drawn in proc/elf.hpp.
constexpr usize kMachineAt = 18, kPhoffAt = 32, kPhentsizeAt = 54, kPhnumAt = 56;
constexpr usize kPTypeAt = 0, kPVaddrAt = 16, kPFileszAt = 32, kPMemszAt = 40;
constexpr u32 kPtLoad = 1;
constexpr usize kDamagedMax = 256 * KiB;
/// One buffer for every damaged copy. A process made from it reads its image pages from it
/// when they fault in (lab 5 loads lazily), so once a damaged image is accepted the buffer is
/// its own: g_damaged_holder names it and a later damaged launch is refused.
alignas(16) u8 g_damaged[kDamagedMax];
char g_damaged_holder[2 * (abi::kMaxProgramName + 1)];

template <class T> T get(const u8* p) {
  T v;
  memcpy(&v, p, sizeof v);
  return v;
}
template <class T> void put(u8* p, T v) { memcpy(p, &v, sizeof v); }

/// The program header of the @p n-th PT_LOAD of the image in g_damaged, or nullptr.
u8* load_header(usize size, usize n) {
  const u64 phoff = get<u64>(g_damaged + kPhoffAt);
  const u16 entsize = get<u16>(g_damaged + kPhentsizeAt), count = get<u16>(g_damaged + kPhnumAt);
  for (usize i = 0; i < count; ++i) {
    const u64 at = phoff + i * entsize;
    if (at + entsize > size) return nullptr;
    if (get<u32>(g_damaged + at + kPTypeAt) == kPtLoad && n-- == 0) return g_damaged + at;
  }
  return nullptr;
}

/// A copy of @p image damaged as @p how says, in g_damaged; an empty span for an unknown way.
Span<const u8> damaged_copy(Span<const u8> image, StringView how) {
  if (image.size() > kDamagedMax) return {};
  memcpy(g_damaged, image.data(), image.size());
  usize size = image.size();
  u8* first = load_header(size, 0);
  u8* second = load_header(size, 1);
  if (how == "machine") {
    put<u16>(g_damaged + kMachineAt, u16(get<u16>(g_damaged + kMachineAt) ^ 0x00ff));
  } else if (how == "kernel_half" && first != nullptr) {
    put<u64>(first + kPVaddrAt, get<u64>(first + kPVaddrAt) + layout::kKernelHalfBase);
  } else if (how == "overlap" && second != nullptr && first != nullptr) {
    put<u64>(second + kPVaddrAt, get<u64>(first + kPVaddrAt) + (get<u64>(second + kPVaddrAt) & (kPageSize - 1)));
  } else if (how == "filesz" && first != nullptr) {
    put<u64>(first + kPFileszAt, get<u64>(first + kPMemszAt) + kPageSize);
  } else if (how == "truncated") {
    size /= 2;
  } else {
    return {};
  }
  return {g_damaged, size};
}

/// Writes what @p va is to a process being made from @p image: a page of one of its load
/// segments, the user stack's top page (the arguments') or another page of the stack, a kernel
/// address (the kernel stacks' area: kernel_stack.hpp), or none of these.
void describe_start_address(FormatSink& sink, Span<const u8> image, u64 va) {
  if (va >= layout::kKernelHalfBase) {
    describe_address(sink, va);
    return;
  }
  if (va >= kUserStackTop - kPageSize && va < kUserStackTop) {
    format_to(sink, "the user stack's top page (the arguments' page)");
    return;
  }
  if (va >= kUserStackBottom && va < kUserStackTop) {
    format_to(sink, "a page of the user stack [{:#x}, {:#x}) below its top page", kUserStackBottom, kUserStackTop);
    return;
  }
  const elf::ParseResult parsed = elf::parse_executable(image, elf::kernel_target());
  if (parsed.ok()) {
    usize n = 0;
    for (const elf::Segment& s : parsed.value().loads()) {
      if (va >= align_down(s.vaddr, kPageSize) && va < align_up(s.end(), kPageSize)) {
        format_to(sink, "in load segment {} [{:#x}, {:#x}) {} of the program", n, s.vaddr, s.end(), s.perms);
        return;
      }
      ++n;
    }
  }
  format_to(sink, "in none of the program's load segments, nor its stack");
}

/// The CPU @p l runs on (NAME@CPU), in @p cpu; false (said) when it names no CPU. A CPU that is
/// not online (one CPU runs) leaves it on the boot CPU, and says so.
bool pinned_cpu(const Launch& l, u8& cpu) {
  cpu = 0;
  if (l.cpu.empty()) return true;
  const Result<u64> n = parse_u64(l.cpu);
  if (n.is_error() || n.value() >= kMaxCpus) {
    println("run: {}@{}: not a CPU (0 to {})", l.name, l.cpu, kMaxCpus - 1);
    return false;
  }
  if (__atomic_load_n(&pagoda::cpu(u32(n.value())).online, __ATOMIC_ACQUIRE)) cpu = u8(n.value());
  else println("run: {}@{}: CPU {} is not online; it runs on CPU 0", l.name, l.cpu, n.value());
  return true;
}

/// Starts one program; true when it runs (a damaged one: true when it was refused cleanly).
bool launch(const Launch& l, StringView token) {
  u8 cpu = 0;
  if (!pinned_cpu(l, cpu)) return false;
  const EmbeddedProgram* program = find_program(l.name);
  if (program == nullptr) {
    println("run: no program '{}' (./pagoda run --test programs lists them)", l.name);
    return false;
  }
  Span<const u8> image = program->image();
  char label[2 * (abi::kMaxProgramName + 1)];
  StringView name = l.name;
  if (!l.damage.empty()) {
    if (g_damaged_holder[0] != '\0') {
      println("run: {}!{}: not started: the one buffer for damaged images still holds {}, which was accepted", l.name,
              l.damage, StringView(g_damaged_holder));
      return false;
    }
    image = damaged_copy(image, l.damage);
    if (image.empty()) {
      println("run: {}: no damage called '{}' (machine, kernel_half, overlap, filesz, truncated)", l.name, l.damage);
      return false;
    }
    name = format_buffer(label, sizeof label, "{}!{}", l.name, l.damage);
  }
  char token_arg[BootInfo::kCmdlineMax];
  StringView argv[abi::kMaxArgs];
  usize argc = 0;
  argv[argc++] = name;
  for (usize i = 0; i < l.arg_count; ++i) argv[argc++] = l.args[i];
  if (!token.empty()) argv[argc++] = format_buffer(token_arg, sizeof token_arg, "{}{}", abi::kTokenArgPrefix, token);

  const usize free_before = vm::frames().free_frames();
  const Result<Process*> made = create_process(name, image, Span<const StringView>(argv, argc));
  if (made.is_error()) {
    const usize leaked = free_before - vm::frames().free_frames();
    const Error& e = made.error();
    {
      FailureLine line(l.damage.empty());  // printed, and kept for fault-why (unless damaged on purpose)
      format_to(line, "run: cannot start {}: ", name);
      if (e.has_address && e.step == nullptr) {
        // An address no step named: what it is in the program being started.
        format_to(line, "at {:#x}, ", e.address);
        describe_start_address(line, image, e.address);
        format_to(line, ": ");
        e.format_cause(line);
      } else {
        format_to(line, "{}", e);
      }
      format_to(line, "; {} frames leaked", leaked);
    }
    return !l.damage.empty() && leaked == 0;
  }
  Process& p = *made.value();
  p.cpu = cpu;
  if (!l.damage.empty()) {
    println("run: {} was accepted, but it is damaged", name);
    (void)format_buffer(g_damaged_holder, sizeof g_damaged_holder, "{}", name);
  }
  if (lifecycle_log())
    println("proc {} ({}): started; root {:#x}, kernel stack [{:#x}, {:#x})", p.pid, p.name_view(),
            p.space().root().value(), p.kstack.bottom().value(), p.kstack.top().value());
  return l.damage.empty();
}

/// The key of this run's stamps: 64-bit FNV-1a of @p token (the grader computes the same).
[[nodiscard]] u64 drain_key(StringView token) {
  u64 h = 0xcbf29ce484222325;
  for (char c : token) h = (h ^ u8(c)) * 0x100000001b3;
  return h;
}

/// Sets frame @p f's bit in @p held (bit 0: frame @p first); false when it lies outside the
/// bitmap or is set already (the allocator handed it out twice).
[[nodiscard]] bool hold(Span<u64> held, u64 first, PhysAddr f) {
  const u64 n = f.value() / kPageSize;
  if (n < first || n - first >= held.size() * 64 || (held[(n - first) / 64] >> ((n - first) % 64) & 1)) return false;
  held[(n - first) / 64] |= u64{1} << ((n - first) % 64);
  return true;
}

/// Takes every frame the allocator hands out for user memory, then any the window reaches,
/// records each in @p held (zeroed; bit 0: frame @p first), stamps those the grader reads when
/// @p stamp_key is set, and gives them all back; the count. A frame handed out twice or outside
/// the bitmap ends the drain (it is not freed: the drain holds it already, or cannot record it).
[[nodiscard]] u64 drain_frames(Span<u64> held, u64 first, const u64* stamp_key) {
  u64 taken = 0;
  for (;;) {
    Result<PhysAddr> f = vm::allocate_user_frame();
    if (f.is_error()) f = vm::frames().allocate_below(vm::reachable_limit());
    if (f.is_error() || !hold(held, first, f.value())) break;
    ++taken;
    if (stamp_key == nullptr) continue;
    const u64 stamp[2] = {kDrainMagic, *stamp_key ^ f.value().value()};
    if (void* p = vm::phys_to_ptr(f.value(), sizeof stamp)) memcpy(p, stamp, sizeof stamp);
    else if (((f.value().value() / kPageSize) ^ *stamp_key) % kDrainSample == 0)
      vm::write_frame(f.value(), 0, stamp, sizeof stamp);
  }
  for (usize w = 0; w < held.size(); ++w)
    for (u64 bits = held[w]; bits != 0; bits &= bits - 1)
      vm::frames().free(PhysAddr((first + w * 64 + u64(__builtin_ctzll(bits))) * kPageSize));
  return taken;
}

/// The bitmaps of the drains (DrainRecord), from the first frame the allocator manages to its
/// limit, on the heap: taken before the run's first count of frames; an empty record when the boot
/// did not ask for drains. At least a frame and a half, so that the heap gives it whole frames of
/// their own and frees them untouched: the grader reads the bitmaps after the run.
[[nodiscard]] DrainRecord drain_record() {
  if (!g_drain_on) return {};
  const Span<const u64> managed = vm::frames().managed_bitmap();
  usize w = 0;
  while (w < managed.size() && managed[w] == 0) ++w;
  const usize words = managed.size() - w;
  const usize bytes = max(2 * words * sizeof(u64), kPageSize + kPageSize / 2);
  Result<void*> got = heap::allocate(bytes);
  if (got.is_error()) panic("run: no memory for the frame drains' bitmaps ({} bytes): {}", bytes, got.error());
  memset(got.value(), 0, bytes);
  return DrainRecord{.first = w * 64, .words = words, .bits = static_cast<u64*>(got.value())};
}

usize frames_in_use() { return vm::frames().managed_frames() - vm::frames().free_frames(); }

void checkpoint_frames(RunCheckpoint tag) {
  const Span<const u64> used = vm::frames().used_bitmap();
  pagoda_grader_checkpoint(tag, reinterpret_cast<u64>(used.data()), used.size());
}

}  // namespace

void configure_log(StringView mode) {
  if (mode == "quiet") g_quiet = true;
  else if (mode == "all") g_quiet = false;
  else println("log: unknown mode '{}' (quiet, all): all lines are printed", mode);
}

bool lifecycle_log() { return !g_quiet; }

void configure_drain(StringView mode) {
  g_drain_on = mode == "on";
  if (!g_drain_on && mode != "off") println("drain: unknown mode '{}' (on, off): off", mode);
}

void init() {
  judge_user_trap_stacks_at_switches();
  print("user mode: ");
  const Result<void> ready = arch::user_mode_init(console_sink());
  println("");
  g_user_mode = ready.ok();
  if (ready.is_error()) println("user mode: unavailable ({}): run= cannot start processes", ready.error());
}

bool run_programs(StringView spec, StringView token) {
  if (!g_user_mode) {
    println("run: this kernel has no user mode on {} (see the 'user mode:' line above): processes cannot run",
            arch::name());
    return false;
  }
  if (!vm::ready()) {
    println("run: no virtual memory (a lab is not done yet): processes cannot run");
    return false;
  }
  Result<RunPlan*> made = try_new<RunPlan>();
  if (made.is_error()) panic("run: no memory for the plan: {}", made.error());
  RunPlan& plan = *made.value();
  bool ok = parse_plan(spec, plan);
  g_drain = drain_record();
  DrainRecord& drain = g_drain;
  const u64 key = drain_key(token);
  const usize before = frames_in_use();
  if (lifecycle_log()) println("run: {} programs; frames in use before: {}", plan.count, before);
  if (drain.bits != nullptr) {
    drain.taken[0] = drain_frames({drain.bits, drain.words}, drain.first, nullptr);
    drain.phase = 1;
  }
  checkpoint_frames(kBefore);
  usize started = 0;
  for (usize i = 0; i < plan.count; ++i) {
    const bool good = launch(plan.launches[i], token);
    ok = ok && good;
    started += good && plan.launches[i].damage.empty();
  }
  pagoda_grader_checkpoint(kStarted, reinterpret_cast<u64>(&plan), started);
  terminal_start();
  run_processes();
  if (const usize untaken = release_untaken_temp_frames())
    println("run: {} frame(s) filled by temp_fill and never taken: freed", untaken);
  const usize after = frames_in_use();
  checkpoint_frames(kEnded);
  // After the checkpoint: a test that follows the run to its end has stopped there and taken its
  // breakpoints away, so the drain's loop does not run beside them (QEMU steps a page with one).
  if (drain.bits != nullptr) {
    drain.taken[1] = drain_frames({drain.bits + drain.words, drain.words}, drain.first, &key);
    drain.phase = 2;
  }
  if (lifecycle_log() || after != before)
    println("run: all processes ended; frames in use: before {}, after {}{}", before, after,
            after == before ? "" : " (LEAKED)");
  if (const TempMapArea* temp = TempMapArea::current(); temp != nullptr && lifecycle_log())
    println("run: temp-map slots live: {}; temporary mappings made since boot: {}", temp->depth(), temp->maps());
  if (vm::swap_enabled() && (lifecycle_log() || vm::swapper().slots().in_use() != 0))  // lab 7
    println("run: swap slots in use: {}{}; resident user frames: {}", vm::swapper().slots().in_use(),
            vm::swapper().slots().in_use() == 0 ? "" : " (LEAKED)", vm::swapper().table().resident());
  if (drain.bits != nullptr) heap::free(drain.bits);  // (whole frames, given back untouched)
  heap::free(&plan);
  return ok;
}

FaultCause record_words(FormatSink& sink, Process& p, u64 address, Access access) {
  const FaultVerdict verdict = decide_fault(p.regions(), address, access);
  // An allowed fault that still ends the process: why resolving it failed (mm/fault.cpp records it).
  if (!verdict.allowed()) {
    verdict.format(sink);
    // No region: which regions are around the address, and why none of them took it.
    if (verdict.cause == FaultCause::NoVma) explain_no_vma(sink, p.regions(), address);
    if (verdict.cause == FaultCause::StackLimit) explain_stack_limit(sink, p.regions(), verdict);
  } else if (!vm::explain_unresolved(sink, VirtAddr(address))) {
    verdict.format(sink);
  }
  return verdict.cause;
}

[[PAGODA_STOP(user_fault)]] void user_fault(const UserFault& fault) {
  Process* p = current();
  if (p == nullptr) panic("a fault from user mode with no current process: {} at {:#x}", fault.mnemonic, fault.pc);
  UserFault f = fault;
  if (f.how == abi::Termination::PageFault && f.has_address && in_user_half(f.address, 1) && p->has_regions()) {
    // Lab 5: what the record says about the address, after what the walk said.
    const usize used = StringView(f.reason).size();
    BufferSink more(f.reason + used, sizeof f.reason - used);
    format_to(more, "{}", used == 0 ? "" : "; ");
    if (record_words(more, *p, f.address, f.access) == FaultCause::StackLimit) f.how = abi::Termination::StackLimit;
  }
  // Killed is the status of an exception that has no name of its own ("killed: killed:" said nothing).
  const char* how = f.how == abi::Termination::Killed ? "an exception the kernel does not answer"
                                                      : abi::termination_name(f.how);
  {
    FailureLine line;  // printed, and kept for fault-why
    format_to(line, "proc {} ({}): killed: {}: {} {} ({} {}) at {} {:#x}", p->pid, p->name_view(), how, f.mnemonic,
              f.name, f.vector_label, f.vector, f.pc_label, f.pc);
    if (f.has_address) format_to(line, ", address {:#x}", f.address);
    if (f.reason[0] != '\0') format_to(line, ": {}", StringView(f.reason));
  }
  exit_current(abi::ExitInfo{.code = -1, .how = u32(f.how), .address = f.has_address ? f.address : 0});
}

}  // namespace pagoda::proc

extern "C" {
/// What pagoda_record_words() wrote last.
char pagoda_record_words_text[pagoda::proc::UserFault::kReasonSize];

/// For fault-why (tools/gdb/pagoda_gdb/faults.py), called through GDB in the kill path: the words
/// the kill line of the current process gives a fault at @p address trying @p access, from its
/// record (proc::record_words(): the same function, so the two say the same), in
/// pagoda_record_words_text; empty when no process with a record is current.
[[gnu::used, gnu::noinline]] const char* pagoda_record_words(pagoda::u64 address, pagoda::Access access) {
  using namespace pagoda;
  BufferSink sink(pagoda_record_words_text, sizeof pagoda_record_words_text);
  proc::Process* p = proc::current();
  // As the kill line: only a user address is asked of the record.
  if (p != nullptr && p->has_regions() && proc::in_user_half(address, 1))
    (void)proc::record_words(sink, *p, address, access);
  return pagoda_record_words_text;
}
}
