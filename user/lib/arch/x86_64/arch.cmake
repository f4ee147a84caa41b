# How user programs are compiled for x86_64 (included by cmake/user.cmake).
#
# No x87/MMX/SSE/AVX: the kernel saves only the general-purpose registers on a switch, so user
# code must not keep state in the others (and the kernel does not enable them). The red zone
# stays on: a trap from ring 3 always switches to the kernel stack.
set(PAGODA_USER_TRIPLE x86_64-unknown-none-elf)
set(PAGODA_USER_ISA_FLAGS -mno-mmx -mno-sse -mno-sse2 -mno-avx -mno-80387)
# The page size's one definition: the ELF segments' alignment (user/user.ld, MAXPAGESIZE).
set(PAGODA_USER_PAGE_HEADER arch/x86_64/page_defs.h)
set(PAGODA_USER_PAGE_SHIFT_MACRO X86_PAGE_SHIFT)
