#include "arch/aarch64/fdt.hpp"

namespace pagoda::aarch64 {
namespace {

enum Token : u32 { kBeginNode = 1, kEndNode = 2, kProp = 3, kNop = 4, kEnd = 9 };

constexpr u32 kOldestVersion = 16;  ///< v16 has no size_dt_struct: the block runs to the end
constexpr u32 kFirstVersionWithStructSize = 17;
constexpr u32 kNewestCompatibleVersion = 17;
constexpr usize kMaxDepth = 16;
constexpr u32 kDefaultAddressCells = 2, kDefaultSizeCells = 1;
constexpr u32 kMaxCells = 2;  ///< a u64 holds two cells
constexpr usize kCell = 4;
constexpr usize kReservationEntry = 16;

/// Interrupt specifiers of a GIC ("interrupts" with #interrupt-cells = 3): type, number, flags.
constexpr usize kGicInterruptCells = 3;
constexpr u32 kGicSpi = 0, kGicPpi = 1;
constexpr u32 kFirstPpiIntid = 16, kFirstSpiIntid = 32;
/// "arm,armv8-timer" lists secure physical, non-secure physical, virtual, hypervisor.
constexpr usize kTimerPhysical = 1, kTimerVirtual = 2;

constexpr u32 be32(const u8* p) { return u32(p[0]) << 24 | u32(p[1]) << 16 | u32(p[2]) << 8 | u32(p[3]); }
constexpr u64 be64(const u8* p) { return u64(be32(p)) << 32 | be32(p + 4); }

struct Header {
  u32 magic, totalsize, off_dt_struct, off_dt_strings, off_mem_rsvmap, version, last_comp_version, boot_cpuid_phys,
      size_dt_strings, size_dt_struct;
};

Header read_header(const u8* p) {
  Header h;
  u32* fields[] = {&h.magic,   &h.totalsize,         &h.off_dt_struct,   &h.off_dt_strings,  &h.off_mem_rsvmap,
                   &h.version, &h.last_comp_version, &h.boot_cpuid_phys, &h.size_dt_strings, &h.size_dt_struct};
  for (usize i = 0; i < array_size(fields); ++i) *fields[i] = be32(p + i * kCell);
  if (h.version < kFirstVersionWithStructSize) h.size_dt_struct = h.totalsize - h.off_dt_struct;
  return h;
}

/// A byte range inside the blob.
using Bytes = Span<const u8>;

/// One node being read: what its properties said so far (they all come before its children).
struct Node {
  StringView name;
  u32 address_cells = kDefaultAddressCells;  ///< #address-cells, for its children's reg
  u32 size_cells = kDefaultSizeCells;        ///< #size-cells, for its children's reg
  Bytes reg, interrupts, compatible;
  bool memory = false;  ///< device_type = "memory"
  bool cpu = false;     ///< device_type = "cpu"
};

/// The node name without its unit address ("memory@40000000" -> "memory").
StringView base_name(StringView name) { return name.substr(0, name.find('@')); }

/// A property value as a string: without its NUL terminator, if it has one.
StringView as_string(Bytes value) {
  usize n = 0;
  while (n < value.size() && value[n] != 0) ++n;
  return {reinterpret_cast<const char*>(value.data()), n};
}

/// True when the NUL-separated string list @p list holds @p wanted.
bool has_compatible(Bytes list, StringView wanted) {
  usize start = 0;
  while (start < list.size()) {
    const StringView s = as_string(Bytes(list.data() + start, list.size() - start));
    if (s == wanted) return true;
    start += s.size() + 1;
  }
  return false;
}

bool compatible_with_any(Bytes list, Span<const StringView> names) {
  for (StringView n : names)
    if (has_compatible(list, n)) return true;
  return false;
}

/// The (address, size) pairs of a reg property, given the parent's cell counts.
class RegEntries {
 public:
  RegEntries(Bytes reg, u32 address_cells, u32 size_cells)
      : reg_(reg), address_cells_(address_cells), size_cells_(size_cells) {}

  /// Checks the cell counts and that the property holds whole entries.
  Result<void> check() const {
    if (address_cells_ > kMaxCells || size_cells_ > kMaxCells) return Error::Unsupported;
    const usize entry = (address_cells_ + size_cells_) * kCell;
    if (entry == 0 || reg_.size() % entry != 0) return Error::InvalidArgument;
    return {};
  }
  usize count() const { return reg_.size() / ((address_cells_ + size_cells_) * kCell); }
  u64 address(usize i) const { return cells(i * (address_cells_ + size_cells_), address_cells_); }
  u64 size(usize i) const { return cells(i * (address_cells_ + size_cells_) + address_cells_, size_cells_); }

 private:
  u64 cells(usize first, u32 n) const {
    u64 v = 0;
    for (u32 c = 0; c < n; ++c) v = (v << 32) | be32(reg_.data() + (first + c) * kCell);
    return v;
  }
  Bytes reg_;
  u32 address_cells_, size_cells_;
};

Result<void> add_regions(MemoryMap& map, const RegEntries& reg, MemoryType type) {
  TRY(reg.check());
  for (usize i = 0; i < reg.count(); ++i) TRY(map.add(PhysAddr(reg.address(i)), reg.size(i), type));
  return {};
}

/// The GIC INTID of interrupt specifier @p index of a device's "interrupts", or 0.
u32 gic_intid(Bytes interrupts, usize index) {
  const usize at = index * kGicInterruptCells * kCell;
  if (interrupts.size() % (kGicInterruptCells * kCell) != 0 || at + kGicInterruptCells * kCell > interrupts.size())
    return 0;
  const u32 type = be32(interrupts.data() + at), number = be32(interrupts.data() + at + kCell);
  if (type == kGicPpi) return kFirstPpiIntid + number;
  if (type == kGicSpi) return kFirstSpiIntid + number;
  return 0;
}

constexpr StringView kGicV2Names[] = {"arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a9-gic"};
constexpr StringView kPl011Names[] = {"arm,pl011"};
constexpr StringView kTimerNames[] = {"arm,armv8-timer"};
constexpr StringView kVirtioMmioNames[] = {"virtio,mmio"};

/// Adds the transport @p range, whose interrupt is @p intid, to @p dev's, which stay sorted
/// highest address first; a full list keeps its highest.
void add_virtio_mmio(PlatformDevices& dev, PhysRange range, u32 intid) {
  usize at = 0;
  while (at < dev.virtio_mmio_count && dev.virtio_mmio[at].base > range.base) ++at;
  if (at == PlatformDevices::kMaxVirtioMmio) return;
  if (dev.virtio_mmio_count < PlatformDevices::kMaxVirtioMmio) ++dev.virtio_mmio_count;
  for (usize i = dev.virtio_mmio_count - 1; i > at; --i) {
    dev.virtio_mmio[i] = dev.virtio_mmio[i - 1];
    dev.virtio_mmio_intid[i] = dev.virtio_mmio_intid[i - 1];
  }
  dev.virtio_mmio[at] = range;
  dev.virtio_mmio_intid[at] = intid;
}

/// What a node means, once all its properties are known. @p depth is 1 for the root.
Result<void> finish_node(const Node& node, const Node* parent, usize depth, BootInfo& out, PlatformDevices& dev) {
  if (parent == nullptr) return {};
  const RegEntries reg(node.reg, parent->address_cells, parent->size_cells);
  const bool root_child = depth == 2;
  if (root_child && (node.memory || base_name(node.name) == "memory") && !node.reg.empty())
    TRY(add_regions(out.memory, reg, MemoryType::Usable));
  if (depth == 3 && base_name(parent->name) == "reserved-memory" && !node.reg.empty())
    TRY(add_regions(out.memory, reg, MemoryType::Reserved));
  // A CPU: its reg is its MPIDR affinity, #address-cells of /cpus wide, with no size.
  if (depth == 3 && base_name(parent->name) == "cpus" && node.cpu && !node.reg.empty()) {
    const RegEntries id(node.reg, parent->address_cells, 0);
    TRY(id.check());
    if (id.count() > 0 && dev.cpu_count < PlatformDevices::kMaxCpus) dev.cpu_mpidr[dev.cpu_count++] = id.address(0);
  }
  // Devices: only children of the root, whose reg needs no bus translation ("ranges").
  if (!root_child) return {};
  const auto reg_address = [&](usize i) -> Result<PhysAddr> {
    TRY(reg.check());
    if (i >= reg.count()) return Error::InvalidArgument;
    return PhysAddr(reg.address(i));
  };
  if (dev.uart == PhysAddr() && compatible_with_any(node.compatible, kPl011Names)) dev.uart = TRY(reg_address(0));
  if (dev.gic_distributor == PhysAddr() && compatible_with_any(node.compatible, kGicV2Names)) {
    dev.gic_distributor = TRY(reg_address(0));
    dev.gic_cpu = TRY(reg_address(1));
  }
  if (compatible_with_any(node.compatible, kVirtioMmioNames)) {
    TRY(reg.check());
    if (reg.count() == 0) return Error::InvalidArgument;
    add_virtio_mmio(dev, {PhysAddr(reg.address(0)), reg.size(0)}, gic_intid(node.interrupts, 0));
  }
  if (compatible_with_any(node.compatible, kTimerNames)) {
    dev.timer_physical_intid = gic_intid(node.interrupts, kTimerPhysical);
    dev.timer_virtual_intid = gic_intid(node.interrupts, kTimerVirtual);
  }
  return {};
}

Result<void> read_cells_property(Bytes value, u32& out) {
  if (value.size() != kCell) return Error::InvalidArgument;
  out = be32(value.data());
  return {};
}

Result<void> take_property(Node& node, usize depth, StringView name, Bytes value, BootInfo& out) {
  if (name == "#address-cells") return read_cells_property(value, node.address_cells);
  if (name == "#size-cells") return read_cells_property(value, node.size_cells);
  if (name == "reg") node.reg = value;
  else if (name == "interrupts") node.interrupts = value;
  else if (name == "compatible") node.compatible = value;
  else if (name == "device_type") {
    node.memory = as_string(value) == "memory";
    node.cpu = as_string(value) == "cpu";
  } else if (name == "bootargs" && depth == 2 && base_name(node.name) == "chosen") out.set_cmdline(as_string(value));
  return {};
}

Result<void> read_reservations(Span<const u8> blob, const Header& h, MemoryMap& map) {
  for (usize at = h.off_mem_rsvmap; at + kReservationEntry <= h.totalsize; at += kReservationEntry) {
    const u64 address = be64(blob.data() + at), size = be64(blob.data() + at + 8);
    if (address == 0 && size == 0) return {};
    TRY(map.add(PhysAddr(address), size, MemoryType::Reserved));
  }
  return Error::InvalidArgument;  // no (0, 0) terminator inside the blob
}

/// The NUL-terminated property name at @p offset of the strings block.
Result<StringView> string_at(Bytes strings, u32 offset) {
  if (offset >= strings.size()) return Error::InvalidArgument;
  const StringView s = as_string(Bytes(strings.data() + offset, strings.size() - offset));
  if (offset + s.size() >= strings.size()) return Error::InvalidArgument;  // no NUL inside the block
  return s;
}

}  // namespace

Result<usize> fdt_total_size(const u8* header, usize available) {
  if (header == nullptr || available < kFdtHeaderSize) return Error::InvalidArgument;
  const Header h = read_header(header);
  if (h.magic != kFdtMagic) return Error::InvalidArgument;
  if (h.totalsize < kFdtHeaderSize || h.totalsize > available || h.totalsize > kFdtMaxSize)
    return Error::InvalidArgument;
  if (h.version < kOldestVersion || h.last_comp_version > kNewestCompatibleVersion) return Error::InvalidArgument;
  if (h.off_dt_struct % kCell != 0 || h.off_dt_struct > h.totalsize || h.size_dt_struct > h.totalsize - h.off_dt_struct)
    return Error::InvalidArgument;
  if (h.off_dt_strings > h.totalsize || h.size_dt_strings > h.totalsize - h.off_dt_strings)
    return Error::InvalidArgument;
  if (h.off_mem_rsvmap % 8 != 0 || h.off_mem_rsvmap < kFdtHeaderSize ||
      h.off_mem_rsvmap > h.totalsize - kReservationEntry)
    return Error::InvalidArgument;
  return usize(h.totalsize);
}

Result<void> fdt_parse(Span<const u8> blob, BootInfo& out, PlatformDevices& devices) {
  TRY(fdt_total_size(blob.data(), blob.size()));
  const Header h = read_header(blob.data());
  out.memory = MemoryMap{};
  out.set_cmdline("");
  devices = PlatformDevices{};
  TRY(read_reservations(blob, h, out.memory));

  const Bytes structure(blob.data() + h.off_dt_struct, h.size_dt_struct);
  const Bytes strings(blob.data() + h.off_dt_strings, h.size_dt_strings);
  Node stack[kMaxDepth];
  usize depth = 0;  // stack[depth - 1] is the node being read
  bool root_seen = false;
  usize pos = 0;
  for (;;) {
    if (pos > structure.size() || structure.size() - pos < kCell) return Error::InvalidArgument;
    const u32 token = be32(structure.data() + pos);
    pos += kCell;
    switch (token) {
      case kBeginNode: {
        if (depth == kMaxDepth || (depth == 0 && root_seen)) return Error::InvalidArgument;
        usize end = pos;
        while (end < structure.size() && structure[end] != 0) ++end;
        if (end == structure.size()) return Error::InvalidArgument;
        stack[depth] = Node{};
        stack[depth].name = StringView(reinterpret_cast<const char*>(structure.data() + pos), end - pos);
        ++depth;
        root_seen = true;
        pos = align_up(end + 1, kCell);
        break;
      }
      case kEndNode:
        if (depth == 0) return Error::InvalidArgument;
        TRY(finish_node(stack[depth - 1], depth >= 2 ? &stack[depth - 2] : nullptr, depth, out, devices));
        --depth;
        break;
      case kProp: {
        if (depth == 0 || structure.size() - pos < 2 * kCell) return Error::InvalidArgument;
        const u32 length = be32(structure.data() + pos), name_offset = be32(structure.data() + pos + kCell);
        pos += 2 * kCell;
        if (length > structure.size() - pos) return Error::InvalidArgument;
        const StringView name = TRY(string_at(strings, name_offset));
        TRY(take_property(stack[depth - 1], depth, name, Bytes(structure.data() + pos, length), out));
        pos = align_up(pos + length, kCell);
        break;
      }
      case kNop: break;
      case kEnd:
        if (depth != 0 || !root_seen) return Error::InvalidArgument;
        out.memory.normalise();
        return {};
      default: return Error::InvalidArgument;
    }
  }
}

}  // namespace pagoda::aarch64
