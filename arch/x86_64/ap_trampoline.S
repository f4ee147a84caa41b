/*
 * The start of a secondary CPU (x86_64), from the STARTUP IPI to the kernel's C++.
 *
 * smp.cpp copies [x86_ap_trampoline, x86_ap_trampoline_end) to physical AP_TRAMPOLINE_BASE and
 * fills x86_ap_params in the copy; the STARTUP IPI starts the CPU there in real mode with
 * CS:IP = (AP_TRAMPOLINE_BASE >> 4):0, interrupts off, paging off. The code is linked here but
 * runs only in the copy, so every address it uses is AT(label): the copy's physical address.
 *   1. loads its own small GDT (32-bit code, flat data, 64-bit code) and enters protected mode;
 *   2. enables PAE and PGE, loads the temporary root the boot CPU built (the kernel's half of
 *      its root, plus an identity of the first 2 MiB for this code), sets EFER as the boot CPU
 *      has it (LME, NXE, SCE), and turns paging on with CR0.WP: long mode;
 *   3. in 64-bit code, takes its kernel stack and jumps to x86_ap_start(cpu, kernel root) at the
 *      kernel's high address (smp.cpp), which leaves the temporary root at once.
 */
#include "arch/x86_64/boot_defs.h"

#define AT(label) (AP_TRAMPOLINE_BASE + ((label) - x86_ap_trampoline))

        .section .rodata, "a"
        .balign 16
        .global x86_ap_trampoline, x86_ap_trampoline_end, x86_ap_params
x86_ap_trampoline:
        .code16
        cli
        cld
        xorw    %ax, %ax
        movw    %ax, %ds
        lgdtl   AT(ap_gdt_pointer)
        movl    %cr0, %eax
        orl     $1, %eax                        /* CR0.PE */
        movl    %eax, %cr0
        ljmpl   $AP_CODE32_SELECTOR, $AT(ap_protected)

        .code32
ap_protected:
        movw    $AP_DATA_SELECTOR, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movl    %cr4, %eax
        orl     $(CR4_PAE | CR4_PGE), %eax
        movl    %eax, %cr4
        movl    AT(ap_param_root), %eax
        movl    %eax, %cr3
        movl    $MSR_EFER, %ecx
        movl    AT(ap_param_efer), %eax
        xorl    %edx, %edx
        wrmsr
        movl    %cr0, %eax
        orl     $(CR0_PG | CR0_WP), %eax
        movl    %eax, %cr0
        ljmpl   $AP_CODE64_SELECTOR, $AT(ap_long)

        .code64
ap_long:
        movw    $AP_DATA_SELECTOR, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movq    AT(ap_param_stack), %rsp
        pushq   $0                              /* no return address: backtraces end here */
        xorl    %ebp, %ebp
        movl    AT(ap_param_cpu), %edi
        movq    AT(ap_param_kernel_root), %rsi
        movq    AT(ap_param_entry), %rax
        jmpq    *%rax

        .balign 8
ap_gdt:
        .quad   0
        .quad   GDT_KERNEL_CODE32               /* AP_CODE32_SELECTOR */
        .quad   GDT_KERNEL_DATA                 /* AP_DATA_SELECTOR */
        .quad   GDT_KERNEL_CODE64               /* AP_CODE64_SELECTOR */
ap_gdt_end:
ap_gdt_pointer:
        .word   ap_gdt_end - ap_gdt - 1
        .long   AT(ap_gdt)

        /* Filled by smp.cpp in the copy (struct ApParams there, in this order). */
        .balign 8
x86_ap_params:
ap_param_root:          .long 0         /* the temporary root (below 4 GiB) */
ap_param_efer:          .long 0         /* EFER's low half, as the boot CPU has it */
ap_param_stack:         .quad 0         /* the top of this CPU's kernel stack */
ap_param_kernel_root:   .quad 0         /* the kernel's root, for x86_ap_start */
ap_param_entry:         .quad 0         /* x86_ap_start */
ap_param_cpu:           .quad 0         /* this CPU's index */
x86_ap_trampoline_end:
