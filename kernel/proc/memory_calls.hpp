/// @file memory_calls.hpp
/// @brief The memory system calls of lab 5 (mmap, munmap, mprotect, brk, sbrk, vma_list): each
/// changes the process's record (its VMAs) first, then makes the page tables agree with it
/// (unmapping and freeing frames, or changing the permissions of pages already brought in).
///
/// Every argument is checked before anything changes: misaligned, empty, overflowing or
/// kernel-half ranges are EINVAL, unknown bits EINVAL, write with execute EACCES, an overlap
/// under kMapFixedNoReplace EEXIST, a range not wholly mapped (mprotect) ENOMEM, and running out
/// of memory ENOMEM with the record unchanged.
#pragma once

#include "lib/types.hpp"
#include "proc/process.hpp"

namespace pagoda::proc {

/// The lowest address mmap picks by itself (far above any program image and its heap).
inline constexpr u64 kMmapBase = u64{1} << 36;
/// The lowest address any mapping may have (page 0 and its neighbours stay unmapped).
inline constexpr u64 kMmapMin = 0x10000;

i64 sys_mmap(Process& p, u64 addr, u64 length, u64 prot, u64 flags);
i64 sys_munmap(Process& p, u64 addr, u64 length);
i64 sys_mprotect(Process& p, u64 addr, u64 length, u64 prot);
i64 sys_brk(Process& p, u64 new_break);
i64 sys_sbrk(Process& p, i64 increment);
i64 sys_vma_list(Process& p, u64 out, u64 max_count);

/// Unmaps every mapped page of [start, end) of @p space and frees its frame; tables left empty
/// go with them. @p pages counts the pages freed. (Lab 3's free_user_pages().)
[[nodiscard]] Result<void> release_pages(AddressSpace& space, u64 start, u64 end, usize& pages);

}  // namespace pagoda::proc
