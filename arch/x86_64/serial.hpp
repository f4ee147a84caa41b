/// @file serial.hpp
/// @brief The COM1 16550 UART, polled: the x86_64 boot console.
#pragma once

#include "lib/string_view.hpp"

namespace pagoda::x86 {

/// Programs COM1 for 115200 8N1 with FIFOs; call before the first write.
void serial_init();
/// Writes text, turning "\n" into "\r\n".
void serial_write(StringView text);
/// The next received byte, or -1 when none is waiting.
int serial_read_byte();

}  // namespace pagoda::x86
