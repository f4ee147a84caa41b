// Checked copies between kernel and user memory (see user_memory.hpp).
#include "proc/user_memory.hpp"

#include "arch_impl/user_space.hpp"
#include "core/panic.hpp"
#include "lib/string.hpp"

namespace pagoda::proc {

Result<void> check_user_range(AddressSpace& space, u64 va, u64 size, bool write) {
  if (size == 0) return {};
  const u64 end = va + size;
  if (end < va || end > arch::UserSpace::kEnd) return Error::InvalidArgument;
  if (!space.is_live()) panic("check_user_range: the space checked (root {:#x}) is not the live one", space.root().value());
  ConsistencyBatch reads = space.batch();
  AddressSpace::Cursor c = space.cursor(reads, VirtAddr(va).align_down(kPageSize));
  for (u64 page = align_down(va, kPageSize); page < end; page += kPageSize) {
    if (page != c.va().value()) c.find(VirtAddr(page));
    if (!c.mapped()) return Error::InvalidArgument;
    const Perms p = c.perms();
    if (!p.user || (write && !p.write)) return Error::InvalidArgument;
  }
  return {};
}

Result<void> copy_from_user(AddressSpace& space, void* dst, u64 va, usize size) {
  TRY(check_user_range(space, va, size, false));
  UserAccessScope open;
  memcpy(dst, reinterpret_cast<const void*>(va), size);
  return {};
}

Result<void> copy_to_user(AddressSpace& space, u64 va, const void* src, usize size) {
  TRY(check_user_range(space, va, size, true));
  UserAccessScope open;
  memcpy(reinterpret_cast<void*>(va), src, size);
  return {};
}

}  // namespace pagoda::proc
