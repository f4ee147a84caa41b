// aarch64_start(): the first C++ code, called by boot.S with the MMU on, linked high, on the
// boot stub's low entry stack.
#include "arch/aarch64/boot_defs.h"
#include "arch/aarch64/fdt.hpp"
#include "arch/aarch64/pl011.hpp"
#include "arch/aarch64/platform.hpp"
#include "core/arch.hpp"
#include "core/kmain.hpp"
#include "core/panic.hpp"
#include "core/runtime.hpp"

namespace pagoda::aarch64 {
namespace {

/// Everything the device tree said, copied out of it.
constinit BootInfo g_boot_info;

struct DeviceTree {
  PhysAddr base;
  usize size = 0;
};

/// Finds the device tree: at x0 when a loader passed one (the Linux boot protocol), else at the
/// start of RAM, where QEMU puts it for an ELF that leaves room below itself (docs/boot.md).
Result<DeviceTree> find_device_tree(u64 x0) {
  const u64 candidates[] = {x0, RAM_BASE};
  for (const u64 pa : candidates) {
    if (pa == 0) continue;
    const auto* header = static_cast<const u8*>(boot_window_ptr(PhysAddr(pa), kFdtHeaderSize));
    if (header == nullptr) continue;
    usize readable = kFdtMaxSize;
    while (readable > kFdtHeaderSize && boot_window_ptr(PhysAddr(pa), readable) == nullptr) readable /= 2;
    const Result<usize> size = fdt_total_size(header, readable);
    if (size.ok()) return DeviceTree{PhysAddr(pa), size.value()};
  }
  return Error::NotFound;
}

/// Reads the device tree into g_boot_info and @p devices, then marks the memory the blob
/// occupies as reserved (QEMU's tree does not reserve itself). The kernel image stays usable
/// RAM in the map, as on x86_64: vm::init keeps it out of the frame allocator.
Result<void> read_device_tree(const DeviceTree& tree, PlatformDevices& devices) {
  const auto* blob = static_cast<const u8*>(boot_window_ptr(tree.base, tree.size));
  TRY(fdt_parse(Span<const u8>(blob, tree.size), g_boot_info, devices));
  TRY(g_boot_info.memory.add(tree.base, tree.size, MemoryType::Reserved));
  g_boot_info.memory.normalise();
  return {};
}

}  // namespace
}  // namespace pagoda::aarch64

extern "C" char __kernel_phys_end[];

/// Called by boot.S before it clears .bss: stops the boot with the too-little-memory line when
/// the RAM the device tree names ends before the kernel image does (QEMU loads the image's
/// file bytes, but .bss would lie past RAM, and clearing it would fault before the exception
/// vectors are live: a silent spin). Uses no global state (.bss is not cleared yet, and may be
/// outside RAM): the tree is read into this stack's copy, and the line goes straight to the
/// boot UART.
extern "C" void aarch64_check_ram(pagoda::u64 x0) {
  using namespace pagoda;
  using namespace pagoda::aarch64;
  const Result<DeviceTree> tree = find_device_tree(x0);
  if (tree.is_error()) return;  // aarch64_start() says so, with the kernel's own panic
  BootInfo info;
  PlatformDevices devices;
  const auto* blob = static_cast<const u8*>(boot_window_ptr(tree.value().base, tree.value().size));
  if (fdt_parse(Span<const u8>(blob, tree.value().size), info, devices).is_error()) return;
  info.memory.normalise();
  const u64 image_end = reinterpret_cast<u64>(__kernel_phys_end);
  const PhysAddr ram_end = usable_end(info.memory);
  if (ram_end.value() <= RAM_BASE || image_end <= ram_end.value()) return;  // no RAM named: kmain's to say
  char line[160];
  const StringView text = too_little_memory(line, sizeof line, ram_end.value() - RAM_BASE, image_end - RAM_BASE,
                                            "its image ends there");
  boot_stop(text);
}

extern "C" [[noreturn]] void aarch64_start(pagoda::u64 x0) {
  using namespace pagoda;
  using namespace pagoda::aarch64;
  pl011_init(PhysAddr(PL011_BASE));
  // First, before anything could reuse the device tree's memory: copy what the kernel needs.
  PlatformDevices devices;
  const Result<DeviceTree> tree = find_device_tree(x0);
  const Result<void> parsed = tree.ok() ? read_device_tree(tree.value(), devices) : Result<void>(tree.error());
  set_platform_devices(devices);
  if (devices.uart != PhysAddr() && devices.uart != pl011_base()) pl011_init(devices.uart);
  run_global_constructors();
  arch::traps_init();
  if (tree.is_error()) panic("no device tree: x0 is {:#x} and the start of RAM ({:#x}) holds none", x0, u64(RAM_BASE));
  if (parsed.is_error()) panic("cannot read the device tree at {:#x}: {}", tree.value().base.value(), parsed.error());
  kmain(g_boot_info);
}
