/// @file page.hpp
/// @brief kPageSize: the size of a page and of a physical frame, from the arch's format.
///
/// The one definition is the format's (arch::PageTableFormat::kPageSize); generic code that
/// needs the page size without the rest of the page-table layer includes this.
#pragma once

#include "arch_impl/page_table_format.hpp"

namespace pagoda {

/// Bytes in a page (a 4 KiB granule on both x86_64 and AArch64 as Pagoda configures them).
inline constexpr u64 kPageSize = arch::PageTableFormat::kPageSize;

}  // namespace pagoda
