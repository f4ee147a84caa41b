// Copies between kernel and user memory that recover from faults (see user_memory.hpp).
#include "proc/user_memory.hpp"

#include "arch_impl/user_space.hpp"
#include "core/panic.hpp"
#include "mm/vm.hpp"

/// One entry of the fix-up table: the arch's copy routines emit these into the section
/// pagoda_user_fixups, which each arch's kernel.ld bounds with the two symbols below.
struct PagodaUserFixup {
  pagoda::uptr fault_ip;   ///< an instruction that may fault on a user address
  pagoda::uptr resume_ip;  ///< where the copy goes on after such a fault (it returns short)
};
extern "C" const PagodaUserFixup __start_pagoda_user_fixups[];
extern "C" const PagodaUserFixup __stop_pagoda_user_fixups[];

namespace pagoda::proc {
namespace {

void require_live(const AddressSpace& space, const char* who) {
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
      if (vm::handle_fault(&space, VirtAddr(page), access) != vm::FaultDecision::Resolved) return Error::InvalidArgument;
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

Result<void> copy_from_user(AddressSpace& space, void* dst, u64 va, usize size) {
  if (size == 0) return {};
  if (!in_user_half(va, size)) return Error::InvalidArgument;
  require_live(space, "copy_from_user");
  // LAB 4 BEGIN copy without checking first: a bad page faults and the fix-up returns short
  // LAB 4 SKELETON
  // TRY(check_user_range(space, va, size, false));  // lab 3's check until the fix-up works
  // LAB 4 END
  usize left;
  {
    UserAccessScope open;
    left = arch::user_copy(dst, reinterpret_cast<const void*>(va), size);
  }
  return left == 0 ? Result<void>() : Result<void>(Error::InvalidArgument);
}

Result<void> copy_to_user(AddressSpace& space, u64 va, const void* src, usize size) {
  if (size == 0) return {};
  if (!in_user_half(va, size)) return Error::InvalidArgument;
  require_live(space, "copy_to_user");
  // LAB 4 BEGIN copy without checking first: a bad page faults and the fix-up returns short
  // LAB 4 SKELETON
  // TRY(check_user_range(space, va, size, true));  // lab 3's check until the fix-up works
  // LAB 4 END
  usize left;
  {
    UserAccessScope open;
    left = arch::user_copy(reinterpret_cast<void*>(va), src, size);
  }
  return left == 0 ? Result<void>() : Result<void>(Error::InvalidArgument);
}

Result<usize> copy_string_from_user(AddressSpace& space, char* dst, u64 va, usize capacity) {
  if (capacity == 0) return Error::Overflow;
  // Only the part of the range that lies in the user half may be read; a string that would
  // run past it without a NUL is a fault, like one that runs into an unmapped page.
  if (!in_user_half(va, 1)) return Error::InvalidArgument;
  const usize room = usize(min<u64>(capacity, arch::UserSpace::kEnd - va));
  require_live(space, "copy_string_from_user");
  // LAB 4 BEGIN read the string without checking first: a bad page faults and the fix-up says so
  // LAB 4 SKELETON
  // TRY(check_user_range(space, va, room, false));  // lab 3's check until the fix-up works
  // LAB 4 END
  i64 length;
  {
    UserAccessScope open;
    length = arch::user_string_copy(dst, reinterpret_cast<const char*>(va), room);
  }
  if (length < 0) return Error::InvalidArgument;
  if (usize(length) == room) return room == capacity ? Error::Overflow : Error::InvalidArgument;
  return usize(length);
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

}  // namespace pagoda::proc
