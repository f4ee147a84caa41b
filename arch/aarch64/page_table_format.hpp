/// @file
/// @brief The AArch64 stage-1 translation format (4 KiB granule, 48-bit VA, four levels): the
/// only place that knows AArch64 descriptor bits.
///
/// Generic code (kernel/mm/pt/page_table.hpp, cursor.hpp) walks "levels" 0..3 and asks this format
/// for the index of a virtual address at a level and for the meaning of an entry; it never
/// touches a bit itself. The kernel reaches it as arch::PageTableFormat through the seam header
/// arch_impl/page_table_format.hpp; host tests name aarch64::PageTableFormat directly, so that
/// one test binary can hold every ISA's format.
///
///     virtual address (TCR_EL1.T0SZ = T1SZ = 16: two 48-bit ranges, top byte not ignored)
///     63          48 47      39 38      30 29      21 20      12 11         0
///     +-------------+----------+----------+----------+----------+------------+
///     | all 0: TTBR0|  L0 index|  L1 index|  L2 index|  L3 index|page offset |
///     | all 1: TTBR1|          |          |          |          |            |
///     +-------------+----------+----------+----------+----------+------------+
///       level:          0          1          2          3
///       one entry maps: 512 GiB    1 GiB      2 MiB      4 KiB
///     Each range has its own root: TTBR0_EL1 translates 0x0000_0000_0000_0000 ..
///     0x0000_ffff_ffff_ffff (the user half), TTBR1_EL1 0xffff_0000_0000_0000 .. ~0 (the
///     kernel half). Any other address faults at level 0 without a walk.
///
///     table descriptor (L0, L1, L2; bits 1:0 = 11)
///     63  62 61 60   59   58   52 51  48 47                           12 11          2 1 0
///     +---+-----+----+----+-------+------+------------------------------+-------------+-+-+
///     |NST| APT |UXNT|PXNT|ignored| res0 | next-level table address     |   ignored   |1|1|
///     +---+-----+----+----+-------+------+------------------------------+-------------+-+-+
///     APTable bit 61: no EL0 access below; bit 62: no write below. UXNT/PXNT: nothing below
///     executes at EL0/EL1. (Pagoda sets only bit 61, on every table descriptor of TTBR1's
///     kernel half; under TTBR0 the leaf decides.)
///
///     block (L1: 1 GiB, L2: 2 MiB; bits 1:0 = 01) and page (L3: 4 KiB; bits 1:0 = 11)
///     63  59 58 55 54  53  52  51 50 49 48 47          n n-1    12 11 10  9 8  7 6  5  4  2 1 0
///     +-----+-----+---+---+----+---+--+-----+-------------+--------+--+--+----+----+--+----+-+-+
///     | ign | SW  |UXN|PXN|Cont|DBM|GP|res0 |output addr. | res0   |nG|AF| SH | AP |NS|Attr|T|1|
///     +-----+-----+---+---+----+---+--+-----+-------------+--------+--+--+----+----+--+----+-+-+
///     n = 30 (L1 block), 21 (L2 block), 12 (L3 page). A block at L0, and an L3 entry with
///     bit 1 clear, are invalid with the 4 KiB granule.
///     AttrIndx (bits 4:2) picks one of MAIR_EL1's eight memory types (set once at boot):
///       0 normal write-back (RAM)   1 Device-nGnRnE (registers)   2 normal non-cacheable
///     SH (bits 9:8): 11 inner shareable (all RAM mappings), 00 for device memory (ignored).
///     AF (bit 10): access flag; an entry without it faults on first use (Pagoda sets it: TCR_EL1.HA
///     is off, the hardware never does).
///     nG (bit 11): not global, the TLB tags it with the ASID (everything not marked global).
///     A live entry may not change its output address or its size directly: break-before-make
///     (write an invalid entry, TLBI, DSB, then the new one; ConsistencyBatch does it).
///
///     AP[2:1]   at EL1 (kernel)   at EL0 (user)    execute permission:
///       00      read/write        none               PXN: never at EL1; UXN: never at EL0
///       01      read/write        read/write         An EL0-writable page never executes
///       10      read-only         none               at EL1; with SCTLR_EL1.WXN nothing
///       11      read-only         read-only          writable executes at all.
///     With PSTATE.PAN set, the kernel cannot even read a page EL0 may access (AP[1] = 1).
///
///     held leaf (a page or block Pagoda keeps while it allows no access: PROT_NONE)
///     63  59 58 56  55  54  53  52      47          n n-1    12 11 10  9 8  7 6  5  4  2 1 0
///     +-----+-----+----+---+---+------+-------------+--------+--+--+----+----+--+----+-+-+
///     | ign | SW  |HELD|UXN|PXN| ...  |output addr. | res0   |nG|AF| SH | AP |NS|Attr|T|0|
///     +-----+-----+----+---+---+------+-------------+--------+--+--+----+----+--+----+-+-+
///     Bit 0 clear: the descriptor is invalid and the MMU ignores every other bit (any access,
///     EL1 or EL0, takes a translation fault; no TLB holds it). HELD (bit 55, the first of the
///     bits left to software) says the rest is still a leaf: the output address, AP[1] (a user
///     page), the memory type, AF and nG stay, so that the kernel finds the frame (unmap frees
///     it, fork copies or shares it) and a later protect() makes it valid again with its
///     contents. Valid -> held needs only a TLBI after it (no break-before-make: nothing valid
///     replaces a valid entry); held -> valid needs none.
///
///     swap entry (lab 7: an L3 descriptor of a user page whose bytes are in swap slot S)
///     63    58  57   56   55  54                                12 11               1   0
///     +-------+----+----+----+------------------------------------+-----------------+---+
///     |   0   | SW |SWAP|HELD|         S (43 bits)                |        0        | 0 |
///     +-------+----+----+----+------------------------------------+-----------------+---+
///                     =1   =0                                                          =0
///     Bit 0 clear: invalid, whatever the rest holds. SWAP (bit 56, software) tells it from an
///     empty descriptor (0) and a held leaf (HELD): it maps no frame, it names a slot.
///
///     The access flag and the dirty state are the kernel's (TCR_EL1.HA and HD are off: the
///     CPUs Pagoda runs on have no FEAT_HAFDBS, or it is not used), kept as Linux arm64 keeps
///     them without DBM:
///       accessed   AF set. A leaf made with AF clear faults at its first use (an access flag
///                  fault, DFSC 0b0010LL); the trap code sets AF and the access is retried. A
///                  TLB never holds a translation whose AF is clear.
///       dirty      a writable page whose AP[2] (read-only) is clear, or DIRTY (bit 58,
///                  software) set. A *clean* writable page is mapped read-only with SW (bit 57,
///                  software: "writable") set; its first write takes a permission fault, the
///                  trap code clears AP[2] (the page is now dirty) and the write is retried. A
///                  page mapped writable without SW (what make_page_entry() makes) counts as
///                  dirty from the start. Whatever takes write permission away from a dirty page
///                  (fork's copy-on-write, mprotect, PROT_NONE) sets DIRTY, so the write is not
///                  forgotten: with_perms() does it, as Linux's pte_wrprotect() does.
///     entry_perms() reads SW as write permission: a clean page is as writable as a dirty one.
#pragma once

#include "arch/aarch64/page_defs.h"
#include "core/panic.hpp"
#include "lib/format.hpp"
#include "mm/base/addr.hpp"
#include "mm/base/perms.hpp"
#include "mm/pt/radix_geometry.hpp"

namespace pagoda::aarch64 {

struct PageTableFormat : RadixGeometry<4, AARCH64_PAGE_SHIFT, AARCH64_INDEX_BITS> {
  static_assert(kEntriesPerTable == AARCH64_ENTRIES_PER_TABLE && kPageSize == AARCH64_PAGE_SIZE);
  /// A live entry changes its output address or size only through an invalid one.
  static constexpr bool kBreakBeforeMake = true;

  static constexpr u64 kValid = AARCH64_DESC_VALID;
  static constexpr u64 kTableOrPage = AARCH64_DESC_TABLE;  ///< L0-L2: a table (clear: a block); L3: a page
  static constexpr u32 kAttrShift = AARCH64_DESC_ATTR_SHIFT;
  static constexpr u64 kAttrMask = 7ull << kAttrShift;
  static constexpr u64 kNonSecure = 1ull << 5;
  static constexpr u64 kApEl0 = AARCH64_DESC_AP_EL0;      ///< AP[1]: EL0 may access
  static constexpr u64 kApReadOnly = AARCH64_DESC_AP_RO;  ///< AP[2]: no writes at any EL
  static constexpr u32 kShShift = AARCH64_DESC_SH_SHIFT;
  static constexpr u64 kShMask = 3ull << kShShift;
  static constexpr u64 kShInner = AARCH64_DESC_SH_INNER;
  static constexpr u64 kShOuter = 2ull << kShShift;
  static constexpr u64 kAccessFlag = AARCH64_DESC_AF;
  static constexpr u64 kNotGlobal = AARCH64_DESC_NG;
  /// The output-address bits of a descriptor (47:12); also TTBRn_EL1's BADDR for a 4 KiB root.
  static constexpr u64 kAddressMask = ((u64{1} << 48) - 1) & ~(kPageSize - 1);
  /// Bits 51:48 of a table descriptor, and 49:48 of a leaf (where 51 is DBM and 50 GP), which
  /// hold address bits only with 52-bit output addresses: zero here.
  static constexpr u64 kRes0TableHigh = 0xfull << 48;
  static constexpr u64 kRes0LeafHigh = 0x3ull << 48;
  static constexpr u64 kDirtyBitModifier = 1ull << 51;
  static constexpr u64 kContiguous = 1ull << 52;
  static constexpr u64 kPxn = 1ull << AARCH64_DESC_PXN_BIT;
  static constexpr u64 kUxn = 1ull << AARCH64_DESC_UXN_BIT;
  static constexpr u64 kPxnTable = 1ull << 59;
  static constexpr u64 kUxnTable = 1ull << 60;
  static constexpr u64 kApTableNoEl0 = 1ull << 61;
  static constexpr u64 kApTableReadOnly = 1ull << 62;
  static constexpr u64 kNsTable = 1ull << 63;
  /// Software bit: with bit 0 clear, a held leaf (see the layout above).
  static constexpr u64 kHeld = 1ull << 55;
  /// Software bit: with bit 0 and HELD clear, a swap entry (see the layout above).
  static constexpr u64 kSwapEntry = 1ull << 56;
  /// Software bit: the page is writable, and while AP[2] is set it is clean (see the layout above).
  static constexpr u64 kSoftWrite = 1ull << 57;
  /// Software bit: the page was written through before it lost write permission (see above).
  static constexpr u64 kSoftDirty = 1ull << 58;
  /// Bits of the slot number a swap entry holds (bits 54:12).
  static constexpr u32 kSwapSlotBits = 43;
  /// The first slot number a swap entry cannot hold.
  static constexpr u64 kSwapSlots = u64{1} << kSwapSlotBits;

  /// MAIR_EL1 attribute indexes (arch/aarch64/page_defs.h; boot.S sets MAIR to match).
  static constexpr u64 kAttrNormal = AARCH64_ATTR_NORMAL, kAttrDevice = AARCH64_ATTR_DEVICE,
                       kAttrNormalNonCacheable = AARCH64_ATTR_NORMAL_NC;
  /// The bits protect() rewrites (with_perms); everything else of an entry is kept. Valid and
  /// HELD are among them: a protect() to no access makes a valid leaf held, and back.
  static constexpr u64 kPermissionBits = kValid | kHeld | kApEl0 | kApReadOnly | kPxn | kUxn | kAttrMask | kShMask;

  static constexpr u32 kVirtualBits = 48;
  static constexpr usize kL0 = 0, kL1 = 1, kL2 = 2, kL3 = 3;

  static constexpr const char* level_name(usize level) {
    constexpr const char* kNames[kLevels] = {"L0", "L1", "L2", "L3"};
    return kNames[level];
  }

  /// Bits 63:48 all 0 (TTBR0's range) or all 1 (TTBR1's range).
  static constexpr bool is_canonical(VirtAddr va) {
    const u64 top = va.value() >> kVirtualBits;
    return top == 0 || top == (~u64{0} >> kVirtualBits);
  }

  /// The lowest address of the upper (kernel, TTBR1) range.
  static constexpr VirtAddr kUpperHalfStart = VirtAddr(~u64{0} << kVirtualBits);

  /// True when @p va is translated through TTBR1_EL1 (the kernel's root), else TTBR0_EL1.
  static constexpr bool in_upper_range(VirtAddr va) { return (va.value() >> 55) & 1; }

  /// True when @p e is in use: valid to the MMU, or a held leaf (which the MMU treats as
  /// invalid, but which still maps its frame for the kernel: see entry_perms()).
  static constexpr bool is_present(u64 e, usize level) { return (e & kValid) || is_held(e, level); }

  /// True when @p e is a held leaf: bit 0 clear, HELD set, a page at L3 or a block at L1/L2.
  static constexpr bool is_held(u64 e, usize level) {
    return !(e & kValid) && (e & kHeld) && level != kL0 && is_leaf(e, level);
  }

  /// True when @p e (valid or held) maps memory instead of pointing to a table.
  static constexpr bool is_leaf(u64 e, usize level) {
    return level == kL3 || ((level == kL1 || level == kL2) && !(e & kTableOrPage));
  }

  /// Levels whose entries may map a block: L1 (1 GiB) and L2 (2 MiB), with the 4 KiB granule.
  static constexpr bool can_hold_block(usize level) { return level == kL1 || level == kL2; }

  /// True when @p e (valid) cannot be used as it is: a block at L0, an L3 entry that is not a
  /// page, address bits above 47 set, or a block's address bits below its alignment set.
  static constexpr bool has_reserved_bits(u64 e, usize level) {
    if ((level == kL0 || level == kL3) && !(e & kTableOrPage)) return true;
    if (!is_leaf(e, level)) return (e & kRes0TableHigh) != 0;
    if (e & kRes0LeafHigh) return true;
    if (level != kL3) return (e & kAddressMask & (entry_span(level) - 1)) != 0;
    return false;
  }

  /// The physical address an entry points to (a table, or the memory it maps).
  static constexpr PhysAddr output_address(u64 e, usize level) {
    if (is_leaf(e, level) && level != kL3) return PhysAddr(e & kAddressMask & ~(entry_span(level) - 1));
    return PhysAddr(e & kAddressMask);
  }

  /// An entry pointing to the next-level table at @p table. Where @p user pages may lie below
  /// (TTBR0) it restricts nothing: the leaf decides, as on x86_64. In the kernel half (TTBR1,
  /// @p user false) it sets APTable[0], "no EL0 access below", the counterpart of x86's US
  /// clear in every kernel-half table entry: a leaf written with AP[1] by mistake still gives
  /// EL0 nothing. (No XNTable: the walk counts PXNTable/UXNTable as "nothing below executes",
  /// and kernel text lies below these tables.)
  static constexpr u64 make_table_entry(PhysAddr table, usize, bool user) {
    return (table.value() & kAddressMask) | kValid | kTableOrPage | (user ? 0 : kApTableNoEl0);
  }

  /// A 4 KiB page (level L3) mapping @p page with @p perms. Kernel pages never execute at EL0,
  /// user pages never at EL1; a page not marked global is tagged with the ASID (nG). Without
  /// read in @p perms (no access at all) the page is held: invalid to the MMU.
  static constexpr u64 make_page_entry(PhysAddr page, Perms perms) {
    return (page.value() & kAddressMask) | kTableOrPage | kAccessFlag | perm_bits(perms) |
           (perms.global ? 0 : kNotGlobal);
  }

  /// A block at @p level (can_hold_block) mapping @p page, aligned to entry_span(level), with
  /// @p perms (bits 1:0 = 01).
  static constexpr u64 make_block_entry(PhysAddr page, usize level, Perms perms) {
    return (page.value() & kAddressMask & ~(entry_span(level) - 1)) | kAccessFlag | perm_bits(perms) |
           (perms.global ? 0 : kNotGlobal);
  }

  /// The entry at level + 1 that maps part @p part (0 .. kEntriesPerTable - 1) of the block
  /// @p block at @p level with the same attributes (AP, XN, AttrIndx, SH, AF, nG): what a split
  /// writes into the new table. One level down from L2 it is a page (bits 1:0 = 11).
  static constexpr u64 split_block(u64 block, usize level, usize part) {
    const u64 address = output_address(block, level).value() + u64(part) * entry_span(level + 1);
    const u64 attributes = block & ~kAddressMask & ~kTableOrPage;
    return address | attributes | (level + 1 == kL3 ? kTableOrPage : 0);
  }

  /// What an entry allows, by itself (a table entry restricts the whole subtree). For a leaf,
  /// "execute" is for the level the page belongs to: EL0 for a user page, EL1 for a kernel one.
  /// A table's PXNTable and UXNTable both count as "nothing below executes": the generic walk
  /// combines levels before it knows whose page the leaf is. A held leaf allows nothing (read,
  /// write and execute false); user, caching and global are still its own.
  static constexpr Perms entry_perms(u64 e, usize level) {
    Perms p;
    p.read = true;
    if (!is_leaf(e, level)) {
      p.write = !(e & kApTableReadOnly);
      p.user = !(e & kApTableNoEl0);
      p.execute = !(e & (kPxnTable | kUxnTable));
      return p;
    }
    p.read = e & kValid;
    p.write = p.read && (!(e & kApReadOnly) || (e & kSoftWrite));  // a clean page is writable too
    p.user = e & kApEl0;
    p.execute = p.read && (p.user ? !(e & kUxn) : !(e & kPxn));
    const u64 attr = (e & kAttrMask) >> kAttrShift;
    p.caching = attr == kAttrNormal ? Caching::WriteBack : Caching::Uncached;
    p.global = !(e & kNotGlobal);
    return p;
  }

  /// @p e (a leaf) with its permission bits (valid/HELD, AP, PXN, UXN, AttrIndx, SH) replaced by
  /// @p perms; the address, AF, nG and the descriptor type kept. What protect() writes: @p perms
  /// without read makes the leaf held, with read valid again. A clean writable page stays clean
  /// when @p perms allows writing (SW kept, AP[2] set), and loses SW when it does not; a dirty page
  /// made read-only or held gets DIRTY (made writable again, the MMU's AP[2] says it instead).
  static constexpr u64 with_perms(u64 e, usize, Perms perms) {
    const u64 fresh = (e & ~(kPermissionBits | kSoftWrite | kSoftDirty)) | perm_bits(perms);
    if (!(perms.read && perms.write)) return is_dirty(e) ? fresh | kSoftDirty : fresh;  // the write kept in DIRTY
    return is_clean_writable(e) ? fresh | kApReadOnly | kSoftWrite : fresh;  // writable to the MMU: dirty already
  }

  /// @name Swap entries and the accessed and dirty state of a leaf (lab 7; see the layout above)
  /// Generic code asks these and never reads AF, AP[2] or SW itself.
  /// @{
  /// True when @p e is a swap entry (only at L3: a swapped-out 4 KiB page).
  static constexpr bool is_swap_entry(u64 e, usize level) {
    return level == kL3 && (e & (kValid | kHeld | kSwapEntry)) == kSwapEntry;
  }
  /// The swap entry for slot @p slot (below kSwapSlots): invalid to the MMU.
  static constexpr u64 make_swap_entry(u64 slot) {
    if (!__builtin_is_constant_evaluated() && slot >= kSwapSlots)
      panic("make_swap_entry: slot {} does not fit a swap entry (at most {} bits)", slot, kSwapSlotBits);
    return (slot << kPageShift) | kSwapEntry;
  }
  /// The slot a swap entry names.
  static constexpr u64 swap_slot(u64 e) { return (e >> kPageShift) & (kSwapSlots - 1); }
  /// True when the leaf @p e has been used since its access flag was last cleared.
  static constexpr bool is_accessed(u64 e) { return e & kAccessFlag; }
  /// @p e with AF clear: its next use takes an access flag fault (once the TLB has forgotten it).
  static constexpr u64 without_accessed(u64 e) { return e & ~kAccessFlag; }
  /// @p e with AF set again: what the access flag fault writes.
  static constexpr u64 with_accessed(u64 e) { return e | kAccessFlag; }
  /// True when the leaf @p e may have been written through: writable to the MMU (AP[2] clear),
  /// or DIRTY kept from before it lost write permission.
  static constexpr bool is_dirty(u64 e) { return (e & kSoftDirty) || ((e & kValid) && !(e & kApReadOnly)); }
  /// @p e clean: DIRTY clear, and a page writable to the MMU becomes read-only with SW set (its
  /// next write faults and marks it dirty, once the TLB has forgotten the writable translation).
  static constexpr u64 cleaned(u64 e) {
    return ((e & kValid) && !(e & kApReadOnly) ? e | kApReadOnly | kSoftWrite : e) & ~kSoftDirty;
  }
  /// True when @p e is a clean writable page: valid, read-only to the MMU, SW set.
  static constexpr bool is_clean_writable(u64 e) { return (e & kSoftWrite) && (e & kApReadOnly); }
  /// @p e (clean writable) dirty: AP[2] clear, what the first write's permission fault writes.
  static constexpr u64 dirtied(u64 e) { return e & ~kApReadOnly; }
  /// @}

  /// Makes this CPU's earlier table writes visible to the table walkers (of every CPU of the
  /// inner-shareable domain) before anything after it: DSB ISHST. (A host build, which only
  /// simulates the tables, needs no more than a compiler barrier.)
  static void write_barrier() {
#if defined(__aarch64__)
    asm volatile("dsb ishst" ::: "memory");
#else
    asm volatile("" ::: "memory");
#endif
  }

  /// Prints the entry's fields, e.g. "V PAGE AF ISH RO UXN nG Attr1", or "HELD PAGE AF ISH RO
  /// EL0 PXN UXN nG Attr0" for a held leaf (invalid to the MMU).
  static void describe_entry(FormatSink& sink, u64 e, usize level) {
    const bool held = is_held(e, level);
    if (is_swap_entry(e, level)) {
      format_to(sink, "SWAP slot {}", swap_slot(e));
      return;
    }
    if (!(e & kValid) && !held) {
      format_to(sink, "invalid");
      return;
    }
    if (!is_leaf(e, level)) {
      format_to(sink, "V {}", (e & kTableOrPage) ? "TABLE" : "BLOCK?");
      struct Flag {
        u64 bit;
        const char* name;
      };
      constexpr Flag kTableFlags[] = {{kPxnTable, "PXNT"},
                                      {kUxnTable, "UXNT"},
                                      {kApTableNoEl0, "APT-EL0"},
                                      {kApTableReadOnly, "APT-RO"},
                                      {kNsTable, "NST"}};
      for (const Flag& f : kTableFlags)
        if (e & f.bit) format_to(sink, " {}", f.name);
      return;
    }
    format_to(sink, "{} {}", held ? "HELD" : "V", level == kL3 ? "PAGE" : "BLOCK");
    if (e & kAccessFlag) format_to(sink, " AF");
    constexpr const char* kShare[] = {"", " SH?", " OSH", " ISH"};
    format_to(sink, "{}", kShare[(e & kShMask) >> kShShift]);
    format_to(sink, " {}", (e & kApReadOnly) ? "RO" : "RW");
    if (e & kSoftWrite) format_to(sink, " SW");
    if (e & kSoftDirty) format_to(sink, " DIRTY");
    if (e & kApEl0) format_to(sink, " EL0");
    if (e & kPxn) format_to(sink, " PXN");
    if (e & kUxn) format_to(sink, " UXN");
    if (e & kNotGlobal) format_to(sink, " nG");
    if (e & kContiguous) format_to(sink, " CONT");
    format_to(sink, " Attr{}", (e & kAttrMask) >> kAttrShift);
  }

 private:
  /// Valid (or HELD without read), AP, XN, memory type and shareability for @p perms. Without
  /// read nothing is allowed: write and execute are dropped.
  static constexpr u64 perm_bits(Perms perms) {
    u64 bits = perms.caching == Caching::Uncached ? kAttrDevice << kAttrShift : (kAttrNormal << kAttrShift) | kShInner;
    bits |= perms.read ? kValid : kHeld;
    const bool write = perms.read && perms.write, execute = perms.read && perms.execute;
    if (!write) bits |= kApReadOnly;
    if (perms.user) bits |= kApEl0 | kPxn | (execute ? 0 : kUxn);
    else bits |= kUxn | (execute ? 0 : kPxn);
    return bits;
  }
};

}  // namespace pagoda::aarch64
