#include "mm/address_space.hpp"

namespace pagoda {

Result<AddressSpace> AddressSpace::create_kernel(TableMemory& memory) {
  return AddressSpace(TRY(arch::ArchAddressSpace::create_kernel(memory)));
}

Result<AddressSpace> AddressSpace::create_user(const AddressSpace& kernel) {
  return AddressSpace(TRY(arch::ArchAddressSpace::create_user(kernel.arch_)));
}

Result<void> AddressSpace::map(VirtAddr va, PhysAddr pa, Perms perms) {
  if (!may_change(va, kPageSize)) return Error::InvalidArgument;
  ConsistencyBatch b = batch();
  return cursor(b, va).map(pa, perms);
}

Result<void> AddressSpace::map_range(VirtAddr va, PhysAddr pa, u64 size, Perms perms) {
  if (!may_change(va, size)) return Error::InvalidArgument;
  ConsistencyBatch b = batch();
  return cursor(b, va).map_range(pa, size, perms);
}

Result<PhysAddr> AddressSpace::unmap(VirtAddr va) {
  if (!may_change(va, kPageSize)) return Error::InvalidArgument;
  ConsistencyBatch b = batch();
  return cursor(b, va).unmap();
}

Result<void> AddressSpace::unmap_range(VirtAddr va, u64 size) {
  if (!may_change(va, size)) return Error::InvalidArgument;
  ConsistencyBatch b = batch();
  return cursor(b, va).unmap_range(size);
}

Result<void> AddressSpace::protect(VirtAddr va, u64 size, Perms perms) {
  if (!may_change(va, size)) return Error::InvalidArgument;
  ConsistencyBatch b = batch();
  return cursor(b, va).protect_range(size, perms);
}

Result<void> AddressSpace::split(VirtAddr va) {
  if (!may_change(va, kPageSize)) return Error::InvalidArgument;
  ConsistencyBatch b = batch();
  return cursor(b, va).split();
}

}  // namespace pagoda
