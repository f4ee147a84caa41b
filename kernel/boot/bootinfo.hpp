/// @file bootinfo.hpp
/// @brief BootInfo: everything the boot protocol hands over, copied into kernel memory.
///
/// The arch boot path fills one BootInfo before any memory the firmware used may be reused,
/// then passes it to kmain(). After that, nothing refers to firmware-provided memory.
#pragma once

#include "boot/memmap.hpp"
#include "lib/string_view.hpp"

namespace pagoda {

struct BootInfo {
  /// Longest kernel command line kept; a longer one is cut and flagged.
  static constexpr usize kCmdlineMax = 512;

  MemoryMap memory;
  char cmdline_storage[kCmdlineMax] = {};
  usize cmdline_length = 0;
  bool cmdline_truncated = false;

  StringView cmdline() const { return {cmdline_storage, cmdline_length}; }

  /// Copies @p text into the command line storage, truncating if needed.
  void set_cmdline(StringView text) {
    cmdline_truncated = text.size() > kCmdlineMax - 1;
    cmdline_length = cmdline_truncated ? kCmdlineMax - 1 : text.size();
    for (usize i = 0; i < cmdline_length; ++i) cmdline_storage[i] = text[i];
    cmdline_storage[cmdline_length] = '\0';
  }
};

}  // namespace pagoda
