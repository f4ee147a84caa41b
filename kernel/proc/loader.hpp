/// @file loader.hpp
/// @brief The mapping half of the ELF loader: an accepted executable, its user stack and its
/// arguments, written into a process's address space.
///
/// elf::parse_executable() (proc/elf.hpp) decides whether an image may run; load_program()
/// maps what it accepted into a fresh user space:
///
///     each load segment      one fresh frame per page, zeroed, the file bytes copied in (the
///                            bss tail of the last file page reads as zeros), mapped with the
///                            segment's own permissions: r-x text, r-- rodata, rw- NX data
///     the user stack         kUserStackPages pages rw- NX, ending at kUserStackTop; the page
///                            below it is a guard that is never mapped
///     the arguments          at the top of the stack: the strings, then argv[] (argc
///                            pointers and a null), the stack pointer 16-byte aligned below it
///
///     kUserStackTop -> +--------------------------+
///                      | "hello\0" "token=...\0"  |  the strings, top down
///                      | (padding to 16 bytes)    |
///                      | argv[0] argv[1] NULL     |  <- argv (rsi / x1)
///     entry SP      -> +--------------------------+  16-byte aligned
///                      | ... the stack grows down |
///     top - pages*4K   +--------------------------+
///                      | guard: never mapped      |
///
/// The frames come from below the window's end (vm::reachable_limit()), so that the kernel can
/// fill them through the window before the process's root is ever loaded. (Lab 4's temporary
/// mappings lift that limit.) On failure the space keeps whatever was mapped: its owner tears
/// it down (free_user_half), so nothing leaks.
#pragma once

#include "arch_impl/user_space.hpp"
#include "lib/result.hpp"
#include "lib/string_view.hpp"
#include "mm/address_space.hpp"
#include "proc/arch.hpp"

namespace pagoda::proc {

/// The top of every process's user stack: the end of the user half.
inline constexpr u64 kUserStackTop = arch::UserSpace::kEnd;
/// Pages of the user stack (all mapped at load: no stack growth before lab 5).
inline constexpr usize kUserStackPages = 8;
/// The lowest address of the user stack; the page below it is the guard.
inline constexpr u64 kUserStackBottom = kUserStackTop - kUserStackPages * kPageSize;

/// Maps @p image (an ELF file) and a stack holding @p args into @p space (a fresh user space);
/// returns where the process starts. InvalidArgument with the loader's reason for a rejected
/// image; Overflow when the arguments do not fit in the stack's top page (abi::kMaxArgs,
/// abi::kMaxArgBytes); NoMemory.
[[nodiscard]] Result<arch::UserEntry> load_program(AddressSpace& space, Span<const u8> image,
                                                   Span<const StringView> args);

}  // namespace pagoda::proc
