// Copies between kernel and user memory that recover from faults (see user_memory.hpp).
#include "proc/user_memory.hpp"

#include "arch_impl/user_space.hpp"
#include "core/arch.hpp"
#include "core/panic.hpp"
#include "core/stop.hpp"
#include "lib/string.hpp"
#include "mm/vm.hpp"

/// One entry of the fix-up table: the arch's copy routines emit these into the section
/// pagoda_user_fixups, which each arch's kernel.ld bounds with the two symbols below.
struct PagodaUserFixup {
  pagoda::uptr fault_ip;   ///< an instruction that may fault on a user address
  pagoda::uptr resume_ip;  ///< where the copy goes on after such a fault (it returns short)
};
extern "C" const PagodaUserFixup __start_pagoda_user_fixups[];
extern "C" const PagodaUserFixup __stop_pagoda_user_fixups[];

/// Where the lab-4 skeleton's copy routines (arch/<isa>/user_copy.S) jump: not written yet.
extern "C" [[noreturn]] void pagoda_user_copy_missing() {
  pagoda::panic("lab 4: write the copy routines of arch/{}/user_copy.S and their fix-up entries "
                "(labs/04-temp-mappings/README.md)",
                pagoda::arch::name());
}

namespace pagoda::proc {
namespace {

[[maybe_unused]] void require_live(const AddressSpace& space, const char* who) {
  if (!space.is_live()) panic("{}: the space (root {:#x}) is not the live one", who, space.root().value());
}

}  // namespace

Result<void> check_user_range(AddressSpace& space, u64 va, u64 size, bool write) {
  if (size == 0) return {};
  if (!in_user_half(va, size)) return Error::InvalidArgument;
  for (u64 page = align_down(va, kPageSize); page < va + size; page += kPageSize) {
    Walk walk = space.query(VirtAddr(page));
    if (!walk.mapped()) {
      // Not there yet: a page its region allows comes in now, as a user access would bring it.
      const Access access{.write = write, .user = true};
      if (vm::handle_fault(&space, VirtAddr(page), access) != vm::FaultDecision::Resolved)
        return Error::InvalidArgument;
      walk = space.query(VirtAddr(page));
      if (!walk.mapped()) return Error::InvalidArgument;
    }
    if (!walk.perms.read || !walk.perms.user || (write && !walk.perms.write)) return Error::InvalidArgument;
  }
  return {};
}

bool in_user_half(u64 va, u64 size) {
  if (size == 0) return true;
  const u64 end = va + size;
  return end > va && end <= arch::UserSpace::kEnd;
}

// ---- Lab 3's copies: what the lab-4 skeleton keeps -------------------------------------------

namespace {

/// Lab 3's way of touching user memory, what the lab-4 skeleton keeps: every page looked up in
/// @p space's tables first (check_user_range()), then copied through the kernel's window at the
/// frame the walk found, never through the user address. Two walks per page, a frame the window
/// does not show cannot be reached, and a page unmapped between the check and the copy is read
/// anyway; lab 4 copies through the user address itself and lets a bad page fault.
[[maybe_unused]] Result<void> copy_through_window(AddressSpace& space, u64 va, void* kernel, usize size, bool to_user) {
  TRY(check_user_range(space, va, size, to_user));
  u8* bytes = static_cast<u8*>(kernel);
  for (u64 at = va, end = va + size; at < end;) {
    const usize n = usize(min<u64>(end - at, kPageSize - at % kPageSize));
    u8* frame = static_cast<u8*>(vm::phys_to_ptr(space.query(VirtAddr(at)).pa, n));
    if (frame == nullptr)
      panic("lab 4: user page {:#x} is in a frame beyond the kernel's window: write the user copies in "
            "kernel/proc/user_memory.cpp (labs/04-temp-mappings/README.md)",
            at);
    if (to_user) memcpy(frame, bytes + (at - va), n);
    else memcpy(bytes + (at - va), frame, n);
    at += n;
  }
  return {};
}

/// Lab 3's string copy, what the lab-4 skeleton keeps: byte by byte through the window, each new
/// page checked in the tables first. The results of copy_string_from_user().
[[maybe_unused]] Result<usize> string_through_window(AddressSpace& space, char* dst, u64 va, usize room,
                                                     usize capacity) {
  for (usize i = 0; i < room; ++i) {
    if (i == 0 || (va + i) % kPageSize == 0) TRY(check_user_range(space, va + i, 1, false));
    const char* c = static_cast<const char*>(vm::phys_to_ptr(space.query(VirtAddr(va + i)).pa, 1));
    if (c == nullptr)
      panic("lab 4: user page {:#x} is in a frame beyond the kernel's window: write the user copies in "
            "kernel/proc/user_memory.cpp (labs/04-temp-mappings/README.md)",
            va + i);
    dst[i] = *c;
    if (*c == '\0') return i;
  }
  return room == capacity ? Error::Overflow : Error::InvalidArgument;
}

}  // namespace

// ---- The copies of lab 4 -----------------------------------------------------------------------

Result<void> copy_from_user(AddressSpace& space, void* dst, u64 va, usize size) {
  // LAB 4 BEGIN copy straight through the user's address: a bad page faults and the fix-up makes it EFAULT
  if (size == 0) return {};
  if (!in_user_half(va, size)) return Error::InvalidArgument;  // kernel and non-canonical: never touched
  require_live(space, "copy_from_user");
  usize left;
  {
    UserAccessScope open;
    left = arch::user_copy(dst, reinterpret_cast<const void*>(va), size);
  }
  return left == 0 ? Result<void>() : Result<void>(Error::InvalidArgument);
  // LAB 4 SKELETON
  // return copy_through_window(space, va, dst, size, false);  // lab 3's way: checked first, then the window
  // LAB 4 END
}

Result<void> copy_to_user(AddressSpace& space, u64 va, const void* src, usize size) {
  // LAB 4 BEGIN copy straight through the user's address: a bad page faults and the fix-up makes it EFAULT
  if (size == 0) return {};
  if (!in_user_half(va, size)) return Error::InvalidArgument;
  require_live(space, "copy_to_user");
  usize left;
  {
    UserAccessScope open;
    left = arch::user_copy(reinterpret_cast<void*>(va), src, size);
  }
  return left == 0 ? Result<void>() : Result<void>(Error::InvalidArgument);
  // LAB 4 SKELETON
  // return copy_through_window(space, va, const_cast<void*>(src), size, true);  // lab 3's way
  // LAB 4 END
}

Result<usize> copy_string_from_user(AddressSpace& space, char* dst, u64 va, usize capacity) {
  if (capacity == 0) return Error::Overflow;
  // Only the part of the range that lies in the user half may be read; a string that would
  // run past it without a NUL is a fault, like one that runs into an unmapped page.
  if (!in_user_half(va, 1)) return Error::InvalidArgument;
  const usize room = usize(min<u64>(capacity, arch::UserSpace::kEnd - va));
  // LAB 4 BEGIN read the string straight through the user's address: a bad page faults and the fix-up says so
  require_live(space, "copy_string_from_user");
  i64 length;
  {
    UserAccessScope open;
    length = arch::user_string_copy(dst, reinterpret_cast<const char*>(va), room);
  }
  if (length < 0) return Error::InvalidArgument;
  if (usize(length) == room) return room == capacity ? Error::Overflow : Error::InvalidArgument;
  return usize(length);
  // LAB 4 SKELETON
  // return string_through_window(space, dst, va, room, capacity);  // lab 3's way
  // LAB 4 END
}

uptr user_fixup_for(uptr ip, uptr address) {
  // LAB 4 BEGIN find the faulting instruction in the fix-up table (a user address only)
  if (!in_user_half(address, 1)) return 0;
  for (const PagodaUserFixup* f = __start_pagoda_user_fixups; f < __stop_pagoda_user_fixups; ++f)
    if (f->fault_ip == ip) return f->resume_ip;
  return 0;
  // LAB 4 SKELETON
  // (void)ip;
  // (void)address;
  // (void)__start_pagoda_user_fixups;
  // (void)__stop_pagoda_user_fixups;
  // return 0;  // lab 4: write user_fixup_for() in kernel/proc/user_memory.cpp (labs/04-temp-mappings/README.md)
  // LAB 4 END
}

[[PAGODA_STOP(checked_user_fixup)]] uptr checked_user_fixup(uptr ip, uptr address, bool guard_up, const char* guard) {
  const uptr got = user_fixup_for(ip, address);
  uptr want = 0;
  bool in_table = false;
  for (const PagodaUserFixup* f = __start_pagoda_user_fixups; f < __stop_pagoda_user_fixups; ++f)
    if (f->fault_ip == ip) {
      in_table = true;
      if (in_user_half(address, 1)) want = f->resume_ip;
      break;
    }
  static bool guard_said = false;
  if (in_table && guard_up && in_user_half(address, 1) && !guard_said) {
    guard_said = true;
    println("USER COPY WITH THE GUARD ON: the copy instruction at {:#x} faulted on user address {:#x} while {} was on: "
            "the copy ran outside a UserAccessScope, so the CPU refuses it every user page (EFAULT)",
            ip, address, guard);
  }
  if (got == want) return got;
  if (want == 0 && in_table)
    panic("user_fixup_for({:#x}, {:#x}) returned {:#x}: the address is not in the user half, so no fix-up may "
          "take the fault (a kernel address faulting in a copy is a kernel bug, never EFAULT)",
          ip, address, got);
  if (want == 0)
    panic("user_fixup_for({:#x}, {:#x}) returned {:#x}, but that instruction is not in the fix-up table: only a "
          "table entry's faulting instruction has a resume address",
          ip, address, got);
  if (got == 0)
    panic("user_fixup_for({:#x}, {:#x}) returned 0, but the fix-up table holds that instruction (resume at {:#x}): "
          "the lookup missed its entry (compare each entry's faulting instruction with ip)",
          ip, address, want);
  if (got == ip)
    panic("user_fixup_for({:#x}, {:#x}) returned the faulting instruction itself, not its entry's resume address "
          "{:#x}: the copy would restart there and fault again, for ever",
          ip, address, want);
  panic("user_fixup_for({:#x}, {:#x}) returned {:#x}, but the fix-up table's entry for that instruction resumes at "
        "{:#x}",
        ip, address, got, want);
}

Result<void> copy_to_space(AddressSpace& space, u64 va, const void* src, usize size) {
  // LAB 4 BEGIN write into a space that need not be live: its own tables name each frame, a temporary mapping reaches it
  if (!in_user_half(va, size)) return Error::InvalidArgument;
  const u8* from = static_cast<const u8*>(src);
  for (usize done = 0; done < size;) {
    const u64 at = va + done;
    const usize n = usize(min<u64>(size - done, kPageSize - at % kPageSize));
    // This space's own tables: the live root (another process's, or the kernel's) maps
    // something else at this address, or nothing.
    const Walk walk = space.query(VirtAddr(at));
    if (!walk.mapped() || !walk.perms.user || !walk.perms.write) return Error::InvalidArgument;
    vm::write_frame(walk.pa.align_down(kPageSize), at % kPageSize, from + done, n);
    done += n;
  }
  return {};
  // LAB 4 SKELETON
  // return copy_through_window(space, va, const_cast<void*>(src), size, true);  // lab 3's way: the window only
  // LAB 4 END
}

}  // namespace pagoda::proc
