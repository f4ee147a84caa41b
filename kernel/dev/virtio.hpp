/// @file virtio.hpp
/// @brief Facts of virtio 1.x that a virtio-mmio driver needs: the transport's
/// registers (modern interface, version 2), the status and feature bits, the split virtqueue's
/// layout and the block device's requests.
///
/// Every structure the device reads or writes is little endian, as both of Pagoda's ISAs are;
/// the layouts below are the memory the device sees, so their sizes are checked.
#pragma once

#include "lib/types.hpp"

namespace pagoda::virtio {

/// @name The virtio-mmio transport's registers (byte offsets from its base; each 32 bits)
/// @{
inline constexpr u32 kRegMagic = 0x000;     ///< reads kMagic
inline constexpr u32 kRegVersion = 0x004;   ///< 2: the modern interface; 1: legacy
inline constexpr u32 kRegDeviceId = 0x008;  ///< what sits behind it (0: nothing)
inline constexpr u32 kRegVendorId = 0x00c;
inline constexpr u32 kRegDeviceFeatures = 0x010;     ///< 32 feature bits, chosen by ...Sel
inline constexpr u32 kRegDeviceFeaturesSel = 0x014;  ///< 0: bits 0-31, 1: bits 32-63
inline constexpr u32 kRegDriverFeatures = 0x020;
inline constexpr u32 kRegDriverFeaturesSel = 0x024;
inline constexpr u32 kRegQueueSel = 0x030;     ///< the queue the next Queue* registers mean
inline constexpr u32 kRegQueueNumMax = 0x034;  ///< the largest size that queue may have
inline constexpr u32 kRegQueueNum = 0x038;     ///< the size the driver gives it
inline constexpr u32 kRegQueueReady = 0x044;
inline constexpr u32 kRegQueueNotify = 0x050;  ///< write a queue's index: it has new buffers
inline constexpr u32 kRegInterruptStatus = 0x060;
inline constexpr u32 kRegInterruptAck = 0x064;
inline constexpr u32 kRegStatus = 0x070;
inline constexpr u32 kRegQueueDescLow = 0x080;  ///< physical address of the descriptor table
inline constexpr u32 kRegQueueDescHigh = 0x084;
inline constexpr u32 kRegQueueDriverLow = 0x090;  ///< ... of the available ring
inline constexpr u32 kRegQueueDriverHigh = 0x094;
inline constexpr u32 kRegQueueDeviceLow = 0x0a0;  ///< ... of the used ring
inline constexpr u32 kRegQueueDeviceHigh = 0x0a4;
inline constexpr u32 kRegConfigGeneration = 0x0fc;  ///< changes while the device changes its config
inline constexpr u32 kRegConfig = 0x100;            ///< the device-specific configuration
/// @}

inline constexpr u32 kMagic = 0x74726976;  ///< "virt", little endian
inline constexpr u32 kVersionModern = 2;
inline constexpr u32 kVersionLegacy = 1;
inline constexpr u32 kDeviceBlock = 2;  ///< device id of a block device

/// @name Device status bits (kRegStatus): how far the driver has come
/// @{
inline constexpr u32 kStatusAcknowledge = 1;  ///< the driver saw the device
inline constexpr u32 kStatusDriver = 2;       ///< and knows how to drive it
inline constexpr u32 kStatusDriverOk = 4;     ///< the driver is ready: the device is live
inline constexpr u32 kStatusFeaturesOk = 8;   ///< feature negotiation done (the device may refuse)
inline constexpr u32 kStatusNeedsReset = 64;  ///< the device hit an error it cannot recover from
inline constexpr u32 kStatusFailed = 128;     ///< the driver gave up on the device
/// @}

/// @name Feature bits (64 of them, read and written 32 at a time)
/// @{
inline constexpr u64 kFeatureBlockReadOnly = u64(1) << 5;    ///< VIRTIO_BLK_F_RO: no writes
inline constexpr u64 kFeatureVersion1 = u64(1) << 32;        ///< VIRTIO_F_VERSION_1: modern device
inline constexpr u64 kFeatureAccessPlatform = u64(1) << 33;  ///< VIRTIO_F_ACCESS_PLATFORM: DMA via an IOMMU
/// @}

/// @name The split virtqueue
/// @{
inline constexpr u16 kDescNext = 1;          ///< the chain goes on at `next`
inline constexpr u16 kDescWrite = 2;         ///< the device writes this buffer (else it reads it)
inline constexpr u16 kAvailNoInterrupt = 1;  ///< available-ring flag: do not interrupt (the driver polls)

/// One buffer of a request: physical address and length.
struct Descriptor {
  u64 address;
  u32 length;
  u16 flags;
  u16 next;
};
static_assert(sizeof(Descriptor) == 16);

/// The ring the driver fills: the heads of the chains it offers (size @p N).
template <usize N> struct AvailableRing {
  u16 flags;
  u16 index;  ///< where the driver puts the next entry (free-running, mod 2^16)
  u16 ring[N];
  u16 used_event;
};

/// One finished chain: its head and how many bytes the device wrote.
struct UsedElement {
  u32 id;
  u32 length;
};
static_assert(sizeof(UsedElement) == 8);

/// The ring the device fills as it finishes chains (size @p N).
template <usize N> struct UsedRing {
  u16 flags;
  u16 index;  ///< where the device puts the next entry (free-running, mod 2^16)
  UsedElement ring[N];
  u16 avail_event;
};
/// @}

/// @name The block device
/// @{
inline constexpr u64 kSectorSize = 512;     ///< the unit of capacity and of request positions
inline constexpr u32 kConfigCapacity = 0;   ///< config offset of the capacity (u64, in sectors)
inline constexpr u32 kBlockRead = 0;        ///< VIRTIO_BLK_T_IN
inline constexpr u32 kBlockWrite = 1;       ///< VIRTIO_BLK_T_OUT
inline constexpr u8 kBlockOk = 0;           ///< VIRTIO_BLK_S_OK
inline constexpr u8 kBlockIoError = 1;      ///< VIRTIO_BLK_S_IOERR
inline constexpr u8 kBlockUnsupported = 2;  ///< VIRTIO_BLK_S_UNSUPP

/// What a request starts with (the device reads it); the data and a status byte follow in
/// descriptors of their own.
struct BlockRequestHeader {
  u32 type;
  u32 reserved;
  u64 sector;
};
static_assert(sizeof(BlockRequestHeader) == 16);
/// @}

}  // namespace pagoda::virtio
