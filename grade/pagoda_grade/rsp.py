"""A small client of GDB's remote serial protocol, for reading a QEMU guest from outside.

QEMU's gdbstub (`-gdb ...`) is the one interface that gives every architecture's registers by
name: CR3/EFER on x86_64, TTBR0_EL1/TTBR1_EL1/TCR_EL1 on AArch64 (QEMU's monitor does not print
the AArch64 ones). The grader uses it to stop the guest where it chooses (a breakpoint on a
kernel function, or an interrupt at an instant it picks), read the translation registers,
read or write guest memory, and let the guest go on.

Only the standard library is used. The packets (see GDB's manual, "Remote Protocol"):

    $<payload>#<2 hex digit checksum>   a packet; the receiver answers + (or - to resend)
                          (this client sends its + in front of its next packet, and reads on to
                          the reply without waiting for the stub's +: one write and one read a
                          request; a stub that waits for acks before it goes on, as QEMU's does
                          only in user mode, is not one the grader talks to)
    ?                     why the target stopped           -> S05 / T05...
    qSupported            features (PacketSize, qXfer:features:read+)
    QStartNoAckMode       drop the +/- acks (QEMU 7.2 does not support it: acks stay)
    qXfer:features:read:ANNEX:OFF,LEN   the target description XML (m = more, l = last)
    p<n>                  one register by number (little-endian hex)
    g                     all registers
    m<addr>,<len>         read memory;  M<addr>,<len>:<hex> write memory
    Qqemu.PhyMemMode:1    QEMU only: m/M use physical addresses (0 restores virtual)
    qRcmd,<hex>           a monitor command (QEMU's HMP), its output in O<hex> packets
    Z0,<addr>,<kind> / z0,...   insert / remove a software breakpoint
    c                     continue; the answer (a stop reply) comes when the guest stops
    0x03 (a raw byte)     interrupt the running guest
    D                     detach (the guest runs on, breakpoints removed); k kills
    F<call>,<args>        (from the stub, while the guest runs) a File-I/O request: the guest's
                          semihosting call asks the debugger to open, read, write... a host file
                          (AArch64 runs with -semihosting-config target=gdb). Always refused,
                          F-1,<EPERM> (pagoda_core/gdbwire.py), and the wait for the stop goes on.

Register numbers come from the target description: registers are numbered in the order the
XML files list them, a `regnum` attribute restarting the count.
"""
import re
import select
import socket
import time

from pagoda_core import speed
from pagoda_core.gdbwire import checksum, file_io_refusal, is_file_io_request
from pagoda_core.gdbwire import packet as frame
from pagoda_pt.isa import isa

# Seconds to wait for an answer, on the reference machine (scaled by the speed factor).
DEFAULT_TIMEOUT = 10.0
_TAG = re.compile(r"<([A-Za-z:]+)\s([^>]*?)/?>")
_ATTRIBUTE = re.compile(r'([A-Za-z_:]+)="([^"]*)"')


class RspError(Exception):
    """The stub answered with an error, or not at all, or the connection broke."""


class RspTimeout(RspError):
    """No packet came before the deadline (the stub is alive; the guest may still be running)."""


class Register:
    __slots__ = ("name", "number", "bits")

    def __init__(self, name, number, bits):
        self.name, self.number, self.bits = name, number, bits

    def __repr__(self):
        return f"Register({self.name!r}, {self.number}, {self.bits})"


class StopReply:
    """A stop reply: S/T (signal), W/X (the target exited)."""

    def __init__(self, payload):
        self.payload = payload
        self.kind = payload[:1]
        self.signal = int(payload[1:3], 16) if self.kind in ("S", "T", "X", "W") and len(payload) >= 3 else None
        self.values = {}
        if self.kind == "T":
            for part in payload[3:].split(";"):
                if ":" in part:
                    k, v = part.split(":", 1)
                    self.values[k] = v

    @property
    def exited(self):
        return self.kind in ("W", "X")

    def __repr__(self):
        return f"StopReply({self.payload!r})"


def escape(payload):
    """Binary data in a packet: # $ } * are sent as } followed by the byte xor 0x20."""
    out = bytearray()
    for b in payload:
        if b in b"#$}*":
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def unescape(payload):
    """Undoes escape() and run-length encoding (X*n repeats X n-29 more times). (The plain runs
    between } and * are copied whole: a byte at a time, a page read was most of a stop's cost.)"""
    if b"}" not in payload and b"*" not in payload:
        return bytes(payload)
    out = bytearray()
    i, n = 0, len(payload)
    while i < n:
        brace, star = payload.find(b"}", i), payload.find(b"*", i)
        j = min(brace if brace >= 0 else n, star if star >= 0 else n)
        out += payload[i:j]
        if j >= n:
            break
        if payload[j] == 0x7D:
            out.append(payload[j + 1] ^ 0x20)
            i = j + 2
        elif out:
            out += bytes((out[-1],)) * (payload[j + 1] - 29)
            i = j + 2
        else:
            out.append(0x2A)
            i = j + 1
    return bytes(out)


class RspClient:
    """One connection to a gdbstub.

    @p sock is a connected stream socket. @p idle, when given, is called (with no argument)
    whenever the client waits for the stub for a while: the grader uses it to keep draining the
    guest's serial output and watching QEMU's log, and to abort (by raising) when the guest died.
    """

    def __init__(self, sock, timeout=None, idle=None, arch=None):
        self.sock = sock
        self.timeout = speed.scaled(DEFAULT_TIMEOUT) if timeout is None else timeout
        self.idle = idle
        self.arch = arch
        self.acks = True
        self.packet_size = 4096
        self._buffer = b""
        self._ack = b""         # the + owed for the last packet read, sent with the next one
        self._sent = b""        # the last packet sent (resent on a -)
        self._registers = None
        self._features = {}
        self.running = False
        self._phys = False
        self._interrupting = False
        # The File-I/O requests the guest made (each refused), as the stub sent them.
        self.refused_file_io = []

    # ---- framing -------------------------------------------------------------------------------

    @classmethod
    def connect_unix(cls, path, **kwargs):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return cls(s, **kwargs)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        """Reads more bytes into the buffer; RspError at the deadline or when the stub hangs up."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RspTimeout(f"no answer from the gdbstub in {self.timeout:g} s")
            ready, _, _ = select.select([self.sock], [], [], min(left, 0.05))
            if ready:
                try:
                    data = self.sock.recv(65536)
                except OSError as e:
                    raise RspError(f"the gdbstub connection broke: {e}") from None
                if not data:
                    raise RspError("the gdbstub closed the connection (QEMU exited?)")
                self._buffer += data
                return
            if self.idle is not None:
                self.idle()

    def _read_packet(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            start = self._buffer.find(b"$")
            if b"-" in self._buffer[:start if start >= 0 else len(self._buffer)]:
                self._buffer = self._buffer[max(start, 0):] if start >= 0 else b""
                self._sendall(self._sent)   # (the stub read our last packet wrong)
                continue
            if start >= 0:
                end = self._buffer.find(b"#", start)
                if end >= 0 and len(self._buffer) >= end + 3:
                    payload = self._buffer[start + 1:end]
                    sent = self._buffer[end + 1:end + 3]
                    self._buffer = self._buffer[end + 3:]
                    if int(sent, 16) == checksum(payload):
                        self._ack = b"+" if self.acks else b""
                        return unescape(payload)
                    self._sendall(b"-")
                    continue
            else:
                self._buffer = b""  # acks and noise before a packet
            self._fill(deadline)

    def _sendall(self, data):
        """sock.sendall(), with a connection QEMU dropped (it exited: a panic, a shutdown) as an
        RspError like a closed one, not a BrokenPipeError from the middle of a witness script."""
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise RspError(f"the gdbstub connection broke: {e}") from None

    def _send(self, *payloads):
        """Sends @p payloads' packets in one write, after the + owed for the last reply."""
        self._sent = b"".join(frame(p) for p in payloads)
        data, self._ack = self._ack + self._sent, b""
        self._sendall(data)

    def request(self, payload, timeout=None):
        """Sends one packet and returns the reply's payload as text."""
        return self.requests([payload], timeout=timeout)[0]

    def requests(self, payloads, then=None, timeout=None):
        """Sends @p payloads and then (@p then: "c" or "s", which let the guest run and are
        answered only when it stops) in one write, and returns the replies to @p payloads as
        text, read in order (a stub answers packets in the order they come)."""
        if self.running:
            raise RspError("the guest is running: stop it before sending a request")
        self._send(*payloads, *([then] if then else []))
        replies = [self._read_packet(timeout).decode("latin-1") for _ in payloads]
        self.running = then is not None
        return replies

    def _ok(self, payload):
        reply = self.request(payload)
        if reply != "OK":
            raise RspError(f"{payload if isinstance(payload, str) else payload[:20]!r}: the gdbstub answered {reply!r}")

    # ---- session -------------------------------------------------------------------------------

    def handshake(self):
        """Features, no-ack mode when offered; returns the stop reply of the halted target."""
        reply = self.request("qSupported:multiprocess-;swbreak+;hwbreak+;xmlRegisters=i386")
        for part in reply.split(";"):
            if "=" in part:
                k, v = part.split("=", 1)
                self._features[k] = v
            elif part:
                self._features[part[:-1]] = part[-1]
        if "PacketSize" in self._features:
            self.packet_size = int(self._features["PacketSize"], 16)
        if self._features.get("QStartNoAckMode") == "+":
            if self.request("QStartNoAckMode") == "OK":
                self.acks = False
        return self.stop_reason()

    def stop_reason(self):
        return StopReply(self.request("?"))

    # ---- registers -----------------------------------------------------------------------------

    def read_feature(self, annex):
        """The text of one target-description file (qXfer:features:read)."""
        out, offset = b"", 0
        chunk = max(256, self.packet_size - 16)
        while True:
            reply = self.request(f"qXfer:features:read:{annex}:{offset:x},{chunk:x}")
            if not reply or reply[0] not in "ml":
                raise RspError(f"cannot read target description {annex}: {reply!r}")
            data = reply[1:].encode("latin-1")
            out += data
            offset += len(data)
            if reply[0] == "l":
                return out.decode()

    def registers(self):
        """{lower-case name: Register} from target.xml and the files it includes."""
        if self._registers is None:
            regs, number = {}, 0
            pending = ["target.xml"]
            seen = set()
            while pending:
                annex = pending.pop(0)
                if annex in seen:
                    continue
                seen.add(annex)
                text = re.sub(r"<!--.*?-->", "", self.read_feature(annex), flags=re.S)
                includes = []
                # (QEMU's files use an xi: prefix they never bind: read the tags, not the XML tree)
                for tag, attributes in _TAG.findall(text):
                    attrs = dict(_ATTRIBUTE.findall(attributes))
                    if tag.endswith("include"):
                        includes.append(attrs["href"])
                    elif tag == "reg":
                        if "regnum" in attrs:
                            number = int(attrs["regnum"])
                        regs.setdefault(attrs["name"].lower(), Register(attrs["name"], number, int(attrs["bitsize"])))
                        number += 1
                pending = includes + pending
            self._registers = regs
        return self._registers

    def register(self, name):
        regs = self.registers()
        reg = regs.get(name.lower())
        if reg is None and name.lower().endswith("_el1"):
            # QEMU 7.2's AArch64 target.xml drops the suffix of some EL1 registers it defines
            # itself: SCTLR_EL1 is 'SCTLR', VBAR_EL1 'VBAR' (TTBR0_EL1, TCR_EL1 keep theirs).
            reg = regs.get(name.lower()[:-4])
        if reg is None:
            raise RspError(f"the target has no register {name!r}")
        return reg

    def read_register(self, name):
        """The value of register @p name (any case), as an int."""
        return self.read_registers([name])[0]

    def read_registers(self, names):
        """[value] of the registers @p names, as ints (one round trip: requests())."""
        values = []
        for name, reply in zip(names, self.requests([f"p{self.register(name).number:x}" for name in names])):
            if not reply or reply.startswith("E") and len(reply) == 3:
                raise RspError(f"cannot read register {name}: {reply!r}")
            values.append(int.from_bytes(bytes.fromhex(reply), "little"))
        return values

    def write_registers(self, values):
        """Writes {name: int} @p values into the selected thread's registers (one round trip)."""
        regs = {name: self.register(name) for name in values}
        packets = [f"P{r.number:x}={values[n].to_bytes(r.bits // 8, 'little').hex()}" for n, r in regs.items()]
        for payload, reply in zip(packets, self.requests(packets)):
            if reply != "OK":
                raise RspError(f"{payload!r}: the gdbstub answered {reply!r}")

    def threads(self):
        """The stub's thread ids: one per vCPU on QEMU, in CPU order."""
        ids, reply = [], self.request("qfThreadInfo")
        while reply.startswith("m"):
            ids += [t for t in reply[1:].split(",") if t]
            reply = self.request("qsThreadInfo")
        return ids

    def each_thread(self, names):
        """[[value] of the registers @p names] for every thread (vCPU), in order; the thread the
        stub reads registers and memory through is selected again afterwards."""
        current = self.request("qC")
        values = []
        try:
            for tid in self.threads():
                if self.request(f"Hg{tid}") != "OK":
                    raise RspError(f"the gdbstub refused thread {tid}")
                values.append(self.read_registers(names))
        finally:
            if current.startswith("QC"):
                self.request(f"Hg{current[2:]}")
        return values

    # ---- memory --------------------------------------------------------------------------------

    def physical(self, on):
        """QEMU: make m/M use physical (True) or virtual (False) addresses."""
        if on != self._phys:
            self._ok(f"Qqemu.PhyMemMode:{1 if on else 0}")
            self._phys = on

    def read_memory(self, address, length, physical=False):
        """@p length bytes at @p address (virtual through the guest's tables, or physical)."""
        self.physical(physical)
        try:
            out = bytearray()
            chunk = max(16, (self.packet_size - 8) // 2)
            while len(out) < length:
                n = min(chunk, length - len(out))
                reply = self.request(f"m{address + len(out):x},{n:x}")
                if not reply or (reply[0] == "E" and len(reply) == 3):
                    raise RspError(f"cannot read {n} bytes at {'physical' if physical else 'virtual'} "
                                   f"{address + len(out):#x}: {reply!r}")
                out += bytes.fromhex(reply)
            return bytes(out)
        finally:
            self.physical(False)

    def write_memory(self, address, data, physical=False):
        self.physical(physical)
        try:
            chunk = max(16, (self.packet_size - 32) // 2)
            for i in range(0, len(data), chunk):
                part = data[i:i + chunk]
                self._ok(f"M{address + i:x},{len(part):x}:{part.hex()}")
        finally:
            self.physical(False)

    def monitor(self, command):
        """QEMU: runs a monitor command through the stub (qRcmd) and returns its output."""
        self._send("qRcmd," + command.encode().hex())
        out = b""
        while True:
            reply = self._read_packet()
            if reply.startswith(b"O") and reply != b"OK":
                out += bytes.fromhex(reply[1:].decode())
                continue
            if reply == b"OK" or reply == b"":
                return out.decode(errors="replace")
            raise RspError(f"monitor {command!r}: the gdbstub answered {reply[:40]!r}")

    # ---- execution -----------------------------------------------------------------------------

    def _kind(self):
        # Software-breakpoint "kind": the size of the breakpoint instruction (the ISA's; 1 when
        # the client was not told its ISA).
        try:
            return isa(self.arch).breakpoint_bytes
        except ValueError:
            return 1

    def set_breakpoint(self, address):
        self.breakpoints(add=[address])

    def remove_breakpoint(self, address):
        self.breakpoints(remove=[address])

    def breakpoints(self, remove=(), add=(), resume=None):
        """Removes the software breakpoints at @p remove, inserts those at @p add and then, with
        @p resume ("c" or "s"), lets the guest run, in one write (requests())."""
        kind = self._kind()
        packets = [f"z0,{a:x},{kind}" for a in remove] + [f"Z0,{a:x},{kind}" for a in add]
        if packets or resume:
            for payload, reply in zip(packets, self.requests(packets, then=resume)):
                if reply != "OK":
                    raise RspError(f"{payload!r}: the gdbstub answered {reply!r}")

    def cont(self):
        """Lets the guest run; wait_stop() collects the stop reply."""
        self.breakpoints(resume="c")

    def step(self):
        """Executes one instruction; wait_stop() collects the stop reply."""
        self.breakpoints(resume="s")

    def wait_stop(self, timeout=None):
        """Waits until the running guest stops (a breakpoint, an interrupt); the StopReply. A
        File-I/O request meanwhile is refused (refuse_file_io) and the wait goes on."""
        if not self.running:
            raise RspError("the guest is not running")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            payload = self._read_packet(max(0.0, deadline - time.monotonic()))
            if not is_file_io_request(payload):
                break
            self.refuse_file_io(payload)
        self.running = False
        self._interrupting = False
        return StopReply(payload.decode("latin-1"))

    def stop_pending(self):
        """Whether the running guest's stop reply has begun to come (what the socket holds now
        is read, without waiting; the stub's acks before it are dropped): for a caller that
        waits on the socket itself (select) and must not take an ack for a stop."""
        while select.select([self.sock], [], [], 0)[0]:
            data = self.sock.recv(65536)
            if not data:
                return True     # (wait_stop() says the stub hung up)
            self._buffer += data
        self._buffer = self._buffer.lstrip(b"+")
        return bool(self._buffer)

    def refuse_file_io(self, payload):
        """Answers the File-I/O request @p payload with a failure and no host access: EPERM, and
        QEMU resumes the guest (the call returns -1); when an interrupt is pending, EINTR with
        the Ctrl-C flag, and QEMU stops the guest (T02) instead."""
        self.refused_file_io.append(payload.decode("latin-1"))
        self._send(file_io_refusal(self._interrupting))

    def send_interrupt(self):
        """Asks the running guest to stop (a raw 0x03 byte); wait_stop() collects the stop reply."""
        self._sendall(b"\x03")
        self._interrupting = True

    def interrupt(self, timeout=None):
        """Stops the running guest now and returns the stop reply."""
        self.send_interrupt()
        return self.wait_stop(timeout)

    def detach(self):
        """Removes every breakpoint and lets the guest run on without the debugger."""
        if self.running:
            self.interrupt()
        try:
            self.request("D")
        except RspError:
            pass
        self.close()

    def kill(self):
        try:
            if self.running:
                self.sock.sendall(b"\x03")
            self.sock.sendall(frame("k"))
        except OSError:
            pass
        self.close()
