/// @file arch_impl/page_table_format.hpp
/// @brief Seam: the page-table format of the ISA this kernel is built for (x86_64 here).
///
/// Generic code includes this header and uses arch::PageTableFormat; the format itself, with its
/// bit layouts drawn, is arch/x86_64/page_table_format.hpp.
#pragma once

#include "arch/x86_64/page_table_format.hpp"

namespace pagoda::arch {
/// The page-table format of the ISA this kernel is built for.
using PageTableFormat = x86::PageTableFormat;
}  // namespace pagoda::arch
