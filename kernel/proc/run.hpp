/// @file run.hpp
/// @brief Starting processes from the kernel command line, and ending them when they fault.
///
/// `run=NAME[:ARG[:ARG...]][,NAME...]` on the command line runs each embedded program
/// (kernel/proc/programs.hpp) as a process, with argv = {NAME, ARG..., token=TOKEN}, all at
/// once, and returns when every one has ended; the kernel then shuts down. What a boot prints:
///
///     run: 2 programs; frames in use before: 1234
///     proc 1 (hello): started; root 0x25e000, kernel stack [0xffffff0000004000, 0xffffff0000008000)
///     ...                                            (the programs' own output)
///     proc 1 (hello): reaped: exited with code 0
///     proc 2 (probe): killed: page fault: #PF page fault (vector 14) at RIP 0x401010, address
///                     0xffffffff80100000: user access to supervisor page
///                     (AArch64 names its own: "... (EC 36) at ELR 0x401010, ...")
///     run: all processes ended; frames in use: before 1234, after 1234
///
/// `NAME!DAMAGE` starts a copy of program NAME damaged on purpose (DAMAGE is one of machine,
/// kernel_half, overlap, filesz, truncated): the loader must refuse it with its reason and
/// leave no frame allocated (the grader's exit test uses them).
///
/// `NAME@CPU` (two CPUs, QEMU's -smp 2) runs program NAME on CPU CPU for good, and the processes
/// it makes with it (scheduler.hpp); without it a program runs on the boot CPU. A CPU that is not
/// online leaves it on the boot CPU, with a line that says so. `NAME!DAMAGE@CPU:ARG` combines them.
#pragma once

#include "lib/format.hpp"
#include "lib/string_view.hpp"
#include "mm/base/perms.hpp"
#include "mm/space/user_regions.hpp"

namespace pagoda::proc {

struct Process;

/// Prepares the CPU for user mode (arch::user_mode_init) and prints what it turned on; once at
/// boot, after vm::init.
void init();

/// The boot option log=quiet|all (default all). Quiet leaves out the lines that trace the
/// processes' lives (run: ..., started, spawned, exec, reaped): what a user at the shell does not
/// want between their commands (`./pagoda run --quiet`). What goes wrong is still printed (a
/// process killed by a fault, frames leaked). The grader never boots quiet.
void configure_log(StringView mode);
/// The boot option drain=on|off (default off): the grader's witness of frames given back. Just
/// before the run's first process is made and once every process has ended, the run takes every
/// frame the allocator will hand out, records them in a bitmap of its own, stamps those of the
/// second drain (a value from the token) and gives them back; the grader compares the two in guest
/// RAM after the run (grade/pagoda_grade/churn.py).
void configure_drain(StringView mode);
/// Whether the lifecycle lines are printed.
bool lifecycle_log();

/// Runs the programs of @p spec (the value of run=) to their end; @p token goes to each as
/// `token=TOKEN`. Returns true when every program could be started and the kernel can shut
/// down cleanly.
bool run_programs(StringView spec, StringView token);

/// What the record of @p p (lab 5) says of a user fault at @p address trying @p access, as its
/// kill line gives it (after what the walk found): the verdict, and for "no VMA" the regions
/// around the address (explain_no_vma), or, for a fault the record allows that still ends the
/// process, why resolving it failed (vm::explain_unresolved). Returns the verdict's cause. The
/// debugger asks the same through pagoda_record_words() (run.cpp).
FaultCause record_words(FormatSink& sink, Process& p, u64 address, Access access);

}  // namespace pagoda::proc
