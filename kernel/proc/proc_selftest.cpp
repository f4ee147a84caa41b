// Self-tests of lab 3 that are not a run= of programs: the kernel touching user memory.
#include "core/arch.hpp"
#include "core/panic.hpp"
#include "core/selftest.hpp"
#include "lib/facts.hpp"
#include "lib/proof.hpp"
#include "lib/string.hpp"
#include "mm/vm.hpp"
#include "proc/user_memory.hpp"

namespace pagoda {
namespace {

constexpr Perms kUserCode{.read = true, .write = false, .execute = true, .user = true};
constexpr Perms kUserData{.read = true, .write = true, .execute = false, .user = true};
constexpr Perms kUserReadOnly{.read = true, .write = false, .execute = false, .user = true};

constexpr usize kSpaceCopyPages = 3;  ///< the pages space_copy maps, one after another

/// space_copy's stops (the first argument of pagoda_grader_checkpoint()).
enum SpaceCopyStop : u64 {
  kSpaceFramesStop = 0x5343'01,  ///< the pages mapped: the grader fills their frames
  kSpaceCopiedStop = 0x5343'02,  ///< the two copies done: the grader reads the frames back
};
PAGODA_FACT(space_copy_frames_stop, kSpaceFramesStop)
PAGODA_FACT(space_copy_copied_stop, kSpaceCopiedStop)
PAGODA_FACT(space_copy_pages, kSpaceCopyPages)

/// What space_copy shows the grader at its stops (static, so that it can be read there).
struct SpaceCopy {
  u64 root = 0;                      ///< the space's root (not live)
  u64 frames[kSpaceCopyPages] = {};  ///< page i's frame
  i64 results[3] = {};               ///< 0 or the error of each copy
  u64 readonly_frame = 0;            ///< the frame of the read-only page at ro=VA
  i64 readonly_result = 0;           ///< 0 or the error of the copy into it
  u8 source[kSpaceCopyPages * kPageSize] = {};
};
SpaceCopy g_space_copy;

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
  println("user_touch: a checked copy read {:#x} from user page {:#x} proof={:016x}", copied, va,
          proof(ctx.token, copied));
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

/// copy_to_space() into a space that is not live, across page boundaries (lab 4). Maps
/// kSpaceCopyPages user pages at base=VA (the grader picks it) to frames above the window where
/// there are any, in a new space that never becomes live, and stops (kSpaceFramesStop) so that
/// the grader fills the frames. Then copies source bytes (from the token) to base + o1 (n1 bytes)
/// and to base + o2 (n2 bytes): the grader picks ranges that start inside a page and cross one
/// or two page boundaries, the second ending exactly at the last mapped page's end; stops again
/// (kSpaceCopiedStop) for the grader to read the frames back. Last, a copy of k3 + 1 bytes whose
/// last byte is one past the mapped pages must fail. Besides, one more user page at ro=VA (the
/// grader's, away from the others) is mapped read-only, and between the two stops a copy of n4
/// bytes to ro + o4 is made into it: the grader reads its result and the frame. Everything is
/// given back.
PAGODA_SELFTEST(space_copy) {
  if (!vm::ready()) panic("space_copy: no virtual memory (a lab is not done yet)");
  constexpr u64 kSpan = kSpaceCopyPages * kPageSize;
  const u64 base = ctx.arg("base", 0x0000'0040'0000'0000ull);
  const u64 o1 = ctx.arg("o1", 100), n1 = ctx.arg("n1", kPageSize), o2 = ctx.arg("o2", 200);
  const u64 n2 = ctx.arg("n2", kSpan - 200), k3 = ctx.arg("k3", 8);
  const u64 ro = ctx.arg("ro", base + kSpan + 4 * kPageSize), o4 = ctx.arg("o4", 0), n4 = ctx.arg("n4", 8);
  if (!is_aligned(base, kPageSize) || !proc::in_user_half(base, kSpan) || n1 == 0 || o1 + n1 > kSpan || n2 == 0 ||
      o2 + n2 > kSpan || k3 == 0 || k3 >= kPageSize)
    panic("space_copy: base={:#x} o1={} n1={} o2={} n2={} k3={}: a page-aligned user base, ranges inside its {} pages",
          base, o1, n1, o2, n2, k3, kSpaceCopyPages);
  if (!is_aligned(ro, kPageSize) || !proc::in_user_half(ro, kPageSize) ||
      (ro + kPageSize > base && ro <= base + kSpan) || n4 == 0 || o4 + n4 > kPageSize)
    panic("space_copy: ro={:#x} o4={} n4={}: a page-aligned user page apart from base={:#x}'s {} pages and the one "
          "after them, a range inside it",
          ro, o4, n4, base, kSpaceCopyPages);
  SpaceCopy& t = g_space_copy;
  for (u64 i = 0; i < kSpan; ++i) t.source[i] = u8(proof(ctx.token, 0x5343'0000 + i / 8) >> (8 * (i % 8)));
  const usize before = vm::frames().free_frames();
  {
    AddressSpace space = MUST(AddressSpace::create_user(vm::kernel_space()));
    space.name_for_debugging("space_copy", 0);
    t.root = space.root().value();
    const auto frame = [] {  // high memory first (the window need not reach it), else any
      Result<PhysAddr> f = vm::frames().allocate_high();
      if (f.is_error()) f = vm::frames().allocate_below(vm::reachable_limit());
      return MUST(f).value();
    };
    for (usize i = 0; i < kSpaceCopyPages; ++i) {
      t.frames[i] = frame();
      MUST(space.map(VirtAddr(base + i * kPageSize), PhysAddr(t.frames[i]), kUserData));
    }
    t.readonly_frame = frame();
    MUST(space.map(VirtAddr(ro), PhysAddr(t.readonly_frame), kUserReadOnly));
    pagoda_grader_checkpoint(kSpaceFramesStop, reinterpret_cast<u64>(&t), base);
    println("space_copy: {} bytes to {:#x} (offset {} in its page)", n2, base + o2, o2 % kPageSize);
    const Result<void> two = proc::copy_to_space(space, base + o2, t.source, n2);
    t.results[1] = two.is_error() ? -1 : 0;
    println("space_copy: {} bytes to {:#x} (offset {} in its page)", n1, base + o1, o1 % kPageSize);
    const Result<void> one = proc::copy_to_space(space, base + o1, t.source, n1);
    t.results[0] = one.is_error() ? -1 : 0;
    println("space_copy: {} bytes to {:#x} (offset {} in a read-only page)", n4, ro + o4, o4);
    const Result<void> four = proc::copy_to_space(space, ro + o4, t.source, n4);
    t.readonly_result = four.is_error() ? -1 : 0;
    pagoda_grader_checkpoint(kSpaceCopiedStop, reinterpret_cast<u64>(&t), base);
    println("space_copy: {} bytes to {:#x}, one past the mapped pages", k3 + 1, base + kSpan - k3);
    const Result<void> three = proc::copy_to_space(space, base + kSpan - k3, t.source, k3 + 1);
    t.results[2] = three.is_error() ? -1 : 0;
    for (usize i = 0; i < kSpaceCopyPages; ++i) (void)MUST(space.unmap(VirtAddr(base + i * kPageSize)));
    (void)MUST(space.unmap(VirtAddr(ro)));
  }
  for (const u64 f : t.frames) vm::frames().free(PhysAddr(f));
  vm::frames().free(PhysAddr(t.readonly_frame));
  println("space_copy: results {} {} {}; free frames before {} after {} proof={:016x}", t.results[1], t.results[0],
          t.results[2], before, vm::frames().free_frames(),
          proof(ctx.token, u64(t.results[0]) ^ (u64(t.results[1]) << 1) ^ (u64(t.results[2]) << 2)));
}

/// A user copy's instruction faulting on a user address, then on a kernel one (lab 4, rules 10
/// and 11 of its handout). The copy routine is called, inside a UserAccessScope, first on user=VA,
/// a user address the grader picks (the kernel's root maps no user page), reading 8 bytes from it
/// and then writing size=N bytes to it (N the grader's too): the fix-up must take both faults, the
/// load's and the store's, and each copy comes back with the bytes it did not copy, all of them.
/// Then on addr=VA, a kernel-half address the grader picks where nothing is mapped, as a kernel
/// path that skipped the range check would: no fix-up may take that fault (user_fixup_for() gives
/// 0 outside the user half), and the kernel must stop with its report of a kernel fault. Reaching
/// the line after the last copy is the failure.
PAGODA_SELFTEST(kernel_copy_fault) {
  if (!vm::ready()) panic("kernel_copy_fault: no virtual memory (a lab is not done yet)");
  const u64 user = ctx.arg("user", 0x0000'1234'5678'9000ull);
  const u64 va = ctx.arg("addr", layout::kWindowBase + layout::kWindowSize + 0x1234'5000ull);
  const u64 size = ctx.arg("size", 8);
  if (!proc::in_user_half(user, 8)) panic("kernel_copy_fault: user={:#x} is not a user address", user);
  if (size == 0 || size > 64 || !proc::in_user_half(user, size)) {
    panic("kernel_copy_fault: size={} is not 1 to 64 bytes of the user half", size);
  }
  if (proc::in_user_half(va, 1)) panic("kernel_copy_fault: addr={:#x} is a user address, not a kernel one", va);
  u64 value = 0;
  usize left = 0;
  {
    proc::UserAccessScope open;
    left = arch::user_copy(&value, reinterpret_cast<const void*>(user), sizeof value);
  }
  println("kernel_copy_fault: the copy from user address {:#x} came back, {} bytes not copied", user, left);
  const u8 bytes[64] = {};
  {
    proc::UserAccessScope open;
    left = arch::user_copy(reinterpret_cast<void*>(user), bytes, size);
  }
  println("kernel_copy_fault: the copy of {} bytes to user address {:#x} came back, {} bytes not copied", size, user,
          left);
  println("kernel_copy_fault: a user copy from kernel address {:#x}", va);
  {
    proc::UserAccessScope open;
    left = arch::user_copy(&value, reinterpret_cast<const void*>(va), sizeof value);
  }
  panic("kernel_copy_fault: the copy from kernel address {:#x} came back, {} bytes not copied: its fault was fixed "
        "up as if a user pointer were bad, so a kernel bug would look like EFAULT (user_fixup_for() must give 0 "
        "for an address outside the user half)",
        va, left);
}

}  // namespace pagoda
