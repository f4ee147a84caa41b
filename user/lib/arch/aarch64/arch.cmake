# How user programs are compiled for AArch64 (included by cmake/user.cmake).
#
# General-purpose registers only: the kernel saves no FP/SIMD state on a switch (and leaves
# FP/SIMD access trapped), the same choice as on x86_64.
set(PAGODA_USER_TRIPLE aarch64-unknown-none-elf)
set(PAGODA_USER_ISA_FLAGS -mgeneral-regs-only)
# The page size's one definition: the ELF segments' alignment (user/user.ld, MAXPAGESIZE).
set(PAGODA_USER_PAGE_HEADER arch/aarch64/page_defs.h)
set(PAGODA_USER_PAGE_SHIFT_MACRO AARCH64_PAGE_SHIFT)
