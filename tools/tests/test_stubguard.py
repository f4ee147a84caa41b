"""The guard between a debugger and QEMU's gdbstub (tools/pagoda/stubguard.py): the guest's
File-I/O requests stop at it, everything else passes both ways as it is. Here the gdbstub is a
socket this test plays; `./pagoda gdb` with a real GDB and QEMU is grade/harness_tests/test_semihost.py."""
import socket

import pytest

from pagoda_core.speed import scaled
from pagoda.stubguard import PacketSplitter, StubGuard, packet

REQUEST = packet(b"Fopen,40001000/d,601,1a4")


def read_exactly(sock, size):
    """The next @p size bytes from @p sock (a test failure when it hangs up first)."""
    got = b""
    while len(got) < size:
        data = sock.recv(size - len(got))
        assert data, f"hung up after {got!r}"
        got += data
    return got


@pytest.fixture
def rig(tmp_path):
    """(guard, the debugger's connection, the stub's end of the guard's connection)."""
    stub_path, guard_path = str(tmp_path / "qemu.sock"), str(tmp_path / "gdb.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(stub_path)
    server.listen(1)
    notes = []
    guard = StubGuard(guard_path, stub_path, note=notes.append)
    guard.start()
    debugger = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    debugger.connect(guard_path)
    server.settimeout(scaled(10))
    stub, _ = server.accept()
    for s in (debugger, stub):
        s.settimeout(scaled(10))
    guard.notes = notes
    yield guard, debugger, stub
    debugger.close()
    stub.close()
    server.close()
    guard.close()


def test_packets_are_split_across_reads():
    splitter = PacketSplitter()
    assert splitter.feed(b"+$T05#b") == [(b"+", None)]
    assert splitter.feed(b"9\x03$O") == [(b"$T05#b9", b"T05"), (b"\x03", None)]
    assert splitter.feed(b"K#9a") == [(b"$OK#9a", b"OK")]


def test_the_debugger_never_sees_a_file_io_request(rig):
    guard, debugger, stub = rig
    debugger.sendall(b"$c#63")
    assert read_exactly(stub, 5) == b"$c#63"                      # the debugger's bytes pass
    stub.sendall(b"+" + REQUEST)                                   # the ack, then the guest's open
    assert read_exactly(stub, 1 + len(packet(b"F-1,1"))) == b"+" + packet(b"F-1,1")   # refused: EPERM
    stub.sendall(b"+" + packet(b"T05thread:01;"))                  # QEMU acks the refusal; the stop
    assert read_exactly(debugger, 1 + len(packet(b"T05thread:01;"))) == b"+" + packet(b"T05thread:01;")
    assert guard.refused == ["Fopen,40001000/d,601,1a4"]
    assert len(guard.notes) == 1 and "'open'" in guard.notes[0]


def test_a_pending_interrupt_gets_its_stop(rig):
    guard, debugger, stub = rig
    debugger.sendall(b"$c#63")
    assert read_exactly(stub, 5) == b"$c#63"
    stub.sendall(b"+")
    assert read_exactly(debugger, 1) == b"+"
    debugger.sendall(b"\x03")                                      # Ctrl-C while the guest runs
    assert read_exactly(stub, 1) == b"\x03"
    stub.sendall(REQUEST)                                          # ... and its call came first
    assert read_exactly(stub, 1 + len(packet(b"F-1,4,C"))) == b"+" + packet(b"F-1,4,C")
    stub.sendall(b"+" + packet(b"T02"))
    assert read_exactly(debugger, len(packet(b"T02"))) == packet(b"T02")


def test_without_acks_nothing_is_acked(rig):
    guard, debugger, stub = rig
    debugger.sendall(packet(b"QStartNoAckMode"))
    read_exactly(stub, len(packet(b"QStartNoAckMode")))
    stub.sendall(b"+" + packet(b"OK"))
    assert read_exactly(debugger, 1 + len(packet(b"OK"))) == b"+" + packet(b"OK")
    debugger.sendall(b"+" + b"$c#63")                              # GDB's last ack, then continue
    read_exactly(stub, 6)
    stub.sendall(REQUEST)
    assert read_exactly(stub, len(packet(b"F-1,1"))) == packet(b"F-1,1")   # no ack before it
    stub.sendall(packet(b"T05"))
    assert read_exactly(debugger, len(packet(b"T05"))) == packet(b"T05")


def test_the_debugger_may_ack_the_exit_after_qemu_is_gone(rig):
    """QEMU sends W (the guest exited) and exits; GDB acks W after reading it. The guard ends the
    stream (the debugger sees its end) but takes that ack: GDB said "Remote communication error.
    Target disconnected.: Broken pipe." where the guard closed at once."""
    guard, debugger, stub = rig
    stub.sendall(packet(b"W21"))
    stub.close()
    assert read_exactly(debugger, len(packet(b"W21"))) == packet(b"W21")
    assert debugger.recv(1) == b""         # the end of the stream, after W
    debugger.sendall(b"+")                 # no BrokenPipeError
