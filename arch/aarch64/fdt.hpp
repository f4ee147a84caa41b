/// @file fdt.hpp
/// @brief Reading a flattened device tree (FDT, the DTB QEMU hands an AArch64 kernel) into a
/// BootInfo and the addresses of the devices the kernel drives.
///
/// Layout of the blob (all fields big endian; offsets from the start of the blob):
///
///     header (40 bytes)                       memory reservation block (at off_mem_rsvmap)
///     +0   u32 magic = 0xd00dfeed             pairs of u64 (address, size), ended by (0, 0)
///     +4   u32 totalsize
///     +8   u32 off_dt_struct                  structure block (at off_dt_struct): tokens
///     +12  u32 off_dt_strings                   1 BEGIN_NODE  name, NUL, padded to 4 bytes
///     +16  u32 off_mem_rsvmap                   2 END_NODE
///     +20  u32 version (17)                     3 PROP        u32 len, u32 nameoff, value
///     +24  u32 last_comp_version (16)                         (len bytes, padded to 4)
///     +28  u32 boot_cpuid_phys                  4 NOP
///     +32  u32 size_dt_strings                  9 END
///     +36  u32 size_dt_struct                 strings block: property names, NUL-terminated
///
/// Properties come before a node's children. A node's "reg" is a list of (address, size)
/// pairs of \#address-cells and \#size-cells 32-bit cells each, as its PARENT declares them
/// (2 and 1 when the parent says nothing).
#pragma once

#include "boot/bootinfo.hpp"
#include "lib/result.hpp"

namespace pagoda::aarch64 {

inline constexpr u32 kFdtMagic = 0xd00dfeed;
inline constexpr usize kFdtHeaderSize = 40;
/// The largest device tree accepted (QEMU's virt machine makes a 1 MiB one).
inline constexpr usize kFdtMaxSize = 2 * MiB;

/// What the device tree says about the devices Pagoda drives; zero when it does not say.
struct PlatformDevices {
  PhysAddr uart;                 ///< the first PL011 ("arm,pl011")
  PhysAddr gic_distributor;      ///< GICv2 ("arm,cortex-a15-gic", "arm,gic-400"): GICD registers
  PhysAddr gic_cpu;              ///< GICv2 CPU interface (GICC registers)
  u32 timer_virtual_intid = 0;   ///< INTID of the EL1 virtual timer ("arm,armv8-timer")
  u32 timer_physical_intid = 0;  ///< INTID of the EL1 (non-secure) physical timer
  /// The "virtio,mmio" transports (QEMU's virt has 32), highest address first: QEMU gives its
  /// first -device the highest one. Those beyond kMaxVirtioMmio are left out.
  static constexpr usize kMaxVirtioMmio = 32;
  PhysRange virtio_mmio[kMaxVirtioMmio];
  /// The GIC INTID of each transport's interrupt (its "interrupts"; virt: SPI 16 + i for the
  /// transport at 0x0a000000 + 0x200 i), 0 when the tree gives none; beside virtio_mmio[].
  u32 virtio_mmio_intid[kMaxVirtioMmio] = {};
  usize virtio_mmio_count = 0;
  /// The CPUs under /cpus (device_type "cpu"), in the tree's order: each one's reg, its MPIDR
  /// affinity (what PSCI CPU_ON names it by). Those beyond kMaxCpus are left out.
  static constexpr usize kMaxCpus = 8;
  u64 cpu_mpidr[kMaxCpus] = {};
  usize cpu_count = 0;
};

/// The size the FDT header at @p header claims (totalsize), after checking that the header is
/// sane: the magic, a version this reader understands, every block inside totalsize, and
/// totalsize within @p available and kFdtMaxSize. InvalidArgument otherwise.
[[nodiscard]] Result<usize> fdt_total_size(const u8* header, usize available);

/// Parses the device tree @p blob (fdt_total_size() bytes) into @p out and @p devices:
/// memory nodes become usable RAM, /memreserve/ entries and the children of /reserved-memory
/// reserved regions (the map is normalised), /chosen's bootargs the command line. Fails with
/// InvalidArgument for a malformed blob (nothing is read outside it), Unsupported for cells
/// wider than 64 bits, Overflow when the memory map is full.
[[nodiscard]] Result<void> fdt_parse(Span<const u8> blob, BootInfo& out, PlatformDevices& devices);

}  // namespace pagoda::aarch64
