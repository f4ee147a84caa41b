/// @file virtio_blk.hpp
/// @brief The swap disk's driver: one virtio-blk device on a virtio-mmio transport (modern
/// interface), one virtqueue, one request at a time; the CPU halts until the device's interrupt
/// says a request is done (or polls, where the arch cannot route the interrupt).
///
/// init() finds the device at boot, before vm::init() builds the kernel's map (the transport's
/// page is added to the devices that map covers, uncached); kernel/dev/swap_disk.hpp is how the
/// rest of the kernel uses it. A request's buffers are the request header and status byte, in a
/// page of the kernel image, and the frame itself: the device reads or writes the frame by DMA,
/// and the CPU never copies it.
#pragma once

#include "lib/types.hpp"

namespace pagoda::virtio_blk {

/// The smallest disk the kernel takes for swap, in page-sized slots (256 KiB with 4 KiB pages):
/// a smaller one is refused at boot, so that swap code never has to cope with a disk of a
/// handful of slots.
inline constexpr u64 kMinSlots = 64;

/// Looks for a virtio-blk device among the machine's virtio-mmio transports
/// (arch::virtio_mmio_transports(), the first that has one) and sets it up as the swap disk:
/// the modern interface, VIRTIO_F_VERSION_1 and nothing else accepted, queue 0 ready, at least
/// kMinSlots slots, writable. Prints one line, "swap disk: ..." with what it found, when there
/// is a block device, used or refused (and why: legacy transport, read-only, too small, the
/// features refused, ...); prints nothing when there is none. Once, before vm::init().
void init();

}  // namespace pagoda::virtio_blk
