/// @file user_memory.hpp
/// @brief Lab 3's way for the kernel to read and write user memory: check first, then copy
/// with the CPU's guard lifted around the copy alone.
///
/// The CPU stops the kernel from touching user pages (x86_64 SMAP, AArch64 PAN): a stray
/// kernel pointer into user space faults, and the report says "kernel touched user memory".
/// A system call that must read a user buffer (write) or fill one (proc_info) does it here:
///
///   1. check_user_range(): every page of [va, va + size) lies in the user half and is mapped
///      user-accessible (and writable, for a copy to user) in the caller's root, which must be
///      the live one: a bad pointer is an EFAULT for the caller, never a kernel fault;
///   2. UserAccessScope lifts the guard (arch::user_access_begin/end), the bytes are copied,
///      the guard is back before anything else runs.
///
/// Nothing can change the caller's mappings between the two steps (one CPU, interrupts off in
/// the kernel). Lab 4 replaces this with copies that recover from a fault instead of checking
/// first (then a page may be mapped on demand by the fault itself).
#pragma once

#include "lib/result.hpp"
#include "mm/address_space.hpp"
#include "proc/arch.hpp"

namespace pagoda::proc {

/// Lifts the CPU's guard against kernel accesses to user pages for its lifetime.
class [[nodiscard]] UserAccessScope {
 public:
  UserAccessScope() { arch::user_access_begin(); }
  ~UserAccessScope() { arch::user_access_end(); }
  UserAccessScope(const UserAccessScope&) = delete;
  UserAccessScope& operator=(const UserAccessScope&) = delete;
};

/// InvalidArgument unless every page of [va, va + size) is in the user half and mapped user
/// (and writable when @p write) in @p space, which must be live. An empty range is fine.
[[nodiscard]] Result<void> check_user_range(AddressSpace& space, u64 va, u64 size, bool write);

/// Copies @p size bytes from user address @p va (checked) to @p dst.
[[nodiscard]] Result<void> copy_from_user(AddressSpace& space, void* dst, u64 va, usize size);

/// Copies @p size bytes from @p src to user address @p va (checked).
[[nodiscard]] Result<void> copy_to_user(AddressSpace& space, u64 va, const void* src, usize size);

}  // namespace pagoda::proc
