"""Looking at a live guest from outside: its RAM and its registers, without trusting the kernel.

A boot made with inspect=... gives QEMU its RAM as a file (memory-backend-file, shared) and a
monitor on a unix socket. When the kernel prints the inspection line and halts, the grader
reads CR3/EFER from the monitor and page tables straight from the RAM file, and walks them with
the same core as the GDB commands (tools/gdb/pagoda_pt). What the kernel printed plays no part.
"""
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "tools", "gdb"))
import pagoda_pt  # noqa: E402

READY_LINE = "inspect: ready"
PROMPT = b"(qemu) "
MONITOR_TIMEOUT = 5.0


class Monitor:
    """QEMU's human monitor over a unix socket: one command at a time."""

    def __init__(self, path, deadline):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise AssertionError("QEMU's monitor socket never came up") from None
                time.sleep(0.01)
        self.sock.settimeout(MONITOR_TIMEOUT)
        self._read_to_prompt()

    def _read_to_prompt(self):
        data = b""
        while not data.endswith(PROMPT):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("QEMU's monitor closed the connection")
            data += chunk
        return data[:-len(PROMPT)].decode(errors="replace")

    def command(self, text):
        self.sock.sendall(text.encode() + b"\n")
        out = self._read_to_prompt()
        # The monitor echoes the command line (with terminal escapes) before its output.
        return out.split("\n", 1)[1] if "\n" in out else ""

    def quit(self):
        """Asks QEMU to exit and waits until it hangs up (closing first can lose the command)."""
        try:
            self.sock.sendall(b"quit\n")
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        self.sock.close()


def cpu_pa_bits(arch, monitor):
    """The guest CPU's physical address width as QEMU models it (x86_64: the CPU's phys-bits
    property, what its CPUID 0x80000008 reports), or None when QEMU does not say (the walker
    then assumes the architectural maximum)."""
    if arch != "x86_64":
        return None
    text = monitor.command("qom-get /machine/unattached/device[0] phys-bits").strip()
    return int(text) if text.isdigit() and 32 <= int(text) <= 52 else None


class Inspector:
    """The halted guest: registers from the monitor, physical memory from the RAM file."""

    def __init__(self, arch, monitor, ram_path, ram_size):
        self.arch = arch
        self.monitor = monitor
        self.ram = open(ram_path, "rb")
        self.ram_size = ram_size
        text = monitor.command("info registers")
        self.registers = {k.upper(): int(v, 16) for k, v in re.findall(r"\b(CR[0-4]|EFER)=([0-9a-fA-F]+)", text)}
        if "CR3" not in self.registers:
            raise AssertionError(f"no CR3 in QEMU's 'info registers':\n{text}")
        # The walks below flag an entry whose address lies above the CPU's width, as the CPU would.
        self.pa_bits = cpu_pa_bits(arch, monitor)

    def read_phys(self, pa, size):
        if pa < 0 or pa + size > self.ram_size:
            raise ValueError(f"physical {pa:#x} is outside the guest's RAM")
        self.ram.seek(pa)
        return self.ram.read(size)

    @property
    def root(self):
        return self.registers["CR3"] & 0x000F_FFFF_FFFF_F000

    @property
    def regs(self):
        return {"efer": self.registers.get("EFER", 0), "cr0": self.registers.get("CR0", 0),
                "cr4": self.registers.get("CR4", 0)}

    def walk(self, va):
        return pagoda_pt.walk(self.arch, self.read_phys, self.root, va, self.regs, pa_bits=self.pa_bits)

    def dump(self, **filters):
        return pagoda_pt.dump(self.arch, self.read_phys, self.root, self.regs, pa_bits=self.pa_bits, **filters)

    def find_u64(self, value, page_offset=None, limit=4):
        """Physical addresses (at most @p limit) where RAM holds the 64-bit little-endian
        @p value, only at @p page_offset within a 4 KiB page when given."""
        import mmap
        import struct
        needle = struct.pack("<Q", value & (1 << 64) - 1)
        found = []
        with mmap.mmap(self.ram.fileno(), 0, access=mmap.ACCESS_READ) as ram:
            at = ram.find(needle)
            while at != -1 and len(found) < limit:
                if at % 8 == 0 and (page_offset is None or at % 4096 == page_offset):
                    found.append(at)
                at = ram.find(needle, at + 1)
        return found

    def top_level_entries(self):
        """The 64-bit entries of the root table."""
        import struct
        return struct.unpack("<512Q", self.read_phys(self.root, 4096))

    def close(self):
        self.ram.close()
