/// @file swap_disk.hpp
/// @brief The swap disk: page-sized slots on a block device, read and written by DMA.
///
/// Lab 7's swap code keeps evicted pages here. The disk is given, not the lab's subject: a
/// virtio-blk device found at boot (kernel/dev/virtio_blk.hpp). Every call is synchronous: it
/// returns once the device has finished with the frame, so the frame may be reused or freed
/// at once. One request at a time: a call waits until the device is done (the CPU halts until
/// the disk's interrupt, timer ticks in between, or polls where the arch routes no interrupt),
/// and the kernel never preempts kernel code, so no two calls overlap on the one CPU. A read that fails leaves the
/// frame's contents undefined. Host tests link a fake of these four functions instead.
#pragma once

#include "lib/result.hpp"
#include "lib/types.hpp"
#include "mm/base/addr.hpp"

namespace pagoda::swap_disk {

/// Whether a usable swap disk was found and checked at boot.
[[nodiscard]] bool present();

/// How many page-sized slots the disk holds (0 when absent). Slot s covers disk bytes
/// [s * kPageSize, (s + 1) * kPageSize).
[[nodiscard]] u64 slot_count();

/// Copies one page from slot @p slot into the frame at @p frame (DMA straight into the frame);
/// returns when the device has completed. Errors: InvalidArgument (slot out of range, frame
/// not page aligned), Unsupported (no disk), and an I/O error status from the device (an Error
/// whose message says which request and which status).
[[nodiscard]] Result<void> read_slot(u64 slot, PhysAddr frame);

/// Copies the frame at @p frame into slot @p slot (DMA straight from the frame); same errors.
[[nodiscard]] Result<void> write_slot(u64 slot, PhysAddr frame);

/// What the requests so far took: how many completed, and the arch::device_clock() counts
/// (dev/platform.hpp) from each one's start to its completion seen, summed. Under QEMU's
/// `-icount shift=0` those counts are the host's nanoseconds while the CPU halted plus the
/// instructions of the interrupts taken meanwhile: what a benchmark subtracts to count the
/// guest's own instructions (`./pagoda bench swap`).
struct DiskTimes {
  u64 requests;
  u64 waited;
};
[[nodiscard]] DiskTimes times();

}  // namespace pagoda::swap_disk
