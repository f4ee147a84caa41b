/// @file temp_map_calls.hpp
/// @brief The test calls of lab 4 (kernel/lib/abi.hpp: TempFill, TempTake, TempStress): the
///        grader's window onto temporary mappings made while a process's root is live.
///
/// TempFill and TempTake hand a frame above the window from one process to another: A's call
/// fills it through a temporary mapping while A's root is live, B's call reads it back through
/// another while B's is. TempStress makes many temporary mappings at once, nested, with the
/// timer interrupt on so that ticks land in the middle and map frames of their own above the
/// call's (timer_hook()). Everything the calls do, the grader checks from outside: the frames
/// in guest RAM, the slot stack (TempMapArea) at a stop it picks, and the values the user
/// programs print, recomputed from the boot's token.
#pragma once

#include "lib/types.hpp"

namespace pagoda::proc {

struct Process;

i64 sys_temp_fill(Process& p, u64 seed);
i64 sys_temp_take(Process& p, u64 handle, u64 out, u64 size);
i64 sys_temp_stress(Process& p, u64 seed, u64 maps, u64 flags, u64 out);

/// Frees the frames TempFill still holds (filled, never taken) and returns how many: called
/// when every process has ended, so that no one is left to take them.
usize release_untaken_temp_frames();

/// Called at every timer tick from the kernel: during a TempStress call, maps one of its frames
/// above the call's own mappings and checks a word (nested use from an interrupt).
void temp_map_timer_hook();

}  // namespace pagoda::proc
