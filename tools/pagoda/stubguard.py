"""The guest's semihosting File-I/O never reaches a debugger: a guard in front of QEMU's gdbstub
for the debuggers the user runs (the grader's own client, pagoda_grade/rsp.py, refuses them itself).

AArch64's kernel ends QEMU through semihosting SYS_EXIT, so semihosting is on, and its file calls
(SYS_OPEN, SYS_WRITE, SYS_SYSTEM, ...) would reach the host. With `-semihosting-config target=gdb`
(pagoda_pt/machines.py) QEMU serves SYS_EXIT itself and sends the others to an attached debugger
as File-I/O requests (`F<call>,<args>` packets), which GDB would carry out. A StubGuard relays
each connection on the debugger's socket to QEMU's byte for byte, but answers those requests
itself with EPERM (or EINTR and the Ctrl-C flag when the debugger asked for an interrupt meanwhile,
so that it gets the stop it waits for). The framing and the refusal are pagoda_core/gdbwire.py's.
"""
import os
import select
import socket
import sys
import threading

from pagoda_core.gdbwire import file_io_refusal, is_file_io_request, packet

# Notes on the terminal per connection; the requests past them are refused silently.
MAX_NOTES = 3


class PacketSplitter:
    """Cuts one direction of a remote-protocol byte stream into its units, across reads: packets
    ($payload#xx, and %payload#xx notifications; a payload never holds a raw # or $) and the
    single bytes between them (acks + and -, the interrupt 0x03)."""

    def __init__(self):
        self._partial = b""

    def feed(self, data):
        """The complete units in what came so far: [(bytes as sent, payload or None)]."""
        buf, units, i = self._partial + data, [], 0
        while i < len(buf):
            if buf[i] in b"$%":
                end = buf.find(b"#", i)
                if end < 0 or end + 3 > len(buf):
                    break
                units.append((buf[i:end + 3], buf[i + 1:end]))
                i = end + 3
            else:
                units.append((buf[i:i + 1], None))
                i += 1
        self._partial = buf[i:]
        return units


class StubGuard:
    """Relays debugger connections on @p path to QEMU's gdbstub at @p stub_path, refusing the
    guest's File-I/O requests (see the module's text). The listening socket exists from
    construction on; start() serves it in a thread, close() ends it."""

    def __init__(self, path, stub_path, note=None):
        self.path, self.stub_path = path, stub_path
        self.note = note if note is not None else self._print_note
        self.refused = []      # every request refused, as QEMU sent it
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(1)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._serve, name="stubguard", daemon=True)
        self._thread.start()

    def close(self):
        try:
            os.write(self._wake_w, b"q")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    @staticmethod
    def _print_note(text):
        sys.stderr.write(f"pagoda: {text}\n")
        sys.stderr.flush()

    def _serve(self):
        while True:
            ready, _, _ = select.select([self._listener, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            client, _ = self._listener.accept()
            stub = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                stub.connect(self.stub_path)
                if self._relay(client, stub):
                    return
            except OSError:
                pass   # QEMU is gone, or the debugger hung up: the next one may connect
            finally:
                client.close()
                stub.close()

    def _refuse(self, stub, payload, interrupted, acks):
        if acks:
            stub.sendall(b"+")   # QEMU waits for the debugger's ack of its request
        stub.sendall(packet(file_io_refusal(interrupted).encode()))
        self.refused.append(payload.decode("latin-1"))
        if len(self.refused) <= MAX_NOTES:
            call = payload[1:].split(b",", 1)[0].decode("latin-1")
            self.note(f"refused the guest's semihosting call '{call}' that asks the debugger for a host file "
                      "or command (the guest gets none)" + (": more are refused silently"
                                                            if len(self.refused) == MAX_NOTES else ""))

    def _hang_up(self, client):
        """QEMU hung up (it exited: its last packet, W, went to the debugger): the debugger reads
        the end of the stream, and may still write (its ack of W) until it closes its side.
        True when close() asked meanwhile."""
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        while True:
            ready, _, _ = select.select([client, self._wake_r], [], [])
            if self._wake_r in ready:
                return True
            try:
                if not client.recv(65536):
                    return False
            except OSError:
                return False

    def _relay(self, client, stub):
        """Relays one debugger connection until either side hangs up; True when close() asked."""
        from_client, from_stub = PacketSplitter(), PacketSplitter()
        acks = True           # QStartNoAckMode turns the +/- acks off
        asked_no_acks = False
        interrupted = False   # the debugger sent 0x03 and has not had its stop reply yet
        own_acks = 0          # QEMU's acks of our refusals, still to come (the debugger never sees them)
        while True:
            ready, _, _ = select.select([client, stub, self._wake_r], [], [])
            if self._wake_r in ready:
                return True
            if client in ready:
                data = client.recv(65536)
                if not data:
                    return False
                for unit, payload in from_client.feed(data):
                    if unit == b"\x03":
                        interrupted = True
                    elif payload == b"QStartNoAckMode":
                        asked_no_acks = True
                stub.sendall(data)   # the debugger's own bytes go to QEMU as they are
            if stub in ready:
                data = stub.recv(65536)
                if not data:
                    return self._hang_up(client)
                out = bytearray()
                for unit, payload in from_stub.feed(data):
                    if payload is None:
                        if own_acks and unit in (b"+", b"-"):
                            own_acks -= 1
                            if unit == b"-":   # QEMU asks for the refusal again
                                stub.sendall(packet(file_io_refusal(interrupted).encode()))
                                own_acks += 1
                            continue
                        out += unit
                        continue
                    if unit[:1] == b"$" and is_file_io_request(payload):
                        self._refuse(stub, payload, interrupted, acks)
                        own_acks += 1 if acks else 0
                        continue
                    if asked_no_acks:   # QEMU's answer to QStartNoAckMode
                        acks, asked_no_acks = payload != b"OK", False
                    if unit[:1] == b"$" and payload[:1] in (b"S", b"T", b"W", b"X"):
                        interrupted = False
                    out += unit
                if out:
                    client.sendall(bytes(out))
