/// @file pl011.hpp
/// @brief The PL011 UART, polled: the AArch64 boot console.
#pragma once

#include "lib/string_view.hpp"
#include "mm/base/addr.hpp"

namespace pagoda::aarch64 {

/// Programs the PL011 at @p base for 115200 8N1 with FIFOs and makes it the console; usable
/// before anything else (the boot map reaches device registers at their physical address).
void pl011_init(PhysAddr base);
/// The registers of the console UART.
PhysAddr pl011_base();
/// Writes text, turning "\n" into "\r\n".
void pl011_write(StringView text);
/// The next received byte, or -1 when none is waiting.
int pl011_read_byte();

}  // namespace pagoda::aarch64
