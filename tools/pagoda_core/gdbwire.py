"""What both clients of QEMU's gdbstub share (the grader's RspClient, grade/pagoda_grade/rsp.py, and
the StubGuard in front of the user's GDB, tools/pagoda/stubguard.py): a packet's framing, and the
guest's semihosting File-I/O requests, which neither ever carries out (stubguard.py says why).
Only the standard library (GDB's manual: "Remote Protocol", "File-I/O Remote Protocol Extension")."""
import re

# GDB's File-I/O errno values ("Errno Values").
FILEIO_EPERM = 1
FILEIO_EINTR = 4
# A File-I/O request: F, then the call's name in lower case (open, read, write, lseek, close,
# unlink, rename, stat, fstat, gettimeofday, isatty, system). A reply to the debugger's own
# vFile packets is F and a number instead.
_FILE_IO_REQUEST = re.compile(rb"F[a-z]")


def checksum(payload):
    """A packet's checksum: its payload's bytes summed, modulo 256."""
    return sum(payload) & 0xFF


def packet(payload):
    """@p payload (bytes or str) framed: $payload#checksum."""
    if isinstance(payload, str):
        payload = payload.encode()
    return b"$" + payload + b"#%02x" % checksum(payload)


def is_file_io_request(payload):
    """True when @p payload (bytes, a packet from the stub) asks the debugger for a host call."""
    return _FILE_IO_REQUEST.match(payload) is not None


def file_io_refusal(interrupted):
    """The payload that refuses a File-I/O request: the call fails with EPERM and the guest runs
    on; with @p interrupted (an interrupt is pending), EINTR with the Ctrl-C flag: QEMU stops the
    guest (stop reply T02) instead."""
    return f"F-1,{FILEIO_EINTR},C" if interrupted else f"F-1,{FILEIO_EPERM}"
