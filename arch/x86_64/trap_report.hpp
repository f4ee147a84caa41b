/// @file trap_report.hpp
/// @brief What traps.cpp (the dispatch) and trap_report.cpp (the reports) share; nothing else
/// includes it.
#pragma once

#include "arch/x86_64/trap_frame.hpp"
#include "lib/facts.hpp"
#include "mm/base/perms.hpp"
#include "mm/vm.hpp"

namespace pagoda::x86 {

/// The CPU's exception vectors (0-31) that the dispatch and the reports tell apart.
enum Vector : u8 {
  kDivide = 0,
  kDebug = 1,
  kNmi = 2,
  kBreakpoint = 3,
  kOverflow = 4,
  kBound = 5,
  kInvalidOpcode = 6,
  kDeviceNotAvailable = 7,
  kDoubleFault = 8,
  kCoprocessorOverrun = 9,
  kInvalidTss = 10,
  kSegmentNotPresent = 11,
  kStackFault = 12,
  kGeneralProtection = 13,
  kPageFault = 14,
  kX87 = 16,
  kAlignmentCheck = 17,
  kMachineCheck = 18,
  kSimd = 19,
  kVirtualization = 20,
  kControlProtection = 21,
  kHypervisorInjection = 28,
  kVmmCommunication = 29,
  kSecurity = 30,
  kExceptionCount = 32,
};

/// Exception @p vector's (mnemonic, name), as the kernel's reports print them (traps.cpp's
/// table, which the tools read from the ELF).
const FactName& exception_name(u64 vector);

/// What a page fault's access tried to do, from its error code.
Access page_fault_access(u64 error);

/// @name The reports (trap_report.cpp)
/// Each prints and returns; the dispatch (x86_trap()) panics, so that a panic's site stays the
/// trap handler.
/// @{
/// Prints the full report of an exception: what, where, why, and every register.
void report_exception(const TrapFrame& f);
/// @p f as the report of a fault taken while another was being reported names it (CR2 and CR3
/// as they are now, when the trap is taken).
vm::TrapSite trap_site(const TrapFrame& f);
/// Marks the report of @p f as under way for as long as it lives (vm::ReportingFault).
struct Reporting : vm::ReportingFault {
  explicit Reporting(const TrapFrame& f) : vm::ReportingFault(trap_site(f)) {}
};
/// A double fault that interrupted user mode: the CPU could not push the frame of an exception
/// or interrupt from ring 3 on the kernel stack TSS.RSP0 names. Reports what RSP0 is instead of
/// the process's kernel stack, and panics: a kernel bug (the switch to the process), never the
/// process's.
[[noreturn]] void report_user_trap_stack(const TrapFrame& f);
/// What a double fault of the kernel was, as report_double_fault() found it.
enum class DoubleFault : u8 {
  Unknown,    ///< none of the below: the generic report follows
  TrapStack,  ///< the system-call entry could not push on the stack it loaded (the words: in the sink)
  Overflow,   ///< a kernel stack ran into its guard page
  Unmapped,   ///< the running stack is not mapped in the live root
};
/// A double fault of the kernel (@p f): when it has a known cause, prints what it is and the
/// exception's report (the system-call stack's case writes why to @p why too) and says which;
/// Unknown, printing nothing, otherwise.
DoubleFault report_double_fault(const TrapFrame& f, FormatSink& why);
/// For the panic line of a page fault of the kernel (@p f): what the access was, where the
/// address lies, and what the walk found (": write to 0x... on the kernel stack of slot 2 ...:
/// ...").
void describe_kernel_page_fault(FormatSink& sink, const TrapFrame& f);
/// @}

}  // namespace pagoda::x86
