/// @file
/// @brief The seam: the page-table format of an AArch64 kernel is arch/aarch64's.
///
/// The format itself, with its descriptor layouts drawn, is arch/aarch64/page_table_format.hpp;
/// it lives outside arch_impl/ so that host tests can include it beside the x86_64 format and
/// run the same tests on both.
#pragma once

#include "arch/aarch64/page_table_format.hpp"

namespace pagoda::arch {
/// The page-table format of the ISA this kernel is built for.
using PageTableFormat = aarch64::PageTableFormat;
}  // namespace pagoda::arch
