/*
 * The do-nothing PVH kernel: the floor `pagoda bench boot` measures Pagoda's boot against.
 * It enters like the real kernel (PVH note, 32-bit entry) and at once asks QEMU to exit with
 * the success status through isa-debug-exit. Whatever this costs is QEMU and firmware, not us.
 */
#include "arch/x86_64/boot_defs.h"

        .section .note.Xen, "a", @note
        .balign 4
        .long 4
        .long 4
        .long XEN_ELFNOTE_PHYS32_ENTRY
        .asciz "Xen"
        .balign 4
        .long floor_entry
        .balign 4

        .text
        .code32
        .global floor_entry
floor_entry:
        movw    $DEBUG_EXIT_PORT, %dx
        movl    $DEBUG_EXIT_SUCCESS, %eax
        outl    %eax, %dx
1:      hlt
        jmp     1b
