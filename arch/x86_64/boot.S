/*
 * x86_64 boot stub: from the PVH entry (32-bit protected mode, paging off) to C++.
 *
 * QEMU (or any PVH loader) reads the ELF note below, loads the segments at their physical
 * addresses and jumps to pvh_entry with:
 *     CS/DS/ES/SS  flat 32-bit segments        EBX  physical address of hvm_start_info
 *     CR0.PE = 1, CR0.PG = 0, interrupts off   ESP  undefined (we bring our own stack)
 *
 * The stub then:
 *   1. clears .bss and saves EBX;
 *   2. checks that the CPU has long mode (and whether it has NX);
 *   3. builds a temporary root with 2 MiB pages that maps physical [0, 4 GiB) four times:
 *        PML4[0]   -> boot_pdpt      identity, so the next instructions and the entry stack
 *                                    keep working;
 *        PML4[256] -> boot_pdpt      the kernel's physical window (kernel/mm/base/layout.hpp): the
 *                                    start code reads the PVH start_info through it;
 *        PML4[384] -> boot_pdpt      the device area, kMmioBase + physical (vm::device_ptr);
 *        PML4[511] -> boot_pdpt_high PDPT[510..511]: [0, 2 GiB) at 0xffffffff80000000, where
 *                                    the kernel is linked (kernel.ld);
 *      the top GiB below 4 GiB uncached for MMIO (LAPIC, IOAPIC);
 *   4. enables PAE, EFER.LME (+NXE when available), paging and CR0.WP;
 *   5. loads a minimal 64-bit GDT, far-jumps into 64-bit code (still low), then jumps to the
 *      kernel's high address and calls x86_64_start() on the low ENTRY stack.
 * Nothing after the entry needs the identity but that stack: the kernel reaches the loader's
 * data through the window and devices through the device area. Leaving the entry stack for the
 * kernel's own stack (boot_stack, linked high) and the boot tables for the kernel's own root
 * is the kernel's job, lab 2's vm::enter_kernel_space() (kernel/mm/vm.cpp).
 * This stub lives in the low, identity-linked .boot section; everything else is linked high.
 */

#include "arch/x86_64/boot_defs.h"

/* ---- PVH entry note: type XEN_ELFNOTE_PHYS32_ENTRY, owner "Xen", 32-bit entry address ---- */
        .section .note.Xen, "a", @note
        .balign 4
        .long 4                         /* namesz: "Xen\0" */
        .long 4                         /* descsz: one 32-bit address */
        .long XEN_ELFNOTE_PHYS32_ENTRY
        .asciz "Xen"
        .balign 4
        .long pvh_entry
        .balign 4

/* ---- 32-bit entry ---------------------------------------------------------------------- */
/* Zeroes [EDI, ECX) (both 32-byte aligned) with EAX = 0, 32 bytes a pass (no stack yet). */
.macro CLEAR_RANGE
91:     cmpl    %ecx, %edi
        jae     92f
        movl    %eax, (%edi)
        movl    %eax, 4(%edi)
        movl    %eax, 8(%edi)
        movl    %eax, 12(%edi)
        movl    %eax, 16(%edi)
        movl    %eax, 20(%edi)
        movl    %eax, 24(%edi)
        movl    %eax, 28(%edi)
        addl    $32, %edi
        jmp     91b
92:
.endm

        .section .boot.text, "ax", @progbits
        .code32
        .global pvh_entry
pvh_entry:
        cli
        cld
        movl    %ebx, %esi              /* start_info survives the .bss clear in ESI */

        /* 32 bytes a pass (both ranges are 32-byte aligned: kernel.ld): under QEMU's TCG each
           step of a `rep stos` is one more pass through its translated block, and this clear
           was most of the boot's guest work. */
        xorl    %eax, %eax
        movl    $__bss_start_phys, %edi     /* the kernel's .bss, through its physical address */
        movl    $__bss_end_phys, %ecx
        CLEAR_RANGE
        movl    $boot_tables_start, %edi    /* the stub's own tables, stack and slots */
        movl    $boot_tables_end, %ecx
        CLEAR_RANGE

        movl    %esi, boot_start_info_pa
        movl    $boot_entry_stack_top, %esp

        /* Long mode present? CPUID 0x80000001 EDX bit 29; NX is bit 20. */
        movl    $CPUID_EXT_MAX, %eax
        cpuid
        cmpl    $CPUID_EXT_FEATURES, %eax
        jb      no_long_mode
        movl    $CPUID_EXT_FEATURES, %eax
        cpuid
        testl   $CPUID_EDX_LM, %edx
        jz      no_long_mode
        movl    %edx, %ebp              /* keep the feature bits for the NX decision */

        /* PML4[0], [256], [384] -> PDPT (identity, window, devices); PML4[511] -> high PDPT */
        movl    $boot_pdpt, %eax
        orl     $(X86_PTE_P | X86_PTE_W), %eax
        movl    %eax, boot_pml4
        movl    %eax, boot_pml4 + 8 * BOOT_WINDOW_PML4_INDEX
        movl    %eax, boot_pml4 + 8 * BOOT_MMIO_PML4_INDEX
        movl    $boot_pdpt_high, %eax
        orl     $(X86_PTE_P | X86_PTE_W), %eax
        movl    %eax, boot_pml4 + 8 * BOOT_KERNEL_PML4_INDEX

        /* high PDPT[510], [511] -> PD 0, 1: [0, 2 GiB) at -2 GiB */
        movl    $boot_pd, %eax
        orl     $(X86_PTE_P | X86_PTE_W), %eax
        movl    %eax, boot_pdpt_high + 8 * BOOT_KERNEL_PDPT_INDEX
        addl    $X86_PAGE_SIZE, %eax
        movl    %eax, boot_pdpt_high + 8 * (BOOT_KERNEL_PDPT_INDEX + 1)

        /* PDPT[i] -> PD i, for the 4 page directories */
        xorl    %ecx, %ecx
        movl    $boot_pd, %eax
        orl     $(X86_PTE_P | X86_PTE_W), %eax
1:      movl    %eax, boot_pdpt(, %ecx, 8)
        addl    $X86_PAGE_SIZE, %eax
        incl    %ecx
        cmpl    $BOOT_MAP_GIB, %ecx
        jb      1b

        /* PD entries: 2 MiB pages, identity; the last GiB (MMIO) cache-disabled */
        xorl    %ecx, %ecx
2:      movl    %ecx, %eax
        shll    $X86_LARGE_PAGE_SHIFT, %eax
        orl     $(X86_PTE_P | X86_PTE_W | X86_PTE_PS), %eax
        cmpl    $BOOT_MMIO_FIRST_PDE, %ecx
        jb      3f
        orl     $(X86_PTE_PWT | X86_PTE_PCD), %eax
3:      movl    %eax, boot_pd(, %ecx, 8)
        incl    %ecx
        cmpl    $(BOOT_MAP_GIB * X86_ENTRIES_PER_TABLE), %ecx
        jb      2b

        movl    %cr4, %eax
        orl     $(CR4_PAE | CR4_PGE), %eax
        movl    %eax, %cr4

        movl    $boot_pml4, %eax
        movl    %eax, %cr3

        movl    $MSR_EFER, %ecx
        rdmsr
        orl     $EFER_LME, %eax
        testl   $CPUID_EDX_NX, %ebp
        jz      4f
        orl     $EFER_NXE, %eax
4:      wrmsr

        movl    %cr0, %eax
        orl     $(CR0_PG | CR0_WP), %eax
        movl    %eax, %cr0

        lgdt    boot_gdt_pointer
        ljmp    $BOOT_CODE_SELECTOR, $long_mode_entry

/* No long mode: say so on COM1 and exit through isa-debug-exit with the failure status. */
no_long_mode:
        movl    $no_long_mode_message, %esi
5:      lodsb
        testb   %al, %al
        jz      6f
        movw    $COM1_PORT, %dx
        outb    %al, %dx
        jmp     5b
6:      movw    $DEBUG_EXIT_PORT, %dx
        movl    $DEBUG_EXIT_FAILURE, %eax
        outl    %eax, %dx
7:      hlt
        jmp     7b

/* ---- 64-bit ---------------------------------------------------------------------------- */
        .code64
long_mode_entry:
        movw    $BOOT_DATA_SELECTOR, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        xorl    %eax, %eax
        movw    %ax, %fs
        movw    %ax, %gs
        movl    boot_start_info_pa, %edi
        movabsq $boot_high_entry, %rax  /* leave the identity-linked stub for good */
        jmpq    *%rax

/* ---- 64-bit, linked high ---------------------------------------------------------------- */
        .text
        .cfi_sections .debug_frame
boot_high_entry:
        .cfi_startproc simple
        .cfi_def_cfa %rsp, 0
        .cfi_undefined %rip             /* a debugger's backtrace ends here */
        movabsq $boot_entry_stack_top, %rsp   /* low: reached through the identity */
        xorl    %ebp, %ebp              /* the end of every backtrace */
        call    x86_64_start
8:      hlt
        jmp     8b
        .cfi_endproc

/* arch::run_on_stack(top = RDI, fn = RSI, arg = RDX) (core/arch.hpp): RSP = top, then fn(arg). */
        .global pagoda_run_on_stack
pagoda_run_on_stack:
        .cfi_startproc simple
        .cfi_def_cfa %rsp, 0
        .cfi_undefined %rip
        movq    %rdi, %rsp
        xorl    %ebp, %ebp              /* the end of every backtrace */
        movq    %rdx, %rdi
        call    *%rsi
9:      ud2                             /* fn returned: there is nothing to return to */
        jmp     9b
        .cfi_endproc

/* ---- data ------------------------------------------------------------------------------ */
        .section .boot.rodata, "a", @progbits
no_long_mode_message:
        .asciz  "Pagoda: this CPU has no long mode (x86_64); cannot boot\n"

        .balign 8
boot_gdt:
        .quad   0                       /* null */
        .quad   GDT_KERNEL_CODE64       /* BOOT_CODE_SELECTOR */
        .quad   GDT_KERNEL_DATA         /* BOOT_DATA_SELECTOR */
boot_gdt_end:
boot_gdt_pointer:
        .word   boot_gdt_end - boot_gdt - 1
        .long   boot_gdt

        /* Low and physical: the boot tables (the kernel gives their frames to the frame
           allocator once it runs on its own tables) and where EBX is kept. The linker script
           brackets them with boot_tables_start/end. */
        .section .boot.bss, "aw", @nobits
        .balign X86_PAGE_SIZE
        .global boot_pml4
boot_pml4:      .skip X86_PAGE_SIZE
boot_pdpt:      .skip X86_PAGE_SIZE
boot_pdpt_high: .skip X86_PAGE_SIZE
boot_pd:        .skip X86_PAGE_SIZE * BOOT_MAP_GIB
boot_start_info_pa:
        .skip   8

        /* The entry stack: low and physical, the stack the 32-bit code and then the kernel's
           C++ start on, until vm::enter_kernel_space() moves to boot_stack and gives its
           frames to the allocator. Its own section, after the tables (kernel.ld):
           boot_entry_stack_bottom/top. */
        .section .boot.stack, "aw", @nobits
        .balign X86_PAGE_SIZE
        .global boot_entry_stack_bottom, boot_entry_stack_top
boot_entry_stack_bottom:
        .skip   BOOT_ENTRY_STACK_SIZE
boot_entry_stack_top:

        /* The kernel's own stack, linked high like the rest of the kernel, above a guard page
           that the kernel's root leaves unmapped (vm::init): an overflow faults there and is
           reported as one, as a process's kernel stack's is (kernel/proc/kernel_stack.hpp). */
        .section .bss
        .balign X86_PAGE_SIZE
        .global boot_stack_guard
boot_stack_guard:
        .skip   X86_PAGE_SIZE
        .global boot_stack_bottom, boot_stack_top
boot_stack_bottom:
        .skip   BOOT_STACK_SIZE
boot_stack_top:
