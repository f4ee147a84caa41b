"""Reading registers through QEMU's gdbstub, without GDB: the grader's view of AArch64's
translation registers, which QEMU's monitor does not print (`info registers` on AArch64 shows
the general registers and PSTATE only).

The GDB remote serial protocol, as much of it as this needs: packets are `$data#cc` (cc: the sum
of the data bytes mod 256, two hex digits), each acknowledged with `+` (QEMU 7.2 has no
QStartNoAckMode). QEMU stops the guest when a debugger connects, and reports that stop. The register
numbers come from the target description (qXfer:features:read): target.xml and the files it
includes, each <reg> numbered in order unless it gives regnum. QEMU 7.2 describes the AArch64
system registers in system-registers.xml, by their upper-case names (TTBR0_EL1, TCR_EL1,
SCTLR for SCTLR_EL1, MAIR_EL1).
"""
import re
import socket
import time

TIMEOUT = 5.0
_REG = re.compile(r"<reg\b([^>]*)/?>")
_ATTR = re.compile(r'(\w+)="([^"]*)"')
_INCLUDE = re.compile(r'<xi:include\s+href="([^"]+)"')


class GdbStubError(AssertionError):
    pass


class GdbStub:
    """One connection to a gdbstub on a unix socket."""

    def __init__(self, path, deadline):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise GdbStubError("QEMU's gdbstub socket never came up") from None
                time.sleep(0.01)
        self.sock.settimeout(TIMEOUT)
        self.buffer = b""
        self.registers = None
        # Connecting stops a running guest, and QEMU says so with a stop reply of its own
        # (T02) that may come before or after our first answer: skip stop replies until the
        # answer to qSupported, which no stop reply resembles.
        self._send("qSupported")
        while "PacketSize" not in (reply := self._packet()):
            if not reply.startswith(("T", "S")):
                raise GdbStubError(f"unexpected answer from the gdbstub: {reply!r}")

    # ---- packets ---------------------------------------------------------------------------

    def _recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise GdbStubError("QEMU's gdbstub closed the connection")
        self.buffer += chunk

    def _packet(self):
        while True:
            start = self.buffer.find(b"$")
            if start >= 0:
                end = self.buffer.find(b"#", start)
                if end >= 0 and len(self.buffer) >= end + 3:
                    data = self.buffer[start + 1:end]
                    self.buffer = self.buffer[end + 3:]
                    self.sock.sendall(b"+")
                    return data.decode(errors="replace")
            self._recv()

    def _send(self, data):
        payload = data.encode()
        self.sock.sendall(b"$%s#%02x" % (payload, sum(payload) & 0xFF))

    def request(self, data):
        """Sends one packet and returns the reply's data."""
        self._send(data)
        return self._packet()

    # ---- registers -------------------------------------------------------------------------

    def _xfer(self, annex):
        text, offset = "", 0
        while True:
            reply = self.request(f"qXfer:features:read:{annex}:{offset:x},ffff")
            if not reply or reply[0] not in "lm":
                raise GdbStubError(f"the gdbstub cannot send its target description {annex}: {reply!r}")
            text += reply[1:]
            offset += len(reply) - 1
            if reply[0] == "l":
                return text

    def register_numbers(self):
        """{name: (number, bits)} of every register the target description lists."""
        if self.registers is None:
            self.registers, number = {}, 0
            files, seen = ["target.xml"], set()
            while files:
                annex = files.pop(0)
                if annex in seen:
                    continue
                seen.add(annex)
                text = self._xfer(annex)
                for m in _REG.finditer(text):
                    attrs = dict(_ATTR.findall(m.group(1)))
                    number = int(attrs.get("regnum", number))
                    self.registers[attrs["name"]] = (number, int(attrs.get("bitsize", 64)))
                    number += 1
                files += _INCLUDE.findall(text)
        return self.registers

    def read(self, name):
        """The value of register @p name (little endian on the wire), or None when the target
        has no such register or cannot read it."""
        known = self.register_numbers()
        if name not in known:
            return None
        number, _ = known[name]
        reply = self.request(f"p{number:x}")
        if not reply or reply.startswith("E") or "x" in reply:
            return None
        return int.from_bytes(bytes.fromhex(reply), "little")

    def close(self):
        try:
            self.request("D")  # detach: the guest may go on (the harness quits QEMU anyway)
        except (OSError, GdbStubError):
            pass
        self.sock.close()
