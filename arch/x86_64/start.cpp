// x86_64_start(): the first C++ code, called by boot.S in long mode, linked high, on the boot
// stub's low entry stack.
#include "arch/x86_64/boot_defs.h"
#include "arch/x86_64/cpu.hpp"
#include "arch/x86_64/gdt.hpp"
#include "arch/x86_64/page_table_format.hpp"
#include "arch/x86_64/pvh.hpp"
#include "arch/x86_64/serial.hpp"
#include "arch/x86_64/smp.hpp"
#include "core/arch.hpp"
#include "core/kmain.hpp"
#include "core/panic.hpp"
#include "core/runtime.hpp"
#include "lib/types.hpp"
#include "mm/base/layout.hpp"

namespace pagoda::x86 {
namespace {

/// Everything the loader handed over, copied out of the loader's memory.
constinit BootInfo g_boot_info;

/// The boot tables' window shows physical [0, 4 GiB) at kWindowBase (boot.S): the loader's
/// data is read there, not through the identity, which the kernel leaves early in its life.
constexpr u64 kBootWindowLimit = u64(BOOT_MAP_GIB) * GiB;
static_assert(layout::kWindowPhysBase == 0, "the boot window starts at physical 0");

bool read_boot_window(void*, u64 pa, void* out, usize size) {
  if (pa >= kBootWindowLimit || size > kBootWindowLimit - pa) return false;
  const u8* from = reinterpret_cast<const u8*>(layout::kWindowBase + pa);
  u8* to = static_cast<u8*>(out);
  for (usize i = 0; i < size; ++i) to[i] = from[i];
  return true;
}

}  // namespace
}  // namespace pagoda::x86

extern "C" [[noreturn]] void x86_64_start(pagoda::u32 start_info_pa) {
  using namespace pagoda;
  x86::serial_init();
  // Before any page-table entry is made: the entries refuse addresses the CPU does not have.
  x86::PageTableFormat::set_phys_bits(x86::physical_address_bits());
  // First, before anything could reuse the loader's memory: copy the memory map and cmdline.
  const Result<void> parsed = x86::pvh_parse(start_info_pa, x86::read_boot_window, nullptr, x86::g_boot_info);
  run_global_constructors();
  x86::gdt_init(0, 0);
  arch::traps_init();
  if (parsed.is_error()) panic("cannot read the PVH start_info at {:#x}: {}", start_info_pa, parsed.error());
  x86::smp_discover(x86::g_boot_info);  // through the boot window, like the start_info
  kmain(x86::g_boot_info);
}
