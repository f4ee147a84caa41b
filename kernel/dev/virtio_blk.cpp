// The swap disk's driver (virtio_blk.hpp) and the swap disk's interface (swap_disk.hpp).
#include "dev/virtio_blk.hpp"

#include "core/arch.hpp"
#include "core/stop.hpp"
#include "dev/platform.hpp"
#include "dev/swap_disk.hpp"
#include "dev/virtio.hpp"
#include "lib/console.hpp"
#include "lib/facts.hpp"
#include "mm/base/layout.hpp"
#include "mm/base/page.hpp"

// The offset between the kernel image's virtual and physical addresses (arch/<isa>/kernel.ld):
// the queue's page lives in the image, and the device needs its physical address.
extern "C" char __kernel_virt_offset[];

namespace pagoda::virtio_blk {
namespace {

using namespace virtio;

PAGODA_FACT(swap_min_slots, kMinSlots)

/// Descriptors in the queue: a request is a chain of three (header, the frame, status), and
/// only one is in flight at a time.
constexpr u16 kQueueSize = 4;
/// InterruptStatus bit: the device used a buffer (the used ring moved).
constexpr u32 kInterruptUsedBuffer = 1;
/// How long an interrupt-driven request may take before the device is given up, in timer ticks
/// (30 s at 100 Hz; the halt ends at every tick, so the wait sees the time pass).
constexpr u64 kMaxWaitTicks = 3000;
constexpr u64 kSectorsPerSlot = kPageSize / kSectorSize;
static_assert(kPageSize % kSectorSize == 0, "a slot is a whole number of sectors");
/// How many times a request's completion is polled before the device is given up: far more
/// than any request takes, so that only a device that never answers reaches it, and the caller
/// gets an error instead of a hang. Measured under TCG (QEMU 7.2, x86_64): up to 6 million polls
/// for a write (the first ones, which make the image's sparse blocks), 2^31 polls in about 7 s;
/// 2^33, some 30 s, leaves room for a busy host's I/O thread.
constexpr u64 kMaxPolls = u64(1) << 33;
/// How many times a reset is polled to see the status read back as zero.
constexpr u32 kMaxResetPolls = 1u << 20;
/// How many times the configuration is read for a consistent capacity.
constexpr u32 kMaxConfigReads = 1000;
/// The status byte before the device writes it: no status the device defines.
constexpr u8 kNoStatus = 0xff;
/// The descriptors of the one chain every request uses.
constexpr u16 kHeaderDesc = 0, kDataDesc = 1, kStatusDesc = 2;

/// The memory the device reads and writes besides the frames: the split virtqueue and the one
/// request's header and status, in one page of the kernel image. Each part is aligned as the
/// virtio spec wants (descriptors 16 bytes, available ring 2, used ring 4).
struct alignas(kPageSize) QueueMemory {
  alignas(16) Descriptor descriptors[kQueueSize];
  alignas(2) AvailableRing<kQueueSize> available;
  alignas(4) UsedRing<kQueueSize> used;
  alignas(16) BlockRequestHeader header;
  u8 status;
};
static_assert(sizeof(QueueMemory) == kPageSize, "the queue fits one page");

constinit QueueMemory g_queue = {};

/// The disk taken at boot.
struct Disk {
  u64 transport = 0;  ///< physical address of its registers
  u64 slots = 0;
  bool live = false;                 ///< taken, and not given up since
  u16 next_available = 0;            ///< the available ring's next index (free-running)
  u16 next_used = 0;                 ///< the used ring's index the next completion will have
  bool interrupts = false;           ///< its interrupt is routed: the CPU halts while a request is in flight
  u64 requests = 0;                  ///< requests completed
  u64 waited = 0;                    ///< arch::device_clock() counts from each request's notify to its completion seen
  volatile u64 used_interrupts = 0;  ///< interrupts that said the used ring moved (on_interrupt())
};
constinit Disk g_disk;

/// The physical address of @p object, which lives in the kernel image.
PhysAddr image_phys(const void* object) {
  return PhysAddr(reinterpret_cast<u64>(object) - reinterpret_cast<u64>(__kernel_virt_offset));
}

/// The transport at physical @p base, reached through the device area (kMmioBase + physical),
/// which the boot tables map and, once the driver has added it, the kernel's map too.
class Transport {
 public:
  explicit Transport(u64 base) : base_(base) {}

  /// The register at offset @p reg.
  u32 read(u32 reg) const { return arch::mmio_read32(layout::kMmioBase + base_ + reg); }
  /// Writes @p value to the register at offset @p reg.
  void write(u32 reg, u32 value) const { arch::mmio_write32(layout::kMmioBase + base_ + reg, value); }
  /// Its physical address.
  u64 base() const { return base_; }

  /// The 64 feature bits the device offers.
  u64 device_features() const {
    write(kRegDeviceFeaturesSel, 1);
    const u64 high = read(kRegDeviceFeatures);
    write(kRegDeviceFeaturesSel, 0);
    return high << 32 | read(kRegDeviceFeatures);
  }
  /// Tells the device which of its features the driver takes.
  void set_driver_features(u64 features) const {
    write(kRegDriverFeaturesSel, 0);
    write(kRegDriverFeatures, u32(features));
    write(kRegDriverFeaturesSel, 1);
    write(kRegDriverFeatures, u32(features >> 32));
  }
  /// Adds @p bits to the device status.
  void add_status(u32 bits) const { write(kRegStatus, read(kRegStatus) | bits); }
  /// The block device's capacity in sectors, read consistently (the generation counter does not
  /// change across the two halves); 0, which no disk passes, when it never stops changing.
  u64 capacity_sectors() const {
    for (u32 n = 0; n < kMaxConfigReads; ++n) {
      const u32 before = read(kRegConfigGeneration);
      const u64 low = read(kRegConfig + kConfigCapacity);
      const u64 high = read(kRegConfig + kConfigCapacity + 4);
      if (read(kRegConfigGeneration) == before) return high << 32 | low;
    }
    return 0;
  }
  /// Resets the device; false when it never reads back as reset.
  [[nodiscard]] bool reset() const {
    write(kRegStatus, 0);
    for (u32 n = 0; n < kMaxResetPolls; ++n)
      if (read(kRegStatus) == 0) return true;
    return false;
  }

 private:
  u64 base_;
};

/// Gives up on the device at @p t: prints why, marks it failed. Returns false (for set_up()).
template <class... Args> bool refuse(const Transport& t, FormatString<Args...> why, const Args&... args) {
  print("swap disk: virtio-blk at {:#x} refused: ", t.base());
  println(why, args...);
  t.add_status(kStatusFailed);
  return false;
}

/// Gives queue 0 of @p t the queue memory; false (and a line saying why) when it cannot.
bool set_up_queue(const Transport& t) {
  t.write(kRegQueueSel, 0);
  if (t.read(kRegQueueReady) != 0) return refuse(t, "queue 0 is in use already");
  const u32 most = t.read(kRegQueueNumMax);
  if (most < kQueueSize)
    return refuse(t, "queue 0 holds at most {} descriptors; the driver needs {}", most, kQueueSize);
  g_queue = QueueMemory{};
  // No interrupt until init() has routed the transport's line (then it clears the flag).
  g_queue.available.flags = kAvailNoInterrupt;
  g_queue.descriptors[kHeaderDesc] = {image_phys(&g_queue.header).value(), sizeof(BlockRequestHeader), kDescNext,
                                      kDataDesc};
  g_queue.descriptors[kStatusDesc] = {image_phys(&g_queue.status).value(), sizeof(u8), kDescWrite, 0};
  t.write(kRegQueueNum, kQueueSize);
  const auto set_address = [&](u32 low_reg, u32 high_reg, const void* part) {
    const u64 pa = image_phys(part).value();
    t.write(low_reg, u32(pa));
    t.write(high_reg, u32(pa >> 32));
  };
  set_address(kRegQueueDescLow, kRegQueueDescHigh, g_queue.descriptors);
  set_address(kRegQueueDriverLow, kRegQueueDriverHigh, &g_queue.available);
  set_address(kRegQueueDeviceLow, kRegQueueDeviceHigh, &g_queue.used);
  arch::dma_barrier();
  t.write(kRegQueueReady, 1);
  return true;
}

/// Takes the block device at @p t as the swap disk if it is fit for it (virtio 1.x's
/// initialisation: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queue, DRIVER_OK);
/// prints the boot's one line about it either way.
bool set_up(const Transport& t) {
  const u32 version = t.read(kRegVersion);
  if (version == kVersionLegacy)
    return refuse(t, "a legacy transport (version 1); the driver speaks virtio-mmio version 2, which QEMU "
                     "offers with -global virtio-mmio.force-legacy=false");
  if (version != kVersionModern) return refuse(t, "transport version {}; the driver speaks version 2", version);
  if (!t.reset()) return refuse(t, "the device status never read back as 0 after a reset");
  t.add_status(kStatusAcknowledge);
  t.add_status(kStatusDriver);
  const u64 offered = t.device_features();
  if ((offered & kFeatureVersion1) == 0)
    return refuse(t, "the device does not offer VIRTIO_F_VERSION_1 (it offers {:#x})", offered);
  if (offered & kFeatureBlockReadOnly)
    return refuse(t, "the device is read-only (it offers VIRTIO_BLK_F_RO): swap needs a writable disk");
  const u64 accepted = kFeatureVersion1;
  t.set_driver_features(accepted);
  t.add_status(kStatusFeaturesOk);
  if ((t.read(kRegStatus) & kStatusFeaturesOk) == 0)
    return refuse(t,
                  "feature negotiation failed: the device cleared FEATURES_OK for the driver's features {:#x} "
                  "(it offers {:#x}; VIRTIO_F_ACCESS_PLATFORM, {:#x}, is not taken)",
                  accepted, offered, kFeatureAccessPlatform);
  const u64 sectors = t.capacity_sectors();
  const u64 slots = sectors / kSectorsPerSlot;
  if (slots < kMinSlots)
    return refuse(t,
                  "too small: {} sectors of {} bytes hold {} slots of {} bytes; swap needs at least {} slots "
                  "({} KiB)",
                  sectors, kSectorSize, slots, kPageSize, kMinSlots, kMinSlots * kPageSize / KiB);
  if (!set_up_queue(t)) return false;
  t.add_status(kStatusDriverOk);
  if (t.read(kRegStatus) & kStatusNeedsReset) return refuse(t, "the device needs a reset right after DRIVER_OK");
  g_disk = Disk{.transport = t.base(), .slots = slots, .live = true};
  println("swap disk: virtio-blk at {:#x}, {} slots of {} bytes ({} KiB)", t.base(), slots, kPageSize,
          slots * kPageSize / KiB);
  return true;
}

/// The message of an error status @p status of a request of @p type (static text: an Error
/// keeps a pointer to it).
const char* status_message(u32 type, u8 status) {
  const bool read = type == kBlockRead;
  switch (status) {
    case kBlockIoError:
      return read ? "the device answered the read request with VIRTIO_BLK_S_IOERR (1)"
                  : "the device answered the write request with VIRTIO_BLK_S_IOERR (1)";
    case kBlockUnsupported:
      return read ? "the device answered the read request with VIRTIO_BLK_S_UNSUPP (2)"
                  : "the device answered the write request with VIRTIO_BLK_S_UNSUPP (2)";
    case kNoStatus:
      return read ? "the device completed the read request without writing its status"
                  : "the device completed the write request without writing its status";
    default:
      return read ? "the device answered the read request with a status virtio does not define"
                  : "the device answered the write request with a status virtio does not define";
  }
}

/// Reads @p value once, as the device may have written it.
template <class T> T read_once(const T& value) { return *static_cast<const volatile T*>(&value); }

/// The transport's interrupt (arch::route_device_interrupt): acknowledges what the device says
/// it raised, which lowers its line. The waiting transfer() sees the used ring itself.
void on_interrupt() {
  const Transport t(g_disk.transport);
  const u32 raised = t.read(kRegInterruptStatus);
  if (raised != 0) t.write(kRegInterruptAck, raised);
  if (raised & kInterruptUsedBuffer) g_disk.used_interrupts = g_disk.used_interrupts + 1;
}

/// Waits until the device has used the request just offered (the used ring's index moves past
/// g_disk.next_used): polled, or halted between interrupts when the line is routed, and then
/// until its interrupt has been taken too (@p interrupts_before: the count before the request),
/// so that the interrupt's handler runs inside the wait, never later in whatever the kernel or
/// a process does next: a request's own instructions do not depend on how soon the device
/// answered. (A device that completes without interrupting is waited for one timer tick more.)
/// False when the request never completes (2^33 polls; kMaxWaitTicks timer ticks).
bool wait_for_completion(u64 interrupts_before) {
  const volatile u16& used = g_queue.used.index;
  // Polled where no interrupt is routed, and before one can arrive (early in the boot).
  if (!g_disk.interrupts || !arch::device_interrupts_ready()) {
    for (u64 polls = 0; used == g_disk.next_used;)
      if (++polls == kMaxPolls) return false;
    return true;
  }
  // Interrupts off between the check and the halt: a completion that comes after the check
  // is pending when the CPU halts, and wakes it (arch::wait_for_device()).
  const bool enabled = arch::interrupts_save();
  const u64 start = arch::timer_ticks();
  u64 used_at = 0;  // the tick the completion was first seen at
  bool done = false;
  for (;;) {
    if (!done && used != g_disk.next_used) {
      done = true;
      used_at = arch::timer_ticks();
    }
    if (done && (g_disk.used_interrupts != interrupts_before || arch::timer_ticks() - used_at > 1)) break;
    if (!done && arch::timer_ticks() - start > kMaxWaitTicks) break;
    arch::wait_for_device();
  }
  arch::interrupts_restore(enabled);
  return done;
}

/// One request of @p type (kBlockRead or kBlockWrite) for slot @p slot, with the frame at
/// @p frame as its data; returns when the device has completed it. Out of line: the grader's
/// stops read_slot() and write_slot() each have a page of their own (core/stop.hpp), and the
/// request and its wait run here, not on theirs.
[[gnu::noinline]] Result<void> transfer(u32 type, u64 slot, PhysAddr frame) {
  const bool read = type == kBlockRead;
  const char* step = read ? "reading swap slot" : "writing swap slot";
  if (!g_disk.live)
    return Error(Error::Unsupported, "no swap disk: none was found at boot, or the one found was refused or given "
                                     "up (the boot's 'swap disk:' line says which)")
        .during(step, slot);
  if (slot >= g_disk.slots)
    return Error(Error::InvalidArgument, "no such slot: it is past the end of the swap disk (slot_count())")
        .during(step, slot);
  if (!frame.is_aligned(kPageSize))
    return Error(Error::InvalidArgument, "the frame is not page aligned")
        .during(read ? "reading a swap slot into frame" : "writing a swap slot from frame", frame.value());

  const Transport t(g_disk.transport);
  QueueMemory& q = g_queue;
  q.header = {type, 0, slot * kSectorsPerSlot};
  q.status = kNoStatus;
  q.descriptors[kDataDesc] = {frame.value(), u32(kPageSize), u16(kDescNext | (read ? kDescWrite : 0)), kStatusDesc};
  q.available.ring[g_disk.next_available % kQueueSize] = kHeaderDesc;
  arch::dma_barrier();  // the chain before the index that offers it
  ++g_disk.next_available;
  *static_cast<volatile u16*>(&q.available.index) = g_disk.next_available;
  const u64 offered = arch::device_clock();
  const u64 interrupts_before = g_disk.used_interrupts;
  t.write(kRegQueueNotify, 0);  // after the index (mmio_write32 orders it)

  if (!wait_for_completion(interrupts_before)) {
    g_disk.live = false;
    return Error(Error::IoError, "the device never completed the request (in 30 s of halts between interrupts, or "
                                 "2^33 polls); the swap disk is given up")
        .during(step, slot);
  }
  g_disk.waited += arch::device_clock() - offered;
  ++g_disk.requests;
  arch::dma_barrier();  // the index before the entry and the status it announces
  const u32 done_id = read_once(q.used.ring[g_disk.next_used % kQueueSize].id);
  ++g_disk.next_used;
  if (done_id != kHeaderDesc) {
    g_disk.live = false;
    return Error(Error::IoError, "the device completed a chain the driver never offered; the swap disk is given up")
        .during(step, slot);
  }
  const u8 status = read_once(q.status);
  if (status != kBlockOk) return Error(Error::IoError, status_message(type, status)).during(step, slot);
  return {};
}

}  // namespace

void init() {
  for (const PhysRange& range : arch::virtio_mmio_transports()) {
    const Transport t(range.base.value());
    if (t.read(kRegMagic) != kMagic || t.read(kRegDeviceId) != kDeviceBlock) continue;
    // The kernel's map covers the registers of the block device found, used or refused.
    const Result<void> mapped = arch::add_device_range({range.base.align_down(kPageSize), kPageSize});
    if (mapped.is_error()) {
      println("swap disk: virtio-blk at {:#x} refused: its registers cannot be mapped: {}", t.base(), mapped.error());
      return;
    }
    if (!set_up(t)) return;
    g_disk.interrupts = arch::route_device_interrupt(range, on_interrupt);
    if (g_disk.interrupts) g_queue.available.flags = 0;  // the device may interrupt now
    else println("swap disk: no route for the interrupt of the transport at {:#x}: completions are polled", t.base());
    return;
  }
}

}  // namespace pagoda::virtio_blk

namespace pagoda::swap_disk {

bool present() { return virtio_blk::g_disk.live; }

u64 slot_count() { return virtio_blk::g_disk.live ? virtio_blk::g_disk.slots : 0; }

DiskTimes times() { return {virtio_blk::g_disk.requests, virtio_blk::g_disk.waited}; }

[[PAGODA_STOP(read_slot)]] Result<void> read_slot(u64 slot, PhysAddr frame) {
  return virtio_blk::transfer(virtio::kBlockRead, slot, frame);
}

[[PAGODA_STOP(write_slot)]] Result<void> write_slot(u64 slot, PhysAddr frame) {
  return virtio_blk::transfer(virtio::kBlockWrite, slot, frame);
}

}  // namespace pagoda::swap_disk
