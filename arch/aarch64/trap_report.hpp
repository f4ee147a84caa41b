/// @file trap_report.hpp
/// @brief What traps.cpp (the dispatch) and trap_report.cpp (the reports) share; nothing else
/// includes it.
#pragma once

#include "arch/aarch64/trap_frame.hpp"
#include "lib/format.hpp"
#include "mm/base/perms.hpp"
#include "mm/vm.hpp"

namespace pagoda::aarch64 {

inline constexpr const char* kVectorTypeNames[] = {"synchronous exception", "IRQ", "FIQ", "SError"};
inline constexpr const char* kVectorOriginNames[] = {"current EL on SP_EL0", "current EL on SP_EL1",
                                                     "lower EL (AArch64)", "lower EL (AArch32)"};

/// What an abort's access tried to do, from its syndrome and the level it came from.
Access abort_access(const TrapFrame& f);
/// True when @p f is an abort with a valid fault address: what the page-fault path handles.
bool is_translation_abort(const TrapFrame& f);

/// @name The reports (trap_report.cpp)
/// Each prints and returns; the dispatch (aarch64_trap()) panics, so that a panic's site stays
/// the trap handler.
/// @{
/// Prints the full report of an exception: what, where, why, and every register.
void report_exception(const TrapFrame& f);
/// @p f as the report of a fault taken while another was being reported names it.
vm::TrapSite trap_site(const TrapFrame& f);
/// Marks the report of @p f as under way for as long as it lives (vm::ReportingFault).
struct Reporting : vm::ReportingFault {
  explicit Reporting(const TrapFrame& f) : vm::ReportingFault(trap_site(f)) {}
};
/// Why the vector entry built a frame on the overflow stack (vectors.S, kstack_check).
enum class Overflowed : u8 {
  TrapStack,  ///< an exception from EL0 could not push its frame on SP_EL1 (the words: in the sink)
  Unmapped,   ///< the running stack is not mapped in the live roots
  Guard,      ///< a kernel stack ran into its guard page
};
/// A frame @p f the vector entry built on the overflow stack: prints what happened and the
/// exception's report (the EL1 stack's case writes why to @p why too), and says which.
Overflowed report_overflowed(const TrapFrame& f, FormatSink& why);
/// For the panic line of an abort of the kernel (@p f): what the access was, where the address
/// lies, and what the walk found.
void describe_kernel_abort(FormatSink& sink, const TrapFrame& f);
/// @}

}  // namespace pagoda::aarch64
