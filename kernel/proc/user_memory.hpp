/// @file user_memory.hpp
/// @brief How the kernel reads and writes user memory (lab 4): copies through the user's own
/// address that recover from a fault, with the CPU's guard lifted around the copy alone; and
/// writes into a process whose root is not live, through temporary mappings.
///
/// The CPU stops the kernel from touching user pages (x86_64 SMAP, AArch64 PAN): a stray
/// kernel pointer into user space faults, and the report says "kernel touched user memory".
/// A system call that reads a user buffer (write), fills one (read, proc_info) or reads a user
/// string does it here, and nowhere else:
///
///   1. the range must lie in the user half (no wrap-around, below arch::UserSpace::kEnd):
///      a kernel or non-canonical address is refused before anything is touched;
///   2. UserAccessScope lifts the guard (arch::user_access_begin/end) and arch::user_copy()
///      copies. It is not checked page by page first: a null, unmapped or read-only page, or a
///      range that runs off the end of a mapping, faults inside the copy, and the page-fault
///      handler finds the faulting instruction in the fix-up table (user_fixup_for()) and
///      resumes at its fix-up, which makes the copy return short. The call returns EFAULT;
///      there is no kernel fault report and no panic.
///
///     syscall write(buf) -> copy_from_user -> arch::user_copy: rep movsb --fault--+
///                                  ^                                          |
///                                  |  Error::InvalidArgument (EFAULT)         v
///                                  +---- "bytes left" <---- fix-up: resume  trap: PC in the
///                                                                         fix-up table
///
/// A fault is resolved first when it can be (lab 5's demand paging): the fix-up applies only to
/// what nothing resolves.
///
/// Those copies go through the user address, so they reach the *live* root's pages only. A
/// process being made (its stack, its arguments: proc/loader.cpp) or a program exec loads is
/// not live while the kernel writes it: its pages are reached through its own tables and a
/// temporary mapping of each frame (copy_to_space()). Written through the user address instead,
/// the bytes land in whatever the live root maps there (another process's stack) or fault.
#pragma once

#include "lib/result.hpp"
#include "mm/space/address_space.hpp"
#include "mm/vm.hpp"
#include "proc/arch.hpp"

namespace pagoda::proc {

/// Lifts the CPU's guard against kernel accesses to user pages for its lifetime. Lab 7: the
/// pages the copy's faults bring in stay pinned until it ends (vm::UserCopyPins), so that a later
/// fault of the same copy never evicts a page it has just brought in.
class [[nodiscard]] UserAccessScope {
 public:
  UserAccessScope() { arch::user_access_begin(); }
  ~UserAccessScope() { arch::user_access_end(); }
  UserAccessScope(const UserAccessScope&) = delete;
  UserAccessScope& operator=(const UserAccessScope&) = delete;

 private:
  vm::UserCopyPins pins_;
};

/// Lab 3's check of a user range in @p space's tables, what the lab-4 skeleton's copies use:
/// InvalidArgument unless every page of [va, va + size) is in the user half and mapped user (and
/// writable when @p write) in @p space; a page its region allows but that is not there yet comes
/// in first (lab 5). The copies of lab 4 do not use it: they let a bad page fault instead.
[[nodiscard]] Result<void> check_user_range(AddressSpace& space, u64 va, u64 size, bool write);

/// True when [va, va + size) lies in the user half (an empty range always does).
bool in_user_half(u64 va, u64 size);

/// Copies @p size bytes from user address @p va of @p space (which must be live) to @p dst;
/// InvalidArgument (the caller's EFAULT) when any byte cannot be read.
[[nodiscard]] Result<void> copy_from_user(AddressSpace& space, void* dst, u64 va, usize size);

/// Copies @p size bytes from @p src to user address @p va of @p space (live); InvalidArgument
/// when any byte cannot be written (some may have been).
[[nodiscard]] Result<void> copy_to_user(AddressSpace& space, u64 va, const void* src, usize size);

/// Copies the NUL-terminated string at user address @p va into @p dst (@p capacity bytes, the
/// NUL included) and returns its length; InvalidArgument when it cannot be read, Overflow when
/// it has no NUL within @p capacity bytes.
[[nodiscard]] Result<usize> copy_string_from_user(AddressSpace& space, char* dst, u64 va, usize capacity);

/// Copies @p size bytes from @p src to user address @p va of @p space, which need not be live
/// (a process being made, an exec's new space): each page is found in @p space's own tables and
/// written through the window or a temporary mapping of its frame (vm::write_frame()), never
/// through the user address. InvalidArgument when a page is not mapped user-writable there (the
/// pages before it may have been written: a caller refused throws the space away).
[[nodiscard]] Result<void> copy_to_space(AddressSpace& space, u64 va, const void* src, usize size);

/// Where to resume after a kernel-mode page fault at instruction @p ip on user address
/// @p address: the fix-up of a user-copy instruction, or 0 when the fault is a kernel bug (not
/// a copy instruction, or an address outside the user half).
uptr user_fixup_for(uptr ip, uptr address);

/// What the trap handlers ask instead of user_fixup_for() for a kernel-mode fault at instruction
/// @p ip on @p address: its answer, checked against the fix-up table read here. A lookup that
/// disagrees with the table is a kernel bug named at once (panic): 0 for an instruction the table
/// holds on a user address (its entry missed), the faulting instruction itself (the copy would
/// fault there again, for ever), or any other address than the entry's resume address. When
/// @p guard_up (the CPU's guard against kernel accesses to user pages was on at the fault: SMAP
/// with RFLAGS.AC clear, PAN set) and the instruction is a copy's, says once that the copy ran
/// outside a UserAccessScope.
uptr checked_user_fixup(uptr ip, uptr address, bool guard_up, const char* guard);

}  // namespace pagoda::proc
