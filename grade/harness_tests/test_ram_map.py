"""The RAM the grader expects the kernel to map is the RAM QEMU hands the kernel, read from QEMU,
not a model: QEMU 10's microvm reserves the top 4 KiB of RAM in the PVH memory map, QEMU 7.2's
does not, and a lab-1 kernel identity maps exactly the usable entries. On AArch64 the same
comes from the device tree QEMU loads at the start of RAM."""
import struct

import pytest

from pagoda_grade import bootram, symbols, vmchecks
from pagoda_grade.vmchecks import GRADER_RAM

MiB = 1 << 20
START_INFO = 0x21E0
MEMMAP = 0x5A8
# The maps QEMU's loader wrote for -m 128M (read at the PVH entry, EBX -> start_info): type 1 is
# RAM, 2 reserved, 4 NVS. QEMU 7.2 ends with an empty entry.
QEMU_7_2 = [(0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xD0000, 0x20000, 4), (0xF0000, 0x10000, 2),
            (0x10_0000, 0x7F0_0000, 1), (0, 0, 0)]
QEMU_10_0 = [(0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xF0000, 0x10000, 2), (0x10_0000, 0x7EF_F000, 1),
             (0x7FF_F000, 0x1000, 2), (0xFFFC_0000, 0x4_0000, 2)]


def fake_memory(entries, magic=bootram.PVH_MAGIC, version=1):
    """A reader over a fake guest memory holding a PVH start_info and its memory map."""
    memory = {START_INFO: bootram.PVH_START_INFO.pack(magic, version, 0, 0, 0, 0, 0, MEMMAP, len(entries), 0),
              MEMMAP: b"".join(bootram.PVH_MEMMAP_ENTRY.pack(a, s, t, 0) for a, s, t in entries)}

    def read(pa, size):
        for base, data in memory.items():
            if base <= pa and pa + size <= base + len(data):
                return data[pa - base:pa - base + size]
        raise AssertionError(f"read outside the fake memory: {pa:#x}+{size}")
    return read


@pytest.mark.parametrize("entries, top", [(QEMU_7_2, 128 * MiB), (QEMU_10_0, 128 * MiB - 4096)],
                         ids=["qemu-7.2", "qemu-10.0"])
def test_usable_ram_is_the_maps_ram_entries(entries, top):
    assert bootram.pvh_usable_ram(fake_memory(entries), START_INFO) == [(0, 0x9FC00), (MiB, top)]


def test_a_start_info_without_its_magic_or_map_is_an_error():
    with pytest.raises(AssertionError, match="magic"):
        bootram.pvh_usable_ram(fake_memory(QEMU_10_0, magic=0x1234), START_INFO)
    with pytest.raises(AssertionError, match="no memory map"):
        bootram.pvh_usable_ram(fake_memory(QEMU_10_0, version=0), START_INFO)


def test_the_pvh_entry_is_the_kernels_entry_note(reference_kernel):
    assert bootram.pvh_entry(reference_kernel) == symbols.address_of(reference_kernel, "pvh_entry")


@pytest.mark.parametrize("entries, top", [(QEMU_7_2, 128 * MiB), (QEMU_10_0, 128 * MiB - 4096)],
                         ids=["qemu-7.2", "qemu-10.0"])
def test_a_lab1_kernel_must_identity_map_what_qemu_hands_it(reference_kernel, monkeypatch, entries, top):
    """The lab-1 form (linked low) identity maps usable RAM: the expected map ends where QEMU's
    usable RAM ends, on each QEMU, so a kernel that maps exactly its memory map passes on both."""
    monkeypatch.setattr(bootram, "_ram_maps", {})
    monkeypatch.setattr(bootram, "_read_boot_map",
                        lambda kernel, arch, memory: bootram.pvh_usable_ram(fake_memory(entries), START_INFO))
    monkeypatch.setattr(vmchecks, "linked_high", lambda kernel, arch: False)
    ram = [r for r in vmchecks.expected_kernel_map(reference_kernel, "x86_64", GRADER_RAM)
           if r.what.startswith("identity map of RAM")]
    assert ram and max(r.va + r.size for r in ram) == top
    assert all(r.va == r.pa for r in ram)


def test_usable_ram_read_from_this_machines_qemu(reference_kernel, monkeypatch):
    """The real thing: QEMU (whichever is installed) run to the kernel's entry, its map read."""
    monkeypatch.setattr(bootram, "_ram_maps", {})
    ram = bootram.usable_ram(reference_kernel, "x86_64", GRADER_RAM)
    assert ram[0][0] == 0 and MiB <= ram[-1][0] and GRADER_RAM - 64 * 1024 <= ram[-1][1] <= GRADER_RAM, ram
    assert bootram.usable_ram(reference_kernel, "x86_64", GRADER_RAM) == ram   # read once, then kept


# ---- AArch64: the device tree --------------------------------------------------------------

def fdt(nodes, reservations=(), total=1 << 20):
    """A flattened device tree: @p nodes is [(depth, name, {prop: bytes})] in order, depth 0 the
    root; @p reservations the memory reservation block's (address, size) pairs."""
    strings, struct_block = b"", b""

    def pad(b):
        return b + b"\0" * (-len(b) % 4)
    depths = [d for d, _, _ in nodes] + [0]
    for i, (depth, name, props) in enumerate(nodes):
        struct_block += struct.pack(">I", bootram.FDT_BEGIN_NODE) + pad(name.encode() + b"\0")
        for key, value in props.items():
            if key.encode() + b"\0" not in strings:
                strings += key.encode() + b"\0"
            struct_block += struct.pack(">III", bootram.FDT_PROP, len(value), strings.index(key.encode() + b"\0"))
            struct_block += pad(value)
        struct_block += struct.pack(">I", bootram.FDT_END_NODE) * (depth - depths[i + 1] + 1)
    struct_block += struct.pack(">I", bootram.FDT_END)
    rsv = b"".join(struct.pack(">QQ", a, s) for a, s in reservations) + struct.pack(">QQ", 0, 0)
    off_rsv = bootram.FDT_HEADER.size
    off_struct = off_rsv + len(rsv)
    off_strings = off_struct + len(struct_block)
    header = bootram.FDT_HEADER.pack(bootram.FDT_MAGIC, total, off_struct, off_strings, off_rsv, 17, 16, 0,
                                     len(strings), len(struct_block))
    return header + rsv + struct_block + strings


def cells(*values, count=2):
    return b"".join(v.to_bytes(4 * count, "big") for v in values)


def test_device_tree_ram_is_memory_minus_reservations_and_the_tree():
    base = 0x4000_0000
    blob = fdt([(0, "", {"#address-cells": cells(2, count=1), "#size-cells": cells(2, count=1)}),
                (1, "memory@40000000", {"device_type": b"memory\0", "reg": cells(base, 128 * MiB)}),
                (1, "reserved-memory", {"#address-cells": cells(2, count=1), "#size-cells": cells(1, count=1)}),
                (2, "secmon@47000000", {"reg": cells(0x4700_0000, count=2) + cells(0x10_0000, count=1)}),
                (1, "pl011@9000000", {"reg": cells(0x900_0000, 0x1000)})],
               reservations=[(base + 128 * MiB - 0x1000, 0x1000)], total=0x10_0800)

    def read(pa, size):
        assert base <= pa and pa - base + size <= len(blob), "read outside the tree"
        return blob[pa - base:pa - base + size]
    assert bootram.fdt_usable_ram(read, base) == [(base + 0x10_1000, 0x4700_0000),
                                                  (0x4710_0000, base + 128 * MiB - 0x1000)]
    with pytest.raises(AssertionError, match="no device tree"):
        bootram.fdt_usable_ram(lambda pa, size: bytes(size), base)


def test_aarch64_usable_ram_read_from_this_machines_qemu(aarch64_kernel, monkeypatch):
    """QEMU virt: RAM at 1 GiB, its 1 MiB device tree at the start, which the kernel keeps."""
    monkeypatch.setattr(bootram, "_ram_maps", {})
    assert bootram.usable_ram(aarch64_kernel, "aarch64", GRADER_RAM) == [(0x4010_0000, 0x4000_0000 + GRADER_RAM)]
