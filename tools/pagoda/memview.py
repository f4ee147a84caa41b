"""`./pagoda run --memview`: a one-screen map of physical memory, coloured by owner, on demand.

The picture is taken from outside the kernel, so it shows what is there, not what the kernel
believes: when the user presses Ctrl-A M, `pagoda run` stops the guest through QEMU's gdbstub
(a unix socket of its own), reads the kernel's records from guest RAM (the frame allocator's
bitmaps, the reference counts, the published roots) and walks every root itself, with the same
census GDB's `frames --map` prints (tools/gdb/pagoda_pt/frames.py), then lets the guest go on.
Nothing in the kernel takes part (it cannot lie about it, and a hung kernel can still be
pictured), and the guest is stopped only for the snapshot.

    snapshot(socket, kernel, arch, colour)   the map's lines (or one line saying why not)
    KeyFilter                                finds Ctrl-A M in what the user types
"""
import os
import sys

from . import kernelinfo, paths

HOTKEY = b"\x01"               # Ctrl-A: QEMU's own escape, so Ctrl-A M sits beside Ctrl-A X
HOTKEY_LETTERS = (b"m", b"M")
STRAY_REPLY_WAIT = 0.2         # seconds: how long a stop reply QEMU sends on its own may take


def _imports():
    for path in (os.path.join(paths.ROOT, "tools", "gdb"), paths.GRADE):
        if path not in sys.path:
            sys.path.insert(0, path)
    from pagoda_grade import rsp  # noqa: E402  (standard library only)
    from pagoda_pt import frames  # noqa: E402
    return rsp, frames


def snapshot(socket_path, kernel, arch, colour=False, width=64):
    """Stops the guest, takes the census, lets the guest go on; returns the map's lines."""
    rsp, frames = _imports()
    symbols = kernelinfo.elf(kernel).symbols
    try:
        client = rsp.RspClient.connect_unix(socket_path, arch=arch, timeout=10)
    except OSError as err:
        return [f"memview: cannot reach QEMU's gdbstub ({err})"]
    try:
        client.handshake()          # QEMU stops the guest when a debugger connects ...
        while True:                 # ... and then says so once more, unasked: drop that reply
            try:
                client._read_packet(timeout=STRAY_REPLY_WAIT)
            except rsp.RspError:
                break
        # No registers: owners do not depend on them (the walk assumes 48-bit, 4-level
        # tables, what Pagoda uses on both ISAs).
        regs = {}

        def read_phys(pa, size):
            return client.read_memory(pa, size, physical=True)

        try:
            census = frames.take_census(arch, read_phys, symbols.get, regs)
        except frames.CensusError as err:
            return [f"memview: {err}"]
        except (rsp.RspError, ValueError) as err:
            return [f"memview: the kernel's records cannot be read yet ({err})"]
        return frames.format_map(census, width=width, colour=colour)
    except rsp.RspError as err:
        return [f"memview: the gdbstub failed: {err}"]
    finally:
        client.detach()              # the guest runs on


class KeyFilter:
    """Passes the user's keys on to QEMU, except Ctrl-A M, which it reports instead. A Ctrl-A
    followed by any other key goes on unchanged (QEMU's Ctrl-A X, Ctrl-A H, ...)."""

    def __init__(self):
        self.pending = b""

    def feed(self, data):
        """(bytes for QEMU, how many times Ctrl-A M was pressed) for the keys @p data."""
        out, hits = bytearray(), 0
        data = self.pending + data
        self.pending = b""
        i = 0
        while i < len(data):
            byte = data[i:i + 1]
            if byte == HOTKEY:
                if i + 1 == len(data):
                    self.pending = byte        # wait for the next key
                    break
                if data[i + 1:i + 2] in HOTKEY_LETTERS:
                    hits += 1
                    i += 2
                    continue
                out += data[i:i + 2]
                i += 2
                continue
            out += byte
            i += 1
        return bytes(out), hits
