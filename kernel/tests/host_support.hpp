// Host stand-ins for the kernel's console and panic: output is captured in a string and a
// panic throws HostPanic, so tests can check that a bad call panics and with what message.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

#include "lib/types.hpp"

#include "printers.hpp"  // gtest prints kernel enums, addresses and results by name

namespace pagoda::host {

struct HostPanic : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Everything printed to the console since the last call (which clears it).
std::string take_console();
/// What was printed before the last panic (its HostPanic holds only the panic's own message).
std::string output_before_panic();

/// The CPU the host plays (arch::cpu_id()); 0 unless a test sets it.
extern u32 g_cpu;
/// What cpus_online() answers (1 unless a test says: lab 8's lazy TLB needs two).
extern u32 g_cpus_online;
/// arch::invalidate_all_local() calls, per CPU the host played.
extern u32 g_local_flushes[2];
/// Called with each shootdown() (lab 8) when set; the host has no other CPU to reach.
extern std::function<void(u32 targets, const uptr* pages, usize count)> g_shootdown;

}  // namespace pagoda::host
