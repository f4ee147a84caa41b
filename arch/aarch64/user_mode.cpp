// User mode on AArch64: not yet. The process seam (kernel/proc/arch.hpp) is implemented for
// x86_64 only; until the AArch64 half of lab 3 lands, this kernel has no EL0: user_mode_init()
// says so, run= refuses to start a process (proc::run_programs), and the operations below, which
// only a running process reaches, are never called. What the AArch64 half implements in their
// place is listed in kernel/proc/arch.hpp ("What an AArch64 port provides").
#include "core/panic.hpp"
#include "lib/format.hpp"
#include "proc/arch.hpp"

namespace pagoda::arch {
namespace {

constexpr const char* kNotYet = "no user mode on AArch64 yet (EL0, svc, a TTBR0 root per process with its ASID, PAN: "
                                "the AArch64 half of lab 3)";

[[noreturn]] void unreachable(const char* what) { panic("arch::{}: {}", what, kNotYet); }

}  // namespace

Result<void> user_mode_init(FormatSink& report) {
  format_to(report, "{}", kNotYet);
  return Error(Error::Unsupported, "no user mode on AArch64 yet");
}

uptr prepare_user_entry(uptr, const UserEntry&) { unreachable("prepare_user_entry"); }
void switch_context(uptr*, uptr) { unreachable("switch_context"); }
void set_kernel_stack(uptr) { unreachable("set_kernel_stack"); }
uptr kernel_stack() { return 0; }
void user_access_begin() { unreachable("user_access_begin"); }
void user_access_end() { unreachable("user_access_end"); }

}  // namespace pagoda::arch
