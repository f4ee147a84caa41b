// No swap disk until a driver is linked: weak definitions of dev/swap_disk.hpp's four functions
// that say so. The disk's driver (kernel/dev/, virtio-blk) defines them again, strong, and the
// linker takes those instead; until then `present()` is false, and swap can only be a cap on
// user frames (userframes=N) with nothing to evict to.
#include "dev/swap_disk.hpp"

namespace pagoda::swap_disk {

[[gnu::weak]] bool present() { return false; }

[[gnu::weak]] u64 slot_count() { return 0; }

[[gnu::weak]] Result<void> read_slot(u64, PhysAddr) {
  return Error(Error::Unsupported, "no swap disk: no driver is linked (kernel/dev)");
}

[[gnu::weak]] Result<void> write_slot(u64, PhysAddr) {
  return Error(Error::Unsupported, "no swap disk: no driver is linked (kernel/dev)");
}

}  // namespace pagoda::swap_disk
