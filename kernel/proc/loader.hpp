/// @file loader.hpp
/// @brief The mapping half of the ELF loader: an accepted executable, its user stack and its
/// arguments, recorded as the regions (VMAs) of a process's address space.
///
/// elf::parse_executable() (proc/elf.hpp) decides whether an image may run; load_program()
/// records what it accepted in the space's UserRegions (mm/space/user_regions.hpp) *before* anything
/// is mapped, and maps nothing eagerly but the one page that must hold the arguments. (That is
/// the loader from lab 5 on; in labs 3 and 4 it maps every page of each segment and of the stack
/// at load: see loader.cpp.)
///
///     each load segment      an image region [page below vaddr, page above vaddr + memsz) with
///                            the segment's permissions (r-x text, r-- rodata, rw- data), its
///                            file offset and the file bytes it holds; the first touch of a
///                            page copies them in (the bss tail of the last file page reads as
///                            zeros, whole bss pages are zero frames)
///     the heap               [heap_start, brk): empty at first, starting at the page after the
///                            last segment; brk/sbrk grow and shrink it
///     the user stack         a grows-down region of kUserStackPages pages ending at
///                            kUserStackTop; a fault below it grows it, down to
///                            kUserStackLimit bytes; kUserStackGap bytes below that stay empty
///     the arguments          at the top of the stack, in its one mapped page: the strings,
///                            then argv[] (argc pointers and a null), the stack pointer
///                            16-byte aligned below it
///
///     kUserStackTop -> +--------------------------+
///                      | "hello\0" "token=...\0"  |  the strings, top down (mapped at load)
///                      | (padding to 16 bytes)    |
///                      | argv[0] argv[1] NULL     |  <- argv (rsi / x1)
///     entry SP      -> +--------------------------+  16-byte aligned
///                      | ... the stack grows down |  (pages come on the first touch)
///     top - limit      +--------------------------+
///                      | guard gap: never mapped  |  a fault here: "stack limit"
///
/// Frames come from vm::allocate_user_frame() and are filled through the window or a
/// temporary mapping, never through the target space. On failure the space and its record keep
/// whatever was made: their owner tears both down, so nothing leaks.
#pragma once

#include "arch_impl/user_space.hpp"
#include "lib/result.hpp"
#include "lib/string_view.hpp"
#include "mm/space/address_space.hpp"
#include "mm/space/user_regions.hpp"
#include "proc/arch.hpp"
#include "proc/elf.hpp"

namespace pagoda::proc {

/// The top of every process's user stack: the end of the user half.
inline constexpr u64 kUserStackTop = arch::UserSpace::kEnd;
/// Pages of the user stack's region when a program starts (one of them mapped: the arguments').
inline constexpr usize kUserStackPages = 8;
/// The lowest address of the user stack's first region.
inline constexpr u64 kUserStackBottom = kUserStackTop - kUserStackPages * kPageSize;
/// How far below kUserStackTop the stack may grow (1 MiB).
inline constexpr u64 kUserStackLimit = 256 * kPageSize;
/// The gap below the stack's limit that nothing occupies: a fault there is "stack limit".
inline constexpr u64 kUserStackGap = 16 * kPageSize;

/// Records @p image (an ELF file) in @p regions (the record of @p space, empty) and maps a
/// stack page holding @p args into @p space (a fresh user space); returns where the process
/// starts. InvalidArgument with the loader's reason for a rejected image; Overflow when the
/// arguments do not fit in the stack's top page (abi::kMaxArgs, abi::kMaxArgBytes); NoMemory.
/// @p image must stay readable as long as the process lives: its pages are read on demand.
[[nodiscard]] Result<arch::UserEntry> load_program(AddressSpace& space, UserRegions& regions, Span<const u8> image,
                                                   Span<const StringView> args);

/// The region that records segment @p s of @p image: whole pages, the file offset of its first
/// page, and the file bytes it holds counted from there.
Vma segment_vma(Span<const u8> image, const elf::Segment& s);

}  // namespace pagoda::proc
