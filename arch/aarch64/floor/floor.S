/*
 * The do-nothing AArch64 kernel: the floor `pagoda bench boot` measures Pagoda's boot against.
 * It is loaded and entered like the real kernel (an ELF at the same address, EL1, MMU off) and
 * at once asks QEMU to exit with the success status through semihosting. Whatever this costs
 * is QEMU, not us.
 */
#include "arch/aarch64/boot_defs.h"

        .text
        .global floor_entry
floor_entry:
        mov     x0, #SEMIHOSTING_SYS_EXIT
        adr     x1, exit_success_block
        hlt     #SEMIHOSTING_HLT
1:      wfe
        b       1b

        .balign 8
exit_success_block:
        .quad   ADP_STOPPED_APPLICATION_EXIT
        .quad   EXIT_STATUS_SUCCESS
