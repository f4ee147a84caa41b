/// @file shootdown.hpp
/// @brief Lab 8's TLB shootdown, as the memory manager's batches call it (core/cpu.cpp has it).
#pragma once

#include "lib/types.hpp"

namespace pagoda {

/// Lab 8's shootdown (core/cpu.cpp): the CPUs of @p targets (bit c: CPU c; this CPU and those
/// not online are left out) each drop the translations of @p pages (@p count of them, at most
/// kShootdownPages; kShootdownAll: every translation) from their own TLBs. One request in each
/// target's mailbox, one IPI each; returns once every target acknowledged, so that what the
/// pages mapped may be given away. Serves this CPU's own mailbox while it waits.
void shootdown(u32 targets, const uptr* pages, usize count);
/// How many pages one request of shootdown() carries; past that, it asks for every translation.
inline constexpr usize kShootdownPages = 16;
inline constexpr usize kShootdownAll = ~usize{0};

}  // namespace pagoda
