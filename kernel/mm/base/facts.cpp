// The memory-management facts the grader and the tools read from the kernel ELF instead of
// copying them (lib/facts.hpp; grade/pagoda_grade/symbols.py reads them with fact()).
#include "arch_impl/page_table_format.hpp"
#include "lib/facts.hpp"
#include "mm/base/layout.hpp"
#include "mm/base/page.hpp"

namespace pagoda {
namespace {

using Format = arch::PageTableFormat;

/// The format's software "writable" bit of a clean page, or 0 when it has none.
template <class F> constexpr u64 soft_write_bit() {
  if constexpr (requires { F::kSoftWrite; }) return F::kSoftWrite;
  else return 0;
}
/// The format's software "written" bit of a page whose write permission was taken away, or 0.
template <class F> constexpr u64 soft_dirty_bit() {
  if constexpr (requires { F::kSoftDirty; }) return F::kSoftDirty;
  else return 0;
}

PAGODA_FACT(kernel_half_base, layout::kKernelHalfBase)
PAGODA_FACT(window_base, layout::kWindowBase)
PAGODA_FACT(window_phys_base, layout::kWindowPhysBase)
PAGODA_FACT(window_size, layout::kWindowSize)
PAGODA_FACT(mmio_base, layout::kMmioBase)
PAGODA_FACT(temp_map_base, layout::kTempMapBase)
PAGODA_FACT(stack_base, layout::kStackBase)
PAGODA_FACT(kernel_image_base, layout::kKernelImageBase)
PAGODA_FACT(low_memory_end, layout::kLowMemoryEnd)
PAGODA_FACT(page_size, kPageSize)
PAGODA_FACT(address_mask, Format::kAddressMask)
PAGODA_FACT(levels, Format::kLevels)
PAGODA_FACT(entries_per_table, Format::kEntriesPerTable)
/// The software bit of a held leaf (a PROT_NONE page: invalid to the MMU, its frame kept).
PAGODA_FACT(held_entry_bit, Format::kHeld)
/// Lab 7: a swap entry (page_table_format.hpp draws it): its software bit, and its slot's field
/// (slot_bits bits from slot_shift, stored inverted on x86_64: swap_slot_inverted).
PAGODA_FACT(swap_entry_bit, Format::kSwapEntry)
PAGODA_FACT(swap_slot_shift, Format::kPageShift)
PAGODA_FACT(swap_slot_bits, Format::kSwapSlotBits)
PAGODA_FACT(swap_slot_inverted,
            ((Format::make_swap_entry(0) >> Format::kPageShift) & ((u64{1} << Format::kSwapSlotBits) - 1)) != 0)
/// Lab 7, AArch64: the software bit of a clean writable page (read-only to the MMU until its
/// first write marks it dirty); 0 on x86_64, whose dirty bit is the hardware's.
PAGODA_FACT(soft_write_bit, soft_write_bit<Format>())
/// Lab 7, AArch64: the software bit that keeps a page's write once it is made read-only or held
/// (dirty = writable to the MMU, or this bit); 0 on x86_64.
PAGODA_FACT(soft_dirty_bit, soft_dirty_bit<Format>())
/// The first top-level entry of the kernel half (x86_64: PML4 256).
PAGODA_FACT(kernel_half_first_entry, Format::index(VirtAddr(layout::kKernelHalfBase), 0))

}  // namespace
}  // namespace pagoda
