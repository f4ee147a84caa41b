// The device-tree reader (arch/aarch64/fdt.cpp) over blobs built here, well formed and not.
#include <gtest/gtest.h>

#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "arch/aarch64/fdt.hpp"

namespace pagoda::aarch64 {
namespace {

/// Writes flattened device trees: the nodes and properties given, in order.
class FdtBuilder {
 public:
  FdtBuilder& begin(const std::string& name) {
    token(1);
    for (char c : name) structure_.push_back(u8(c));
    structure_.push_back(0);
    pad(structure_);
    return *this;
  }
  FdtBuilder& end() { return token(2); }
  FdtBuilder& nop() { return token(4); }
  FdtBuilder& prop(const std::string& name, const std::vector<u8>& value) { return prop(name, value, value.size()); }
  /// A property that claims @p declared_length bytes of value but holds @p value.
  FdtBuilder& prop(const std::string& name, const std::vector<u8>& value, usize declared_length) {
    token(3);
    cell(structure_, u32(declared_length));
    cell(structure_, string_offset(name));
    structure_.insert(structure_.end(), value.begin(), value.end());
    pad(structure_);
    return *this;
  }
  FdtBuilder& cells(const std::string& name, std::initializer_list<u32> values) {
    std::vector<u8> v;
    for (u32 c : values) cell(v, c);
    return prop(name, v);
  }
  FdtBuilder& string(const std::string& name, const std::string& value) {
    std::vector<u8> v(value.begin(), value.end());
    v.push_back(0);
    return prop(name, v);
  }
  FdtBuilder& strings(const std::string& name, std::initializer_list<std::string> values) {
    std::vector<u8> v;
    for (const std::string& s : values) {
      v.insert(v.end(), s.begin(), s.end());
      v.push_back(0);
    }
    return prop(name, v);
  }
  FdtBuilder& reserve(u64 address, u64 size) {
    reservations_.push_back({address, size});
    return *this;
  }

  /// The blob: header, reservation block, structure block (with its END), strings block.
  std::vector<u8> build(u32 version = 17) const {
    std::vector<u8> rsv;
    for (const auto& [a, s] : reservations_) {
      cell64(rsv, a);
      cell64(rsv, s);
    }
    cell64(rsv, 0);
    cell64(rsv, 0);
    std::vector<u8> structure = structure_;
    cell(structure, 9);
    const u32 off_rsv = 40 + 8, off_struct = off_rsv + u32(rsv.size()),
              off_strings = off_struct + u32(structure.size()), total = off_strings + u32(strings_.size());
    std::vector<u8> blob;
    for (u32 field : {kFdtMagic, total, off_struct, off_strings, off_rsv, version, 16u, 0u, u32(strings_.size()),
                      u32(structure.size())})
      cell(blob, field);
    blob.resize(off_rsv, 0);
    blob.insert(blob.end(), rsv.begin(), rsv.end());
    blob.insert(blob.end(), structure.begin(), structure.end());
    blob.insert(blob.end(), strings_.begin(), strings_.end());
    return blob;
  }

 private:
  FdtBuilder& token(u32 t) {
    cell(structure_, t);
    return *this;
  }
  static void cell(std::vector<u8>& v, u32 c) {
    for (int shift = 24; shift >= 0; shift -= 8) v.push_back(u8(c >> shift));
  }
  static void cell64(std::vector<u8>& v, u64 c) {
    cell(v, u32(c >> 32));
    cell(v, u32(c));
  }
  static void pad(std::vector<u8>& v) {
    while (v.size() % 4) v.push_back(0);
  }
  u32 string_offset(const std::string& name) {
    for (usize at = 0; at < strings_.size();) {
      const std::string known(reinterpret_cast<const char*>(strings_.data() + at));
      if (known == name) return u32(at);
      at += known.size() + 1;
    }
    const u32 offset = u32(strings_.size());
    strings_.insert(strings_.end(), name.begin(), name.end());
    strings_.push_back(0);
    return offset;
  }

  std::vector<u8> structure_;
  std::vector<u8> strings_;
  std::vector<std::pair<u64, u64>> reservations_;
};

/// Roughly what QEMU 7.2's virt machine makes for -m 96M (the order of properties included:
/// a pl011's reg comes before its compatible).
FdtBuilder qemu_virt(const std::string& bootargs = "token=abc test=pf") {
  FdtBuilder b;
  b.begin("").cells("#size-cells", {2}).cells("#address-cells", {2}).string("compatible", "linux,dummy-virt");
  b.begin("memory@40000000").cells("reg", {0, 0x40000000, 0, 0x6000000}).string("device_type", "memory").end();
  b.begin("pl011@9000000")
      .cells("reg", {0, 0x09000000, 0, 0x1000})
      .strings("compatible", {"arm,pl011", "arm,primecell"})
      .end();
  b.begin("intc@8000000")
      .cells("reg", {0, 0x08000000, 0, 0x10000, 0, 0x08010000, 0, 0x10000})
      .string("compatible", "arm,cortex-a15-gic")
      .cells("#address-cells", {2})
      .cells("#size-cells", {2});
  b.begin("v2m@8020000").cells("reg", {0, 0x08020000, 0, 0x1000}).string("compatible", "arm,gic-v2m-frame").end();
  b.end();
  b.begin("timer")
      .cells("interrupts", {1, 13, 0x104, 1, 14, 0x104, 1, 11, 0x104, 1, 10, 0x104})
      .strings("compatible", {"arm,armv8-timer", "arm,armv7-timer"})
      .end();
  // QEMU makes 32, in no order we rely on; transport i's interrupt is SPI 16 + i, edge (1).
  for (const u32 at : {0x0a000000u, 0x0a003e00u, 0x0a000200u})
    b.begin("virtio_mmio")
        .cells("interrupts", {0, 16 + (at - 0x0a000000u) / 0x200, 1})
        .cells("reg", {0, at, 0, 0x200})
        .string("compatible", "virtio,mmio")
        .end();
  b.begin("chosen").string("stdout-path", "/pl011@9000000");
  if (!bootargs.empty()) b.string("bootargs", bootargs);
  b.end();
  b.end();
  return b;
}

struct Parsed {
  Result<void> result = Error::NotFound;
  BootInfo boot;
  PlatformDevices devices;
};

Parsed parse(const std::vector<u8>& blob) {
  Parsed p;
  p.result = fdt_parse(Span<const u8>(blob.data(), blob.size()), p.boot, p.devices);
  return p;
}

std::string cmdline(const BootInfo& b) { return std::string(b.cmdline().data(), b.cmdline().size()); }

TEST(Fdt, ReadsQemuVirtMemoryCommandLineAndDevices) {
  const std::vector<u8> blob = qemu_virt().build();
  ASSERT_EQ(fdt_total_size(blob.data(), blob.size()).value(), blob.size());
  const Parsed p = parse(blob);
  ASSERT_TRUE(p.result.ok()) << error_name(p.result.error());
  ASSERT_EQ(p.boot.memory.size(), 1u);
  EXPECT_EQ(p.boot.memory[0].base.value(), 0x40000000u);
  EXPECT_EQ(p.boot.memory[0].size, 96 * MiB);
  EXPECT_EQ(p.boot.memory[0].type, MemoryType::Usable);
  EXPECT_EQ(cmdline(p.boot), "token=abc test=pf");
  EXPECT_EQ(p.devices.uart.value(), 0x09000000u);
  EXPECT_EQ(p.devices.gic_distributor.value(), 0x08000000u);
  EXPECT_EQ(p.devices.gic_cpu.value(), 0x08010000u);
  EXPECT_EQ(p.devices.timer_virtual_intid, 27u);   // PPI 11
  EXPECT_EQ(p.devices.timer_physical_intid, 30u);  // PPI 14
  // The virtio-mmio transports, highest first (QEMU gives its first -device the highest).
  ASSERT_EQ(p.devices.virtio_mmio_count, 3u);
  EXPECT_EQ(p.devices.virtio_mmio[0].base.value(), 0x0a003e00u);
  EXPECT_EQ(p.devices.virtio_mmio[1].base.value(), 0x0a000200u);
  EXPECT_EQ(p.devices.virtio_mmio[2].base.value(), 0x0a000000u);
  EXPECT_EQ(p.devices.virtio_mmio[0].size, 0x200u);
  // Each one's interrupt moves with it: INTID 32 + SPI.
  EXPECT_EQ(p.devices.virtio_mmio_intid[0], 32u + 16 + 31);
  EXPECT_EQ(p.devices.virtio_mmio_intid[1], 32u + 16 + 1);
  EXPECT_EQ(p.devices.virtio_mmio_intid[2], 32u + 16);
}

TEST(Fdt, VirtioMmioTransportsBeyondTheListKeepTheHighest) {
  FdtBuilder b;
  b.begin("").cells("#address-cells", {1}).cells("#size-cells", {1});
  const usize n = PlatformDevices::kMaxVirtioMmio + 3;
  for (usize i = 0; i < n; ++i)
    b.begin("virtio_mmio").cells("reg", {u32(0x1000 + i * 0x200), 0x200}).string("compatible", "virtio,mmio").end();
  b.begin("virtio_mmio").string("compatible", "virtio,mmio").end();  // no reg: malformed
  b.end();
  EXPECT_EQ(parse(b.build()).result.error(), Error::InvalidArgument);
  FdtBuilder good;
  good.begin("").cells("#address-cells", {1}).cells("#size-cells", {1});
  for (usize i = 0; i < n; ++i)
    good.begin("virtio_mmio").cells("reg", {u32(0x1000 + i * 0x200), 0x200}).string("compatible", "virtio,mmio").end();
  good.end();
  const Parsed p = parse(good.build());
  ASSERT_TRUE(p.result.ok());
  ASSERT_EQ(p.devices.virtio_mmio_count, PlatformDevices::kMaxVirtioMmio);
  EXPECT_EQ(p.devices.virtio_mmio[0].base.value(), 0x1000u + (n - 1) * 0x200u);
  EXPECT_EQ(p.devices.virtio_mmio[PlatformDevices::kMaxVirtioMmio - 1].base.value(), 0x1000u + 3 * 0x200u);
}

TEST(Fdt, ReservationsAndReservedMemoryCarveUsableRam) {
  FdtBuilder b;
  b.reserve(0x40000000, 0x100000);
  b.begin("").cells("#address-cells", {2}).cells("#size-cells", {2});
  b.begin("memory@40000000").string("device_type", "memory").cells("reg", {0, 0x40000000, 0, 0x8000000}).end();
  b.begin("reserved-memory").cells("#address-cells", {1}).cells("#size-cells", {1}).prop("ranges", {});
  b.begin("secure@47000000").cells("reg", {0x47000000, 0x200000}).prop("no-map", {}).end();
  b.end();
  b.end();
  const Parsed p = parse(b.build());
  ASSERT_TRUE(p.result.ok()) << error_name(p.result.error());
  EXPECT_EQ(p.boot.memory.total(MemoryType::Reserved), 0x300000u);
  EXPECT_EQ(p.boot.memory.total(MemoryType::Usable), 0x8000000u - 0x300000u);
  ASSERT_EQ(p.boot.memory.size(), 4u);
  EXPECT_EQ(p.boot.memory[0].type, MemoryType::Reserved);
  EXPECT_EQ(p.boot.memory[2].base.value(), 0x47000000u);
  EXPECT_EQ(p.boot.memory[2].type, MemoryType::Reserved);
}

TEST(Fdt, SeveralMemoryNodesAndNarrowCells) {
  FdtBuilder b;
  b.begin("").cells("#address-cells", {1}).cells("#size-cells", {1});
  b.begin("memory@80000000")
      .string("device_type", "memory")
      .cells("reg", {0x80000000, 0x1000000, 0x90000000, 0x2000})
      .end();
  b.begin("memory").cells("reg", {0x40000000, 0x100000}).end();  // named, without device_type
  b.begin("soc").cells("#address-cells", {2}).cells("#size-cells", {2});
  b.begin("memory@0").string("device_type", "memory").cells("reg", {0, 0, 0, 0x1000}).end();  // not a root child
  b.end();
  b.end();
  const Parsed p = parse(b.build());
  ASSERT_TRUE(p.result.ok()) << error_name(p.result.error());
  EXPECT_EQ(p.boot.memory.total(MemoryType::Usable), 0x1000000u + 0x2000u + 0x100000u);
  EXPECT_EQ(p.boot.memory[0].base.value(), 0x40000000u);
}

TEST(Fdt, DevicesBehindABusAreNotGuessed) {
  FdtBuilder b;
  b.begin("").cells("#address-cells", {2}).cells("#size-cells", {2});
  b.begin("bus").cells("#address-cells", {1}).cells("#size-cells", {1}).cells("ranges", {0, 0, 0x10000000, 0x1000000});
  b.begin("uart@1000").cells("reg", {0x1000, 0x1000}).string("compatible", "arm,pl011").end();
  b.end();
  b.end();
  const Parsed p = parse(b.build());
  ASSERT_TRUE(p.result.ok());
  EXPECT_EQ(p.devices.uart, PhysAddr());  // 0x1000 is a bus address, not a physical one
}

TEST(Fdt, CommandLineMissingOrTooLong) {
  Parsed p = parse(qemu_virt("").build());
  ASSERT_TRUE(p.result.ok());
  EXPECT_EQ(cmdline(p.boot), "");
  const std::string long_line(BootInfo::kCmdlineMax + 10, 'x');
  p = parse(qemu_virt(long_line).build());
  ASSERT_TRUE(p.result.ok());
  EXPECT_TRUE(p.boot.cmdline_truncated);
  EXPECT_EQ(p.boot.cmdline().size(), BootInfo::kCmdlineMax - 1);
}

TEST(Fdt, NopsAndVersion16AreAccepted) {
  FdtBuilder b;
  b.nop().begin("").nop().cells("#address-cells", {2}).cells("#size-cells", {1});
  b.begin("memory@40000000").string("device_type", "memory").cells("reg", {0, 0x40000000, 0x1000000}).end().nop();
  b.end();
  const Parsed p = parse(b.build(16));
  ASSERT_TRUE(p.result.ok()) << error_name(p.result.error());
  EXPECT_EQ(p.boot.memory.total(MemoryType::Usable), 0x1000000u);
}

TEST(Fdt, TooManyRegionsOverflow) {
  FdtBuilder b;
  b.begin("").cells("#address-cells", {2}).cells("#size-cells", {2});
  for (u32 i = 0; i < MemoryMap::kMaxRegions + 1; ++i)
    b.begin("memory@" + std::to_string(i))
        .string("device_type", "memory")
        .cells("reg", {0, i * 0x200000, 0, 0x1000})
        .end();
  b.end();
  EXPECT_EQ(parse(b.build()).result.error(), Error::Overflow);
}

// ---- malformed blobs: a clear error, and nothing read outside the blob (ASan checks) ----------

void set_cell(std::vector<u8>& blob, usize at, u32 value) {
  for (int i = 0; i < 4; ++i) blob[at + i] = u8(value >> (24 - 8 * i));
}
u32 get_cell(const std::vector<u8>& blob, usize at) {
  return u32(blob[at]) << 24 | u32(blob[at + 1]) << 16 | u32(blob[at + 2]) << 8 | blob[at + 3];
}
constexpr usize kTotalSize = 4, kOffStruct = 8, kOffStrings = 12, kOffRsv = 16, kVersion = 20, kLastComp = 24,
                kSizeStrings = 32, kSizeStruct = 36;

TEST(Fdt, RejectsBadHeaders) {
  const std::vector<u8> good = qemu_virt().build();
  const auto rejected = [](std::vector<u8> blob) { return parse(blob).result.error() == Error::InvalidArgument; };
  std::vector<u8> b = good;
  b[0] ^= 1;
  EXPECT_TRUE(rejected(b)) << "bad magic";
  b = good;
  set_cell(b, kTotalSize, u32(good.size() + 1));
  EXPECT_TRUE(rejected(b)) << "totalsize beyond the bytes available";
  EXPECT_EQ(fdt_total_size(good.data(), 39).error(), Error::InvalidArgument) << "shorter than a header";
  b = good;
  set_cell(b, kOffStruct, u32(good.size()) + 4);
  EXPECT_TRUE(rejected(b)) << "structure block outside";
  b = good;
  set_cell(b, kSizeStruct, 0xffffffff);
  EXPECT_TRUE(rejected(b)) << "structure size overflowing";
  b = good;
  set_cell(b, kOffStrings, 0xfffffff0);
  EXPECT_TRUE(rejected(b)) << "strings block outside";
  b = good;
  set_cell(b, kSizeStrings, u32(good.size()));
  EXPECT_TRUE(rejected(b)) << "strings block too long";
  b = good;
  set_cell(b, kOffRsv, 41);
  EXPECT_TRUE(rejected(b)) << "misaligned reservation block";
  b = good;
  set_cell(b, kVersion, 15);
  EXPECT_TRUE(rejected(b)) << "version 15";
  b = good;
  set_cell(b, kLastComp, 18);
  EXPECT_TRUE(rejected(b)) << "only readable by a newer reader";
  b = good;
  b.resize(kFdtMaxSize + 8, 0);
  set_cell(b, kTotalSize, u32(kFdtMaxSize + 8));
  EXPECT_TRUE(rejected(b)) << "larger than any device tree the kernel accepts";
}

TEST(Fdt, RejectsBadStructure) {
  const auto structure_error = [](FdtBuilder b, u32 version = 17) { return parse(b.build(version)).result.error(); };
  FdtBuilder unbalanced;
  unbalanced.begin("").begin("a");
  EXPECT_EQ(structure_error(unbalanced), Error::InvalidArgument) << "END before the nodes end";
  FdtBuilder extra_end;
  extra_end.begin("").end().end();
  EXPECT_EQ(structure_error(extra_end), Error::InvalidArgument) << "END_NODE without a node";
  FdtBuilder two_roots;
  two_roots.begin("").end().begin("").end();
  EXPECT_EQ(structure_error(two_roots), Error::InvalidArgument) << "a second root";
  FdtBuilder orphan_prop;
  orphan_prop.cells("reg", {1});
  EXPECT_EQ(structure_error(orphan_prop), Error::InvalidArgument) << "a property outside any node";
  FdtBuilder empty;
  EXPECT_EQ(structure_error(empty), Error::InvalidArgument) << "no root at all";
  FdtBuilder deep;
  for (int i = 0; i < 17; ++i) deep.begin("n");
  for (int i = 0; i < 17; ++i) deep.end();
  EXPECT_EQ(structure_error(deep), Error::InvalidArgument) << "nesting deeper than the reader's stack";
  FdtBuilder bad_reg;
  bad_reg.begin("").cells("#address-cells", {2}).cells("#size-cells", {2});
  bad_reg.begin("memory@0").string("device_type", "memory").cells("reg", {0, 0, 0}).end().end();
  EXPECT_EQ(structure_error(bad_reg), Error::InvalidArgument) << "reg not a whole number of entries";
  FdtBuilder wide;
  wide.begin("").cells("#address-cells", {3}).cells("#size-cells", {2});
  wide.begin("memory@0").string("device_type", "memory").cells("reg", {0, 0, 0, 0, 1}).end().end();
  EXPECT_EQ(structure_error(wide), Error::Unsupported) << "three address cells";
  FdtBuilder bad_cells;
  bad_cells.begin("").cells("#address-cells", {1, 2}).end();
  EXPECT_EQ(structure_error(bad_cells), Error::InvalidArgument) << "#address-cells of two cells";

  std::vector<u8> b = qemu_virt().build();
  const u32 off_struct = get_cell(b, kOffStruct);
  set_cell(b, off_struct, 7);  // the first token
  EXPECT_EQ(parse(b).result.error(), Error::InvalidArgument) << "unknown token";
  b = qemu_virt().build();
  // The first property of the root: its name offset points past the strings block.
  const u32 first_prop = off_struct + 8;
  ASSERT_EQ(get_cell(b, first_prop), 3u);
  set_cell(b, first_prop + 8, get_cell(b, kSizeStrings));
  EXPECT_EQ(parse(b).result.error(), Error::InvalidArgument) << "name offset outside the strings";
  FdtBuilder overlong;
  overlong.begin("").cells("#address-cells", {2}).cells("#size-cells", {2});
  overlong.begin("memory@0").string("device_type", "memory").prop("reg", std::vector<u8>(16, 0), 0x1000).end().end();
  EXPECT_EQ(structure_error(overlong), Error::InvalidArgument) << "property longer than the block";
  b = qemu_virt().build();
  b.resize(b.size() - 1);  // the last string loses its NUL
  set_cell(b, kTotalSize, u32(b.size()));
  set_cell(b, kSizeStrings, get_cell(b, kSizeStrings) - 1);
  EXPECT_EQ(parse(b).result.error(), Error::InvalidArgument) << "unterminated property name";
}

TEST(Fdt, RejectsAnUnterminatedReservationBlock) {
  FdtBuilder b;
  b.begin("").end();
  std::vector<u8> blob = b.build();
  // Point the reservation block at the last 16 bytes: the structure and strings, not (0, 0).
  set_cell(blob, kOffRsv, u32(align_down(blob.size() - 16, 8)));
  set_cell(blob, kTotalSize, u32(align_down(blob.size() - 16, 8) + 16));
  blob.resize(get_cell(blob, kTotalSize));
  EXPECT_EQ(parse(blob).result.error(), Error::InvalidArgument);
}

TEST(Fdt, SurvivesEveryTruncationAndByteFlip) {
  const std::vector<u8> good = qemu_virt().build();
  for (usize n = 0; n < good.size(); ++n) {
    std::vector<u8> cut(good.begin(), good.begin() + n);  // a vector of exactly n bytes
    BootInfo boot;
    PlatformDevices devices;
    EXPECT_TRUE(fdt_parse(Span<const u8>(cut.data(), cut.size()), boot, devices).is_error()) << n;
  }
  usize accepted = 0;
  for (usize at = 0; at < good.size(); ++at) {
    for (u8 flip : {u8(0x01), u8(0x80), u8(0xff)}) {
      std::vector<u8> b = good;
      b[at] ^= flip;
      accepted += parse(b).result.ok();
    }
  }
  EXPECT_GT(accepted, 0u);  // flips inside values parse; the point is that none crashes
}

/// QEMU's virt with -smp 2: /cpus holds one node per CPU (#address-cells 1, #size-cells 0), each
/// with device_type "cpu" and its MPIDR affinity as reg; cpu-map and other children are not CPUs.
TEST(Fdt, ListsTheCpusByTheirMpidrInTreeOrder) {
  FdtBuilder b;
  b.begin("").cells("#size-cells", {2}).cells("#address-cells", {2});
  b.begin("memory@40000000").cells("reg", {0, 0x40000000, 0, 0x6000000}).string("device_type", "memory").end();
  b.begin("cpus").cells("#size-cells", {0}).cells("#address-cells", {1});
  b.begin("cpu-map").begin("socket0").end().end();
  b.begin("cpu@0").string("device_type", "cpu").string("compatible", "arm,cortex-a76").cells("reg", {0}).end();
  b.begin("cpu@1").string("device_type", "cpu").string("compatible", "arm,cortex-a76").cells("reg", {0x101}).end();
  b.end();
  b.end();
  const Parsed p = parse(b.build());
  ASSERT_TRUE(p.result.ok()) << error_name(p.result.error());
  ASSERT_EQ(p.devices.cpu_count, 2u);
  EXPECT_EQ(p.devices.cpu_mpidr[0], 0u);
  EXPECT_EQ(p.devices.cpu_mpidr[1], 0x101u);
  // The one-CPU tree of the other tests names one CPU or none: the kernel then counts one.
  EXPECT_EQ(parse(qemu_virt().build()).devices.cpu_count, 0u);
}

}  // namespace
}  // namespace pagoda::aarch64
