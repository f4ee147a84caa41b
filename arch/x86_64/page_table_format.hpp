/// @file page_table_format.hpp
/// @brief The x86_64 4-level page-table format: the only place that knows x86 PTE bits.
///
/// Generic code (kernel/mm/pt/page_table.hpp, cursor.hpp) walks "levels" 0..3 and asks this format
/// for the index of a virtual address at a level and for the meaning of an entry; it never
/// touches a bit itself. The kernel reaches it as arch::PageTableFormat through the seam header
/// arch_impl/page_table_format.hpp; host tests name x86::PageTableFormat directly, so that one
/// test binary can hold every ISA's format.
///
///     virtual address (48-bit, 4-level paging)
///     63          48 47      39 38      30 29      21 20      12 11         0
///     +-------------+----------+----------+----------+----------+------------+
///     | sign of 47  |PML4 index|PDPT index| PD index | PT index |page offset |
///     +-------------+----------+----------+----------+----------+------------+
///       level:          0          1          2          3
///       one entry maps: 512 GiB    1 GiB      2 MiB      4 KiB
///
///     page-table entry (every level)
///     63  62  59 58  52 51                      12 11 9  8   7   6   5   4    3   2   1   0
///     +--+------+------+--------------------------+----+---+---+---+---+---+----+---+---+---+
///     |XD|  PK  |avail |  physical address 51:12  |avl | G |PS | D | A |PCD|PWT |US |RW | P |
///     +--+------+------+--------------------------+----+---+---+---+---+---+----+---+---+---+
///     P   present              RW  writable             US  user accessible
///     PWT write-through        PCD cache disable        A   accessed      D  dirty
///     PS  in a PDPT/PD entry: maps a 1 GiB/2 MiB page (a block); in a PT entry bit 7 is PAT
///     G   global (leaves only; survives CR3 loads when CR4.PGE is on)
///     XD  execute disable (with EFER.NXE)
///     In a 1 GiB/2 MiB leaf, bit 12 is PAT and the address starts at bit 30/21.
///     HELD (bit 9, one of the bits the CPU leaves to software) marks a leaf that Pagoda keeps
///     while it allows no access (PROT_NONE): P is clear, so the MMU ignores every other bit and
///     faults on any access, kernel or user; the address, US, NX, PCD/PWT, G and A/D stay, so
///     that the kernel still finds the frame (unmap frees it, fork copies or shares it) and a
///     later protect() makes it present again with its contents. Only leaves are ever held:
///
///     held leaf (PT, or PDPT/PD with PS)
///     63 62   52 51                      12 11 10  9  8   7   6   5   4   3   2   1   0
///     +--+------+--------------------------+-----+----+---+---+---+---+---+---+---+---+---+
///     |XD|avail |  physical address 51:12  | avl |HELD| G |PS | D | A |PCD|PWT|US | 0 | 0 |
///     +--+------+--------------------------+-----+----+---+---+---+---+---+---+---+---+---+
///                                                  =1                               RW=0  P=0
///     A table entry's RW/US/XD restrict everything below it: a page is writable only if RW is
///     set at every level, user-accessible only if US is set at every level, executable only if
///     XD is clear at every level.
///
///     swap entry (lab 7: a PT entry of a user page whose bytes are in swap slot S)
///     63 62     52 51                             12 11 10  9  8                  1   0
///     +--+--------+---------------------------------+--+----+----+-------------------+---+
///     | 0|   0    |        ~S (40 bits, inverted)   | 0|SWAP|HELD|         0         | P |
///     +--+--------+---------------------------------+--+----+----+-------------------+---+
///                                                        =1   =0                      =0
///     P clear: the MMU never uses the entry (any access faults, nothing is cached). SWAP (bit 10,
///     the second bit left to software) tells it from an empty entry (0) and from a held leaf
///     (HELD, bit 9): a swap entry maps no frame (the walk stops at it, unmap and fork pass it
///     by) but names the slot that holds the page. The slot is stored inverted, as Linux does
///     since L1TF (CVE-2018-3620): a CPU that speculates through a non-present entry reads at the
///     address in bits 51:12, and ~S puts that far above any RAM.
///
///     A and D are the hardware's: the CPU sets A in a leaf it walks through and D in a leaf it
///     writes through (into the entry in memory, once: a TLB entry that holds D = 1 writes
///     without setting it again, so whoever clears A or D must invalidate the translation).
#pragma once

#include "arch/x86_64/page_defs.h"
#include "core/panic.hpp"
#include "lib/format.hpp"
#include "mm/base/addr.hpp"
#include "mm/base/perms.hpp"
#include "mm/pt/radix_geometry.hpp"

namespace pagoda::x86 {

struct PageTableFormat : RadixGeometry<4, X86_PAGE_SHIFT, X86_INDEX_BITS> {
  static_assert(kEntriesPerTable == X86_ENTRIES_PER_TABLE && kPageSize == X86_PAGE_SIZE);
  /// The physical address bits of an entry (51:12); also CR3's and IA32_APIC_BASE's.
  static constexpr u64 kAddressMask = 0x000f'ffff'ffff'f000ull;
  /// x86 may replace a live entry by another directly (the TLB is invalidated afterwards);
  /// no invalid entry is needed in between.
  static constexpr bool kBreakBeforeMake = false;

  static constexpr u64 kPresent = X86_PTE_P;
  static constexpr u64 kWritable = X86_PTE_W;
  static constexpr u64 kUser = X86_PTE_US;
  static constexpr u64 kWriteThrough = X86_PTE_PWT;
  static constexpr u64 kCacheDisable = X86_PTE_PCD;
  static constexpr u64 kAccessed = X86_PTE_A;
  static constexpr u64 kDirty = X86_PTE_D;
  static constexpr u64 kHuge = X86_PTE_PS;
  static constexpr u64 kGlobal = X86_PTE_G;
  static constexpr u64 kPat4K = 1ull << 7;      ///< PAT in a PT entry (where PS is elsewhere)
  static constexpr u64 kPatLarge = 1ull << 12;  ///< PAT in a 1 GiB/2 MiB leaf
  static constexpr u64 kNoExecute = 1ull << 63;
  /// Software bit (ignored by the CPU): with P clear, a held leaf (see the layout above).
  static constexpr u64 kHeld = 1ull << 9;
  /// Software bit: with P and HELD clear, a swap entry (see the layout above).
  static constexpr u64 kSwapEntry = 1ull << 10;
  /// Bits of the slot number a swap entry holds (inverted, in the address field).
  static constexpr u32 kSwapSlotBits = 40;
  /// The first slot number a swap entry cannot hold.
  static constexpr u64 kSwapSlots = u64{1} << kSwapSlotBits;
  /// The bits protect() rewrites (with_perms); everything else of an entry is kept. P and HELD
  /// are among them: a protect() to no access makes a present leaf held, and back.
  static constexpr u64 kPermissionBits = kPresent | kHeld | kWritable | kUser | kNoExecute | kCacheDisable |
                                         kWriteThrough;

  static constexpr u32 kVirtualBits = 48;
  static constexpr usize kPml4 = 0, kPdpt = 1, kPd = 2, kPt = 3;

  static constexpr const char* level_name(usize level) {
    constexpr const char* kNames[kLevels] = {"PML4", "PDPT", "PD", "PT"};
    return kNames[level];
  }

  /// Bits 63:47 all equal (48-bit virtual addresses).
  static constexpr bool is_canonical(VirtAddr va) {
    const u64 top = va.value() >> (kVirtualBits - 1);
    return top == 0 || top == (~u64{0} >> (kVirtualBits - 1));
  }

  /// The lowest address of the upper (kernel) half.
  static constexpr VirtAddr kUpperHalfStart = VirtAddr(~u64{0} << (kVirtualBits - 1));

  /// True when @p e is in use: present to the MMU, or a held leaf (which the MMU treats as not
  /// present, but which still maps its frame for the kernel: see entry_perms()).
  static constexpr bool is_present(u64 e, usize level) { return (e & kPresent) || is_held(e, level); }

  /// True when @p e is a held leaf: P clear, HELD set, at a level (and with PS) where it maps.
  static constexpr bool is_held(u64 e, usize level) { return !(e & kPresent) && (e & kHeld) && is_leaf(e, level); }

  /// True when @p e (present or held) maps a page instead of pointing to a table.
  static constexpr bool is_leaf(u64 e, usize level) {
    return level == kPt || ((level == kPdpt || level == kPd) && (e & kHuge));
  }

  /// Levels whose entries may map a block (a large page): PD (2 MiB) and PDPT (1 GiB; the CPU
  /// must report CPUID.80000001H:EDX.Page1GB before a 1 GiB page is used).
  static constexpr bool can_hold_block(usize level) { return level == kPdpt || level == kPd; }

  /// True when @p e (present) has bits set that the CPU reserves (it would fault with RSVD).
  static constexpr bool has_reserved_bits(u64 e, usize level) {
    if (level == kPml4 && (e & kHuge)) return true;
    if (is_leaf(e, level) && level != kPt) {
      // Large pages: bits between the PAT bit (12) and the page's alignment must be zero.
      const u64 low = ((u64{1} << level_shift(level)) - 1) & kAddressMask & ~kPatLarge;
      return e & low;
    }
    return false;
  }

  /// The physical address an entry points to (a table, or the page it maps).
  static constexpr PhysAddr output_address(u64 e, usize level) {
    if (is_leaf(e, level) && level != kPt) return PhysAddr(e & kAddressMask & ~(entry_span(level) - 1));
    return PhysAddr(e & kAddressMask);
  }

  /// @name The CPU's physical address width
  /// An entry whose address has a bit at or above MAXPHYADDR (CPUID 0x80000008 EAX[7:0]; 40 on
  /// QEMU's default CPU) makes the CPU fault with RSVD, however much RAM there is. The make_*
  /// functions below refuse such an address with a panic that names it, at the line that made
  /// the entry: usually a virtual address passed as a physical one.
  /// @{
  /// Set once at boot from CPUID (arch/x86_64/start.cpp); until then, and on the host, the
  /// architectural maximum.
  static void set_phys_bits(u32 bits) { s_phys_bits = bits; }
  static u32 phys_bits() { return s_phys_bits; }
  /// True when @p pa is an address of this CPU's physical address space.
  static bool fits_phys(PhysAddr pa) { return (pa.value() >> s_phys_bits) == 0; }
  /// @}

  /// An entry pointing to the next-level table at @p table. Table entries permit everything;
  /// the leaf decides (see the layout above).
  static constexpr u64 make_table_entry(PhysAddr table, usize, bool user) {
    check_output("make_table_entry", table);
    return (table.value() & kAddressMask) | kPresent | kWritable | (user ? kUser : 0);
  }

  /// A 4 KiB leaf (level kPt) mapping @p page with @p perms: present, or held when @p perms
  /// does not allow reading (no access at all).
  static constexpr u64 make_page_entry(PhysAddr page, Perms perms) {
    check_output("make_page_entry", page);
    return (page.value() & kAddressMask) | perm_bits(perms) | (perms.global ? kGlobal : 0);
  }

  /// A block (large page) at @p level (can_hold_block) mapping @p page, aligned to
  /// entry_span(level), with @p perms.
  static constexpr u64 make_block_entry(PhysAddr page, usize level, Perms perms) {
    check_output("make_block_entry", page);
    return (page.value() & kAddressMask & ~(entry_span(level) - 1)) | kHuge | perm_bits(perms) |
           (perms.global ? kGlobal : 0);
  }

  /// The entry at level + 1 that maps part @p part (0 .. kEntriesPerTable - 1) of the block
  /// @p block at @p level with the same attributes (permissions, caching, global, A/D): what a
  /// split writes into the new table.
  static constexpr u64 split_block(u64 block, usize level, usize part) {
    const PhysAddr base = output_address(block, level);
    const u64 address = base.value() + u64(part) * entry_span(level + 1);
    const u64 pat = block & kPatLarge;
    const u64 flags = block & ~kAddressMask;
    if (level + 1 == kPt) return address | (flags & ~kHuge) | (pat ? kPat4K : 0);
    return address | flags | pat;
  }

  /// What an entry allows, by itself (a table entry restricts the whole subtree). A held leaf
  /// allows nothing (read, write and execute false); user, caching and global are still its own.
  static constexpr Perms entry_perms(u64 e, usize level) {
    Perms p;
    p.read = e & kPresent;
    p.write = p.read && (e & kWritable);
    p.user = e & kUser;
    p.execute = p.read && !(e & kNoExecute);
    p.caching = (e & kCacheDisable) ? Caching::Uncached : Caching::WriteBack;
    p.global = (e & kGlobal) && is_leaf(e, level);
    return p;
  }

  /// @p e (a leaf) with its permission bits (P/HELD, write, user, execute, caching) replaced by
  /// @p perms; everything else (address, accessed, dirty, global, PS, PAT) kept. What protect()
  /// writes: @p perms without read makes the leaf held, with read present again.
  static constexpr u64 with_perms(u64 e, usize, Perms perms) { return (e & ~kPermissionBits) | perm_bits(perms); }

  /// @name Swap entries and the accessed and dirty state of a leaf (lab 7)
  /// Generic code asks these and never reads A or D itself.
  /// @{
  /// True when @p e is a swap entry (only at the page level: a swapped-out 4 KiB page).
  static constexpr bool is_swap_entry(u64 e, usize level) {
    return level == kPt && (e & (kPresent | kHeld | kSwapEntry)) == kSwapEntry;
  }
  /// The swap entry for slot @p slot (below kSwapSlots): not present to the MMU.
  static constexpr u64 make_swap_entry(u64 slot) {
    if (!__builtin_is_constant_evaluated() && slot >= kSwapSlots)
      panic("make_swap_entry: slot {} does not fit a swap entry (at most {} bits)", slot, kSwapSlotBits);
    return ((~slot & (kSwapSlots - 1)) << kPageShift) | kSwapEntry;
  }
  /// The slot a swap entry names.
  static constexpr u64 swap_slot(u64 e) { return ~(e >> kPageShift) & (kSwapSlots - 1); }
  /// True when the CPU has used the leaf @p e since its A bit was last cleared.
  static constexpr bool is_accessed(u64 e) { return e & kAccessed; }
  /// @p e with A clear: the next use sets it again (after the translation is invalidated).
  static constexpr u64 without_accessed(u64 e) { return e & ~kAccessed; }
  /// True when the CPU has written through the leaf @p e since its D bit was last cleared.
  static constexpr bool is_dirty(u64 e) { return e & kDirty; }
  /// @p e clean (D clear): the next write sets D again (after the translation is invalidated).
  static constexpr u64 cleaned(u64 e) { return e & ~kDirty; }
  /// @}

  /// Orders earlier table writes before later walks of this CPU. x86 walks are coherent with
  /// ordinary stores, so only the compiler must not reorder or drop them.
  static void write_barrier() { asm volatile("" ::: "memory"); }

  /// Prints the entry's flags, e.g. "P RW US A NX", or "HELD US A NX" for a held leaf.
  static void describe_entry(FormatSink& sink, u64 e, usize level) {
    struct Flag {
      u64 bit;
      const char* name;
    };
    if (is_swap_entry(e, level)) {
      format_to(sink, "SWAP slot {}", swap_slot(e));
      return;
    }
    constexpr Flag kFlags[] = {{kPresent, "P"},        {kHeld, "HELD"},        {kWritable, "RW"}, {kUser, "US"},
                               {kWriteThrough, "PWT"}, {kCacheDisable, "PCD"}, {kAccessed, "A"},  {kDirty, "D"},
                               {kGlobal, "G"},         {kNoExecute, "NX"}};
    bool first = true;
    for (const Flag& f : kFlags) {
      if (!(e & f.bit)) continue;
      format_to(sink, "{}{}", first ? "" : " ", f.name);
      first = false;
    }
    if ((e & kHuge) && level != kPt) format_to(sink, "{}PS", first ? "" : " ");
  }

 private:
  static inline u32 s_phys_bits = 52;

  /// Panics when @p pa is not a physical address of this CPU (see phys_bits()).
  static constexpr void check_output(const char* what, PhysAddr pa) {
    if (__builtin_is_constant_evaluated() || fits_phys(pa)) return;
    panic("{}: {:#x} is not a physical address of this CPU (its addresses are below 2^{}){}", what, pa.value(),
          s_phys_bits,
          (pa.value() >> 63) ? "; it looks like a kernel virtual address: an entry must hold the physical address "
                               "(virt_to_phys)"
                             : "");
  }

  /// P (or HELD without read), RW, US, XD and the caching bits for @p perms. Without read
  /// nothing is allowed: write and execute are dropped.
  static constexpr u64 perm_bits(Perms perms) {
    u64 bits = perms.read ? kPresent : kHeld;
    if (perms.read && perms.write) bits |= kWritable;
    if (perms.user) bits |= kUser;
    if (!perms.read || !perms.execute) bits |= kNoExecute;
    if (perms.caching == Caching::Uncached) bits |= kCacheDisable | kWriteThrough;
    return bits;
  }
};

}  // namespace pagoda::x86
