"""The GDB remote-protocol client (grade/pagoda_grade/rsp.py) against real QEMUs: x86_64 with the
kernel, AArch64 with a small program that loads known values into its translation registers; and
against a stub the test plays, for the File-I/O requests a guest's semihosting call makes."""
import shutil
import socket
import subprocess
import time

import pytest

from pagoda_core import build, qemu
from pagoda_grade import rsp
from pagoda_grade.symbols import address_of, physical_of, segments
from pagoda_core.speed import scaled  # noqa: E402  (limits for this machine: speed.py)

# AArch64: set TTBR0/TTBR1/TCR to known values, then spin at `parked` (MMU off: addresses are
# physical). QEMU's virt machine loads the image at 0x40080000.
AARCH64_PROGRAM = """
    .global _start
_start:
    ldr x1, =0x12345000
    msr ttbr0_el1, x1
    ldr x1, =0x6789a000
    msr ttbr1_el1, x1
    ldr x1, =0x25b5103510
    msr tcr_el1, x1
    isb
    ldr x2, =0x40081000
    ldr x3, =0x1122334455667788
    str x3, [x2]
    .global parked
parked:
    b parked
"""


@pytest.fixture(scope="module")
def kernel():
    return build.build_kernel()


def start(argv):
    """QEMU stopped at its first instruction, its gdbstub on a socketpair; (process, client)."""
    ours, theirs = socket.socketpair()
    proc = qemu.spawn(argv + ["-S", "-chardev", f"socket,id=g,fd={theirs.fileno()}", "-gdb", "chardev:g"],
                      pass_fds=(theirs.fileno(),), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    theirs.close()
    return proc, rsp.RspClient(ours, timeout=scaled(10))


def test_packets_frame_escape_and_run_length():
    assert rsp.frame("OK") == b"$OK#9a"
    assert rsp.escape(b"a#b$c}d*") == b"a}\x03b}\x04c}]d}\n"
    assert rsp.unescape(rsp.escape(b"a#b$c}d*")) == b"a#b$c}d*"
    assert rsp.unescape(b"0* ") == b"0000"   # '0' then 3 more (' ' is 32 = 29 + 3)


def test_x86_64_registers_memory_breakpoints(kernel):
    proc, client = start(qemu.command(kernel, "test=hang", arch="x86_64", serial="null"))
    try:
        assert client.handshake().signal == 5
        regs = client.registers()
        assert {"rip", "rsp", "cr0", "cr3", "cr4", "efer"} <= set(regs)
        assert regs["cr3"].number == regs["cr0"].number + 2   # target.xml order, comments skipped
        kmain = address_of(kernel, "pagoda::kmain")
        client.set_breakpoint(kmain)
        client.cont()
        assert client.wait_stop().signal == 5
        assert client.read_register("rip") == kmain
        cr3 = client.read_register("CR3")          # any case
        assert cr3 & 0xFFF == 0 and cr3 != 0        # the boot stub's root
        assert client.read_register("cr0") >> 31 & 1  # paging on
        # Several at once (the requests sent together, the replies read in order): the same values.
        names = ["rip", "rsp", "cr0", "cr3", "efer"]
        assert client.read_registers(names) == [client.read_register(n) for n in names]
        # Memory: virtual (through the guest's tables) and physical read the same bytes.
        virt = client.read_memory(kmain, 64)
        phys = client.read_memory(physical_of(kernel, kmain), 64, physical=True)
        text = next(s for s in segments(kernel) if s.vaddr <= kmain < s.vaddr + s.memsz)
        with open(kernel, "rb") as f:
            f.seek(text.offset + kmain - text.vaddr)
            assert virt == phys == f.read(64)
        assert client.read_memory(kmain, 5000)[:64] == virt   # more than one packet
        # Writes land, and physical mode is switched back off after each access.
        scratch = address_of(kernel, "pagoda_grader_inbox")
        client.write_memory(scratch, b"\x01\x02\x03\x04")
        assert client.read_memory(scratch, 4) == b"\x01\x02\x03\x04"
        client.remove_breakpoint(kmain)
        # Interrupt a running guest (the self-test hangs in hlt), once it had time to get there.
        client.cont()
        time.sleep(0.5)
        assert client.interrupt().signal in (2, 5)
        assert client.read_register("rip") != kmain
        with pytest.raises(rsp.RspError):
            client.read_register("no_such_register")
    finally:
        client.kill()
        qemu.kill_group(proc)


def test_detach_lets_the_guest_run_on(kernel):
    proc, client = start(qemu.command(kernel, "test=shutdown", arch="x86_64", serial="null",
                                      extra=["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]))
    try:
        client.handshake()
        client.set_breakpoint(address_of(kernel, "pagoda::kmain"))
        client.detach()                 # breakpoints go with the debugger
        assert proc.wait(timeout=scaled(20)) == qemu.EXIT_SUCCESS
    finally:
        qemu.kill_group(proc)


@pytest.mark.skipif(shutil.which("qemu-system-aarch64") is None, reason="no qemu-system-aarch64")
def test_aarch64_translation_registers_by_name(tmp_path):
    source, obj, elf = tmp_path / "p.S", tmp_path / "p.o", tmp_path / "p.elf"
    source.write_text(AARCH64_PROGRAM)
    subprocess.run(["clang", "--target=aarch64-none-elf", "-c", str(source), "-o", str(obj)], check=True)
    subprocess.run(["ld.lld", "-Ttext=0x40080000", str(obj), "-o", str(elf)], check=True)
    parked = address_of(str(elf), "parked")
    argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-nodefaults", "-display", "none",
            "-kernel", str(elf)]
    proc, client = start(argv)
    try:
        client.arch = "aarch64"
        client.handshake()
        assert {"ttbr0_el1", "ttbr1_el1", "tcr_el1", "pc", "sp"} <= set(client.registers())
        client.set_breakpoint(parked)
        client.cont()
        client.wait_stop()
        assert client.read_register("pc") == parked
        assert client.read_register("TTBR0_EL1") == 0x12345000
        assert client.read_register("TTBR1_EL1") == 0x6789A000
        assert client.read_register("TCR_EL1") == 0x25B5103510
        assert client.read_register("SCTLR_EL1") & 1 == 0     # QEMU 7.2 calls it 'SCTLR'; MMU off
        data = client.read_memory(0x40081000, 8, physical=True)
        assert int.from_bytes(data, "little") == 0x1122334455667788
    finally:
        client.kill()
        qemu.kill_group(proc)


def _stub_reads(sock, size, timeout):
    """The first @p size bytes the client sent the stub on @p sock."""
    sock.settimeout(timeout)
    got = b""
    while len(got) < size:
        data = sock.recv(4096)
        assert data, got
        got += data
    return got


@pytest.mark.parametrize("interrupted", [False, True])
def test_file_io_requests_are_refused_and_the_wait_goes_on(interrupted):
    """A guest's semihosting call reaches the debugger as a File-I/O request (AArch64 runs with
    -semihosting-config target=gdb): the client answers it with a failure itself, EPERM, or
    EINTR with the Ctrl-C flag while an interrupt is pending (QEMU then stops the guest with T02),
    records it, and goes on waiting for the stop."""
    ours, stub = socket.socketpair()
    client = rsp.RspClient(ours, timeout=scaled(10))
    try:
        stub.sendall(b"+")                         # the ack of the continue
        client.cont()
        if interrupted:
            client.send_interrupt()
        # The request, the ack of the client's answer, the stop.
        stub.sendall(rsp.frame("Fopen,40001000/d,601,1a4") + b"+" + rsp.frame("T02" if interrupted else "T05thread:01;"))
        reply = client.wait_stop()
        assert reply.signal == (2 if interrupted else 5)
        assert client.refused_file_io == ["Fopen,40001000/d,601,1a4"]
        # the continue, the interrupt, then the request's ack with the refusal; the stop's ack
        # goes with the client's next packet
        expected = (b"$c#63" + (b"\x03" if interrupted else b"") + b"+"
                    + rsp.frame("F-1,4,C" if interrupted else "F-1,1"))
        assert _stub_reads(stub, len(expected), scaled(10)) == expected
        client.cont()
        assert _stub_reads(stub, 6, scaled(10)) == b"+$c#63"
    finally:
        client.close()
        stub.close()


def test_a_refused_packet_is_sent_again_and_acks_ride_on_the_next_packet():
    """The client does not wait for the stub's +: it reads on to the reply, sends the packet
    again when the stub answers - instead, and sends its own + in front of its next packet."""
    ours, stub = socket.socketpair()
    client = rsp.RspClient(ours, timeout=scaled(10))
    try:
        stub.sendall(b"-+" + rsp.frame("0100000000000000"))
        client._registers = {"rip": rsp.Register("rip", 16, 64)}
        assert client.read_register("rip") == 1
        assert _stub_reads(stub, 10, scaled(10)) == rsp.frame("p10") * 2
        stub.sendall(b"+" + rsp.frame("OK"))
        assert client.request("D") == "OK"
        assert _stub_reads(stub, 6, scaled(10)) == b"+" + rsp.frame("D")
    finally:
        client.close()
        stub.close()
