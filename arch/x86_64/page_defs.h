/*
 * The x86_64 paging facts that assembly and the linker script need too: the page size and the
 * entry bits the boot stub writes. Plain #defines (X86_ prefixed) so that C++, assembly and the
 * preprocessed linker script share one definition; the C++ format
 * (arch/x86_64/page_table_format.hpp) builds its constants from these.
 */
#pragma once

#define X86_PAGE_SHIFT 12
#define X86_PAGE_SIZE (1 << X86_PAGE_SHIFT) /* 4 KiB */
#define X86_INDEX_BITS 9
#define X86_ENTRIES_PER_TABLE (1 << X86_INDEX_BITS)            /* 512 */
#define X86_LARGE_PAGE_SHIFT (X86_PAGE_SHIFT + X86_INDEX_BITS) /* 2 MiB pages */

/* Page-table entry bits (the full layout is drawn in page_table_format.hpp). */
#define X86_PTE_P (1 << 0)
#define X86_PTE_W (1 << 1)
#define X86_PTE_US (1 << 2)
#define X86_PTE_PWT (1 << 3)
#define X86_PTE_PCD (1 << 4)
#define X86_PTE_A (1 << 5)
#define X86_PTE_D (1 << 6)
#define X86_PTE_PS (1 << 7)
#define X86_PTE_G (1 << 8)
