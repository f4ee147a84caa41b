/*
 * The AArch64 paging facts that assembly and the linker script need too: the granule, the
 * descriptor bits the boot stub writes, and the MAIR_EL1 attribute indexes. Plain #defines
 * (AARCH64_ prefixed) so that C++, assembly and the preprocessed linker script share one
 * definition; the C++ format (arch/aarch64/page_table_format.hpp) builds its constants from these.
 */
#pragma once

#define AARCH64_PAGE_SHIFT 12
#define AARCH64_PAGE_SIZE (1 << AARCH64_PAGE_SHIFT) /* 4 KiB granule */
#define AARCH64_INDEX_BITS 9
#define AARCH64_ENTRIES_PER_TABLE (1 << AARCH64_INDEX_BITS)                  /* 512 */
#define AARCH64_L1_BLOCK_SHIFT (AARCH64_PAGE_SHIFT + 2 * AARCH64_INDEX_BITS) /* 1 GiB blocks */

/* Descriptor bits (the full layouts are drawn in page_table_format.hpp). */
#define AARCH64_DESC_VALID (1 << 0)
#define AARCH64_DESC_TABLE (1 << 1) /* L0-L2: a table (clear: a block); L3: a page */
#define AARCH64_DESC_ATTR_SHIFT 2
#define AARCH64_DESC_AP_EL0 (1 << 6)
#define AARCH64_DESC_AP_RO (1 << 7)
#define AARCH64_DESC_SH_SHIFT 8
#define AARCH64_DESC_SH_INNER (3 << AARCH64_DESC_SH_SHIFT)
#define AARCH64_DESC_AF (1 << 10)
#define AARCH64_DESC_NG (1 << 11)
#define AARCH64_DESC_PXN_BIT 53
#define AARCH64_DESC_UXN_BIT 54

/*
 * MAIR_EL1, set once at boot: the memory types a descriptor's AttrIndx picks from.
 *   Attr0 0xff  normal memory, inner and outer write-back, read/write-allocate (RAM)
 *   Attr1 0x00  Device-nGnRnE (device registers: no gathering, reordering or early ack)
 *   Attr2 0x44  normal memory, inner and outer non-cacheable
 */
#define AARCH64_ATTR_NORMAL 0
#define AARCH64_ATTR_DEVICE 1
#define AARCH64_ATTR_NORMAL_NC 2
#define AARCH64_MAIR_VALUE 0x4400ff
