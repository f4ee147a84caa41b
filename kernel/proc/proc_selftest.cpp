// Self-tests of lab 3 that are not a run= of programs: the kernel touching user memory.
#include "core/arch.hpp"
#include "core/panic.hpp"
#include "core/selftest.hpp"
#include "lib/proof.hpp"
#include "lib/string.hpp"
#include "mm/vm.hpp"
#include "proc/user_memory.hpp"

namespace pagoda {
namespace {

constexpr Perms kUserCode{.read = true, .write = false, .execute = true, .user = true};

}  // namespace

/// A user space with one user page (at addr=ADDRESS, chosen by the grader), made live; then the
/// kernel reads it (how=read, through a plain pointer: outside any checked copy) or calls it
/// (how=exec). SMAP/PAN, SMEP/PXN make either fault, and the report must say "kernel touched
/// user memory" / "kernel executed user memory". First, a checked copy of the same page must
/// work (the guard lifted around it alone).
PAGODA_SELFTEST(user_touch) {
  if (!vm::ready()) panic("user_touch: no virtual memory (a lab is not done yet)");
  const u64 va = align_down(ctx.arg("addr", 0x0000'1234'5000'0000ull), kPageSize);
  const bool exec = ctx.arg("exec", 0) != 0;
  AddressSpace space = MUST(AddressSpace::create_user(vm::kernel_space()));
  space.name_for_debugging("user_touch", 0);
  const PhysAddr frame = MUST(vm::frames().allocate_below(vm::reachable_limit()));
  auto* bytes = static_cast<u8*>(vm::phys_to_ptr(frame, kPageSize));
  memset(bytes, 0, kPageSize);
  const Span<const u8> ret = arch::return_instruction();
  memcpy(bytes, ret.data(), ret.size());
  const u64 marker = proof(ctx.token, va);
  memcpy(bytes + kPageSize - sizeof marker, &marker, sizeof marker);
  MUST(space.map(VirtAddr(va), frame, kUserCode));
  space.activate();
  vm::set_current_space(&space);
  u64 copied = 0;
  MUST(proc::copy_from_user(space, &copied, va + kPageSize - sizeof copied, sizeof copied));
  println("user_touch: a checked copy read {:#x} from user page {:#x} proof={:016x}", copied, va, proof(ctx.token, copied));
  if (exec) {
    println("user_touch: the kernel calls user code at {:#x}", va);
    reinterpret_cast<void (*)()>(va)();
  } else {
    println("user_touch: the kernel reads user page {:#x} through a plain pointer", va);
    const u64 value = *reinterpret_cast<volatile const u64*>(va);
    println("user_touch: read {:#x}", value);
  }
  panic("user_touch: the kernel reached user page {:#x} and nothing stopped it (SMAP/SMEP off?)", va);
}

}  // namespace pagoda
