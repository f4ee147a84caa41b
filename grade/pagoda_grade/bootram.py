"""The RAM QEMU gives the kernel, read from QEMU itself (x86_64: the PVH memory map; AArch64: the
device tree), and the inputs drawn from it (the physical window's RAM and holes): what labs 1 to
3 ask (usable_ram, window_ram, window_non_ram), apart from witness.py so that later labs do not
load it."""
import shutil
import socket
import struct
import subprocess

from pagoda_core import qemu
from pagoda_pt.isa import MACHINES

from . import symbols
from .rsp import RspClient, RspError
from .witness import MiB, _align_up, image_physical, layout_value


# The PVH boot protocol (Xen's arch-x86/hvm/start_info.h): the note that names the 32-bit entry,
# start_info's magic, and the layout of start_info and of a memory map entry.
XEN_ELFNOTE_PHYS32_ENTRY = 18
PVH_MAGIC = 0x336E_C578
PVH_START_INFO = struct.Struct("<IIIIQQQQII")   # magic version flags nr_modules modlist cmdline rsdp memmap entries -
PVH_MEMMAP_ENTRY = struct.Struct("<QQII")      # addr size type reserved
PVH_RAM = 1
PVH_MAX_ENTRIES = 128
_ram_maps = {}   # (QEMU binary, arch, memory size) -> usable ranges, read once per process


def pvh_entry(kernel):
    """The 32-bit entry a PVH loader jumps to: the ELF's XEN_ELFNOTE_PHYS32_ENTRY note."""
    try:
        segments = symbols.elffile.elf(kernel).file.iter_segments()
        notes = [n for g in segments if g.header.p_type == "PT_NOTE" for n in g.iter_notes()]
    except symbols.ElfError as e:
        raise AssertionError(str(e)) from None
    for note in notes:
        if note["n_name"] == "Xen" and note["n_type"] == XEN_ELFNOTE_PHYS32_ENTRY:
            return int.from_bytes(note["n_desc"][:8], "little")
    raise AssertionError(f"{kernel} has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): QEMU cannot boot it")


def pvh_usable_ram(read, start_info):
    """[(start, end)] of the usable RAM (type 1 entries, sorted and merged) in the PVH memory
    map at @p start_info, read with @p read(physical address, size) -> bytes."""
    magic, version, _, _, _, _, _, memmap, entries, _ = PVH_START_INFO.unpack(read(start_info, PVH_START_INFO.size))
    if magic != PVH_MAGIC:
        raise AssertionError(f"QEMU's PVH start_info at {start_info:#x} has magic {magic:#x}, not {PVH_MAGIC:#x}")
    if version < 1 or memmap == 0 or not 0 < entries <= PVH_MAX_ENTRIES:
        raise AssertionError(f"QEMU's PVH start_info (version {version}) has no memory map ({entries} entries)")
    raw = read(memmap, entries * PVH_MEMMAP_ENTRY.size)
    return _merge((addr, addr + size) for addr, size, kind, _ in PVH_MEMMAP_ENTRY.iter_unpack(raw) if kind == PVH_RAM)


FDT_MAGIC = 0xD00D_FEED
FDT_HEADER = struct.Struct(">10I")   # magic totalsize off_struct off_strings off_rsvmap version ... size_strings size_struct
FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, FDT_NOP, FDT_END = 1, 2, 3, 4, 9
FDT_MAX_SIZE = 2 * MiB


def _merge(ranges):
    merged = []
    for a, b in sorted(r for r in ranges if r[0] < r[1]):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def fdt_usable_ram(read, base):
    """[(start, end)] of the usable RAM a device tree at @p base describes, as the AArch64 kernel
    reads it (arch/aarch64/fdt.cpp): the root's memory nodes, minus the memory reservation block,
    the children of /reserved-memory, and the blob itself (page aligned), which the kernel keeps."""
    header = FDT_HEADER.unpack(read(base, FDT_HEADER.size))
    magic, total, off_struct, off_strings, off_rsv = header[:5]
    size_strings, size_struct = header[8], header[9]
    if magic != FDT_MAGIC:
        raise AssertionError(f"no device tree at {base:#x} (magic {magic:#x}): QEMU loads one at the start of RAM")
    end = max(off_struct + size_struct, off_strings + size_strings)
    if not FDT_HEADER.size <= end <= total <= FDT_MAX_SIZE or off_rsv >= total:
        raise AssertionError(f"the device tree at {base:#x} is malformed (total size {total:#x})")
    blob = read(base, max(end, off_rsv + 16))
    reserved = [(base, base + _align_up(total))]
    at = off_rsv
    while at + 16 <= len(blob):
        address, size = struct.unpack_from(">QQ", blob, at)
        if address == 0 and size == 0:
            break
        reserved.append((address, address + size))
        at += 16

    def cells(value, count, at):
        return int.from_bytes(value[at * 4:(at + count) * 4], "big")

    def reg_ranges(value, parent):
        ac, sc = parent.get("#address-cells", 2), parent.get("#size-cells", 1)
        step = 4 * (ac + sc)
        if step == 0 or len(value) % step:
            raise AssertionError("a device tree reg property does not fit its parent's cell counts")
        return [(cells(value[i:], ac, 0), cells(value[i:], ac, 0) + cells(value[i:], sc, ac))
                for i in range(0, len(value), step)]

    memory, stack, at = [], [], off_struct
    while at < off_struct + size_struct:
        token, = struct.unpack_from(">I", blob, at)
        at += 4
        if token == FDT_BEGIN_NODE:
            name_end = blob.index(b"\0", at)
            stack.append({"name": blob[at:name_end].decode(errors="replace").split("@")[0], "props": {}})
            at = _align_up(name_end + 1, 4)
        elif token == FDT_PROP:
            length, name_off = struct.unpack_from(">II", blob, at)
            value = blob[at + 8:at + 8 + length]
            name = blob[off_strings + name_off:blob.index(b"\0", off_strings + name_off)].decode(errors="replace")
            if name in ("#address-cells", "#size-cells"):
                stack[-1][name] = cells(value, 1, 0)
            stack[-1]["props"][name] = value
            at = _align_up(at + 8 + length, 4)
        elif token == FDT_END_NODE:
            node = stack.pop()
            reg = node["props"].get("reg")
            if reg and len(stack) == 1 and (node["name"] == "memory" or node["props"].get("device_type") == b"memory\0"):
                memory += reg_ranges(reg, stack[0])
            if reg and len(stack) == 2 and stack[1]["name"] == "reserved-memory":
                reserved += reg_ranges(reg, stack[1])
        elif token == FDT_END:
            break
        elif token != FDT_NOP:
            raise AssertionError(f"the device tree at {base:#x} has an unknown token {token:#x}")
    return _merge(subtract(_merge(memory), _merge(reserved)))


def _read_boot_map(kernel, arch, memory_size):
    """Boots QEMU stopped (-S) with the grader's own machine and -m, and reads the memory map
    QEMU hands @p kernel before any instruction of the kernel runs. x86_64: runs it to the
    kernel's PVH entry (only QEMU's firmware has run) and reads start_info, whose address is in
    EBX there; paging is off, so the gdbstub reads physical memory (QEMU 7.2 keeps start_info in
    the BIOS area, outside RAM). AArch64: the device tree QEMU has put at the start of RAM
    before the first instruction (the kernel reads the same one)."""
    machine = MACHINES[arch]
    ours, theirs = socket.socketpair()
    extra = ["-chardev", f"socket,id=pagoda-gdb,fd={theirs.fileno()}", "-gdb", "chardev:pagoda-gdb", "-S"]
    argv = qemu.command(kernel, "", arch=arch, memory=f"{memory_size >> 20}M", serial="null", extra=extra)
    proc = qemu.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                      pass_fds=(theirs.fileno(),))
    theirs.close()
    try:
        client = RspClient(ours, arch=arch)
        try:
            client.handshake()

            def read(pa, size):
                return client.read_memory(pa, size)
            if machine.boot_map == "fdt":
                return fdt_usable_ram(read, machine.ram_base)
            entry = pvh_entry(kernel)
            client.set_breakpoint(entry)
            client.cont()
            reply = client.wait_stop()
            if reply.exited or client.read_register("rip") != entry:
                raise AssertionError(f"QEMU did not reach the kernel's PVH entry {entry:#x}")
            return pvh_usable_ram(read, client.read_register("rbx") & 0xFFFF_FFFF)
        except RspError as e:
            qemu.kill_group(proc)
            err = proc.stderr.read().decode(errors="replace").strip()
            raise AssertionError(f"cannot read the memory map QEMU gives the kernel: {e}"
                                 + (f" (QEMU said: {err})" if err else "")) from None
        finally:
            client.close()
    finally:
        qemu.kill_group(proc)
        proc.stderr.close()
        ours.close()


def usable_ram(kernel, arch, memory_size):
    """[(start, end)] of the RAM the kernel may use under the grader's QEMU with -m
    @p memory_size bytes, as QEMU hands it to the kernel, read from this very QEMU once per
    process: on x86_64 the usable entries of the PVH memory map (QEMU 10 reserves the top 4 KiB
    of microvm's RAM, 7.2 does not: a model would be right for one of them only); on AArch64
    the device tree's memory minus its reservations and the tree itself."""
    binary = qemu.MACHINES[arch].binary
    key = (shutil.which(binary) or binary, arch, memory_size)
    if key not in _ram_maps:
        _ram_maps[key] = _read_boot_map(kernel, arch, memory_size)
    return list(_ram_maps[key])


def subtract(ranges, holes):
    """[start, end) ranges minus the [start, end) holes."""
    out = list(ranges)
    for h0, h1 in holes:
        nxt = []
        for a, b in out:
            if h1 <= a or b <= h0:
                nxt.append((a, b))
                continue
            if a < h0:
                nxt.append((a, h0))
            if h1 < b:
                nxt.append((h1, b))
        out = nxt
    return out


def window_non_ram(kernel, arch, memory_size):
    """[start, end) ranges inside the window's physical span that are no usable RAM the kernel may
    touch (below low_memory_end, the memory map's holes and reserved ranges): what phys_to_ptr()
    must refuse although the span holds them."""
    phys_base = layout_value(kernel, "window_phys_base")
    limit = phys_base + layout_value(kernel, "window_size")
    low_end = layout_value(kernel, "low_memory_end")
    usable = [(max(a, low_end), b) for a, b in usable_ram(kernel, arch, memory_size) if b > low_end]
    return subtract([(phys_base, limit)], usable)


def window_ram(kernel, arch, memory_size):
    """The RAM the window must reach: usable RAM from the kernel's low_memory_end to the window's
    end, minus the kernel image (which the window leaves unmapped). Probes of the window test
    come from here."""
    phys_base = layout_value(kernel, "window_phys_base")
    start = max(phys_base, layout_value(kernel, "low_memory_end"))
    limit = phys_base + layout_value(kernel, "window_size")
    usable = [(max(a, start), min(b, limit)) for a, b in usable_ram(kernel, arch, memory_size)]
    return subtract([(a, b) for a, b in usable if a < b], [image_physical(kernel)])
