/// @file process.hpp
/// @brief Processes: a program running in user mode in an address space of its own.
///
/// A process owns three things, made in this order and given back in the reverse one:
///
///     its address space   AddressSpace::create_user(): a root of its own whose kernel half
///                         is the kernel's (shared, never copied table by table); the loader
///                         fills its user half (the ELF segments, the stack, argv)
///     its kernel stack    create_kernel_stack(): a slot of the kStackBase area, mapped in the
///                         kernel half, so every root sees it (kernel_stack.hpp)
///     its first frame     arch::prepare_user_entry(): what the first switch to it returns
///                         into, ending in user mode at the ELF entry
///
/// and a slot of the process table (kMaxProcesses, no heap: exit must give back exactly what
/// creation took, and the frame counts prove it). A process is Ready, Running, Sleeping,
/// Waiting (for a child to end), or a Zombie once it has ended: its exit status is kept and its
/// memory is still there, because it may be running on its kernel stack and in its root at that
/// moment. A zombie is reaped (destroy_process) once another context runs, by whoever owns it:
/// its parent's wait() (lab 6), or the idle loop when it has no parent (a process the kernel
/// started, or one whose parent ended with no first process left to adopt it). Reaping frees
/// first the user half (every user page and its frame, then every table of the user half), then
/// the root, then the kernel stack.
///
///     Free --create/fork--> Ready <--schedule--> Running --sleep--> Sleeping --tick--> Ready
///                                                   |   \--wait--> Waiting --a child ends--> Ready
///                                                   |  exit, or a fault in user mode
///                                                   v
///                                                 Zombie --reap (parent's wait, or idle)--> Free
///
/// kill() (the kill system call, the console's Ctrl-C) never ends a process on the spot: it marks
/// it and wakes it if it sleeps or waits; the process dies through exit_current(), like every
/// other death, at its next return to user mode or when it would sleep or wait again
/// (scheduler.hpp), so that nothing the kernel holds is abandoned halfway.
///
/// Parents (lab 6): fork and spawn make the caller the parent. When a process ends, its
/// children are adopted by the first process (pid 1) while that one lives, else by the kernel
/// (parent 0: the idle loop reaps them).
#pragma once

#include "core/cpu.hpp"
#include "lib/abi.hpp"
#include "lib/optional.hpp"
#include "lib/result.hpp"
#include "lib/string_view.hpp"
#include "mm/space/address_space.hpp"
#include "mm/space/debug_roots.hpp"
#include "mm/space/user_regions.hpp"
#include "proc/arch.hpp"
#include "proc/kernel_stack.hpp"

namespace pagoda::proc {

/// Processes that can exist at once (one kernel stack slot each).
inline constexpr usize kMaxProcesses = kKernelStackSlots;
/// Every process's root is published for the debugger and the grader, beside the kernel's own
/// and the boot roots, and exec's new root while the old one still lives.
static_assert(kMaxProcesses + 8 <= debug::kDebugRootSlots, "the root registry has room for every process root");

enum class State : u8 { Free, Ready, Running, Sleeping, Zombie, Waiting };

/// "ready", "running", ...
const char* state_name(State state);

struct Process {
  u32 pid = 0;
  /// The id of the process that owns it (reaps it with wait), 0 for the kernel (lab 6).
  u32 parent = 0;
  State state = State::Free;
  char name[abi::kMaxProgramName + 1] = {};
  KernelStack kstack;
  /// The stack pointer switch_context() saved when the process last left the CPU (or the one
  /// prepare_user_entry() made, before it first ran).
  uptr saved_sp = 0;
  /// Sleeping: the tick at which it becomes ready again.
  u64 wake_tick = 0;
  /// Zombie: how it ended.
  abi::ExitInfo exit = {};
  /// System calls it made (for reports).
  u64 syscalls = 0;
  /// kill() marked it: it ends with kill_how at its next return to user mode, or when it would
  /// sleep or wait (scheduler.hpp).
  bool kill_pending = false;
  /// The CPU it runs on, for good (two CPUs; with one, 0): run=NAME@1 pins a program to CPU 1;
  /// a process it makes (fork, spawn) runs where it runs; any other runs on the boot CPU.
  u8 cpu = 0;
  abi::Termination kill_how = abi::Termination::Killed;

  /// Its address space: made with the process (make_space()), ended when it is reaped (release())
  /// or replaced by exec; the Optional ends whatever it still holds when the slot is cleared.
  Optional<AddressSpace> address_space;
  /// The record of its user half (its VMAs; lab 5): made with the space, set as the space's
  /// regions(), ended after it.
  Optional<UserRegions> user_regions;

  /// Its address space (a bug to ask for before it is made or after it is ended; unchecked: the
  /// switch asks for it every time).
  AddressSpace& space() { return *address_space; }
  bool has_space() const { return address_space.has_value(); }
  /// The record of its user half (the same rule).
  UserRegions& regions() { return *user_regions; }
  bool has_regions() const { return user_regions.has_value(); }
  StringView name_view() const { return StringView(name); }
};

/// The process table (slot order), for the scheduler, reports and the debugger (`ps` reads it).
Span<Process> process_table();

namespace detail {
/// The process on each CPU; nullptr while its idle loop (or boot) runs (scheduler.cpp sets it).
extern PerCpu<Process*> g_current_of;
}  // namespace detail

/// The process running on this CPU now, or nullptr in kernel context (the idle loop, boot).
/// Inline: the system-call path reads it (two instructions).
inline Process* current() { return detail::g_current_of.here(); }
/// current(), out of line: for a debugger's calls (GDB's break-kill condition).
Process* current_for_debugger();

/// Creates a process running the ELF @p image as @p name with arguments @p args (argv[0]
/// first): Ready, not yet run. Errors: Overflow (table or stack slots full), NoMemory, and
/// InvalidArgument for an image the loader rejects (its message says why). On failure nothing
/// stays allocated.
[[nodiscard]] Result<Process*> create_process(StringView name, Span<const u8> image, Span<const StringView> args);

/// The process with id @p pid that is not Free, or nullptr.
Process* find_process(u32 pid);

/// Lab 6: a copy of @p parent (the current process, inside its fork system call): a new root
/// sharing the kernel half, every VMA and every mapped user page copied (eagerly, or shared
/// copy-on-write), the kernel stack made so that the child returns from the same system call
/// with 0. Ready, not yet run; its parent is @p parent. Errors: Overflow (table or stack slots
/// full), NoMemory; on failure nothing stays allocated.
[[nodiscard]] Result<Process*> fork_process(Process& parent);

/// Lab 6: makes @p to (a record of regions) a copy of @p from: every VMA, the stack's limit and
/// gap, the heap's start and break (fork's child, exec's commit). NoMemory leaves @p to as it was.
[[nodiscard]] Result<void> copy_record(const UserRegions& from, UserRegions& to);

/// Lab 6: gives @p to (a fresh user space, not live) the user half of @p from (whose record is
/// @p vmas), region by region: share_pages(), or copy_pages() with the boot option fork=eager
/// (and while share_pages() is still a lab skeleton). On failure @p to keeps what was mapped
/// (its owner frees it; the references go with it).
[[nodiscard]] Result<void> copy_user_half(AddressSpace& from, const VmaSet& vmas, AddressSpace& to);
/// The eager copy: every page a region covers that @p from maps gets a frame of its own in
/// @p to holding the same bytes, at the same address, with the same permissions.
[[nodiscard]] Result<void> copy_pages(AddressSpace& from, const VmaSet& vmas, AddressSpace& to);
/// Copy-on-write: every page a region covers that @p from maps is mapped in @p to to the same
/// frame (one more reference, vm::frame_refs()), without write permission in both spaces.
[[nodiscard]] Result<void> share_pages(AddressSpace& from, const VmaSet& vmas, AddressSpace& to);
/// The boot option fork=eager|cow (default cow).
void configure_fork(StringView mode);
bool eager_fork();

/// Lab 6: replaces the address space of the current process @p p with a fresh one running
/// @p image as @p name with @p args, and rewrites the frame its system call returns through so
/// that it returns into the new program's entry. On failure (NoMemory, InvalidArgument for an
/// image the loader rejects) the old address space is intact and nothing leaks.
[[nodiscard]] Result<arch::UserEntry> exec_current(Process& p, StringView name, Span<const u8> image,
                                                   Span<const StringView> args);

/// Frees a zombie and prints how it ended ("proc N (name): reaped: ..."); the caller owns it
/// (its parent, or the idle loop for one without a parent). Returns its exit status.
abi::ExitInfo reap(Process& zombie);

/// Lab 6: wait(): reaps a child of @p p that has ended (@p pid: that child; -1: any) and
/// returns its id, with its status in @p info; blocks (Waiting) while it has such children but
/// none has ended, unless @p no_hang (then 0). Srch/Child when it has no such child.
[[nodiscard]] Result<u32> wait_for_child(Process& p, i64 pid, abi::ExitInfo& info, bool no_hang);

/// Frees a process that has ended and is not running (a Zombie, or one that never ran): its
/// user half, its root, its kernel stack, its slot. Returns the slot to Free.
void destroy_process(Process& process);

/// Unmaps every page of @p space's user half and frees its frame; the tables the unmaps leave
/// empty go with them (the root stays, for ~AddressSpace). Nothing of the kernel half is touched.
/// @p pages counts the pages it freed. free_user_pages() over the whole user half.
[[nodiscard]] Result<void> free_user_half(AddressSpace& space, usize& pages);

/// Unmaps every mapped page of [@p start, @p end) (page aligned, in the user half) of @p space
/// and gives its frame back only after the flush that covers the unmap (the batch's
/// release_frame(), which then calls vm::put_user_frame: lab 6 shares frames); the tables the
/// unmaps leave empty go with them. @p pages counts the pages it freed. (Lab 3; exit's teardown and lab 5's
/// munmap both use it.)
[[nodiscard]] Result<void> free_user_pages(AddressSpace& space, VirtAddr start, VirtAddr end, usize& pages);

/// Ends the current process with @p info (its exit status) and never returns: it stays a
/// Zombie until the idle loop reaps it.
[[noreturn]] void exit_current(const abi::ExitInfo& info);

/// Checks the invariant of lab 5 for @p p: nothing mapped in its user half that no VMA
/// covers, every mapped page with its VMA's permissions (check_coverage()). Prints the first
/// problem to @p report and returns false; @p mapped_pages receives the pages seen.
bool check_vmas(Process& p, FormatSink* report, usize* mapped_pages = nullptr);

/// Frames of @p space's user half: mapped pages and page tables (the root included).
struct UserFrames {
  u64 pages = 0;
  u64 tables = 0;
};
UserFrames count_user_frames(AddressSpace& space);

}  // namespace pagoda::proc
