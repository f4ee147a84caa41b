"""`./pagoda run --memview`: a one-screen map of physical memory, coloured by owner, on demand.

On Ctrl-A M, `pagoda run` stops the guest through QEMU's gdbstub, reads the kernel's records from
guest RAM and walks every root itself, with the census GDB's `frames --map` prints
(pagoda_pt/frames.py), and from lab 7 on the swap slots and resident user frames (pagoda_pt/swap.py),
then lets the guest go on: nothing in the kernel takes part, so it cannot lie and a hung kernel
can still be pictured.

With --memview-at EVENT, Session holds one gdbstub connection for the run and draws the map each
time the guest reaches the event's kernel function (fork and exec: at its return; exit; or any
kernel function not inlined, NAME or NAME:return); Ctrl-A M goes through the same connection.

    snapshot(socket, kernel, arch, colour)   the map's lines (or one line saying why not)
    Session(socket, kernel, arch, events)    a connection for the run: maps at events and on request
    KeyFilter                                finds Ctrl-A M in what the user types
"""
import os
import select
import socket as sockets
import threading
import time
from dataclasses import dataclass

from pagoda_core import kernelinfo, paths
from pagoda_pt import contract as C
from pagoda_core.ui import PagodaError

HOTKEY = b"\x01"               # Ctrl-A: QEMU's own escape, so Ctrl-A M sits beside Ctrl-A X
HOTKEY_LETTERS = (b"m", b"M")
STRAY_REPLY_WAIT = 0.2         # seconds: how long a stop reply QEMU sends on its own may take


def _imports():
    from pagoda_grade import rsp  # (standard library only)
    from pagoda_pt import frames
    return rsp, frames


# Where each snapshot is also written as a page (pagoda_pt/picture.py), the last one kept.
PAGE = os.path.join(paths.BUILD, "memview.html")


def _census_lines(client, kernel, arch, colour, width):
    """The map's lines, read through @p client while the guest is stopped: the frames, then from
    lab 7 on the swap slots and the resident user frames (pagoda_pt/swap.py); the same moment is
    written to PAGE as the grader's picture of a failing test (a line says where)."""
    rsp, frames = _imports()
    from pagoda_pt import picture, roots, swap
    from pagoda_pt.isa import cpu_registers, cpus_of
    symbols = kernelinfo.elf(kernel).symbols
    # No registers: owners do not depend on them (the walk assumes 48-bit, 4-level tables, what
    # Pagoda uses on both ISAs).
    regs = {}
    read_phys = frames.cached(lambda pa, size: client.read_memory(pa, size, physical=True))
    try:
        census = frames.take_census(arch, read_phys, symbols.get, regs)
        lines = frames.format_map(census, width=width, colour=colour)
        if symbols.get(C.SWAP_STATE) is not None:      # (lab 7 on)
            found = swap.take_swap_census(arch, read_phys, symbols.get, [
                roots.KnownRoot(m.root, m.name, "process", m.pid) for m in census.processes])
            lines += swap.format_swap_map(found, width=width, colour=colour) if found is not None else []
        snap = picture.from_census(arch, read_phys, symbols.get, census, "Pagoda: ./pagoda run --memview, %s"
                                   % time.strftime("%H:%M:%S"))
        snap.cpus = cpus_of(arch, client.each_thread(cpu_registers(arch)))
        os.makedirs(os.path.dirname(PAGE), exist_ok=True)
        with open(PAGE, "w") as f:
            f.write(picture.to_html(snap))
        return lines + [f"memview: this moment as a page: {os.path.relpath(PAGE)}"]
    except frames.CensusError as err:
        return [f"memview: {err}"]
    except (rsp.RspError, ValueError) as err:
        return [f"memview: the kernel's records cannot be read yet ({err})"]


def _attach(client, rsp):
    client.handshake()          # QEMU stops the guest when a debugger connects ...
    while True:                 # ... and then says so once more, unasked: drop that reply
        try:
            client._read_packet(timeout=STRAY_REPLY_WAIT)
        except rsp.RspError:
            break


def snapshot(socket_path, kernel, arch, colour=False, width=64):
    """Stops the guest, takes the census, lets the guest go on; returns the map's lines."""
    rsp, _ = _imports()
    try:
        client = rsp.RspClient.connect_unix(socket_path, arch=arch, timeout=10)
    except OSError as err:
        return [f"memview: cannot reach QEMU's gdbstub ({err})"]
    try:
        _attach(client, rsp)
        return _census_lines(client, kernel, arch, colour, width)
    except rsp.RspError as err:
        return [f"memview: the gdbstub failed: {err}"]
    finally:
        client.detach()              # the guest runs on


@dataclass(frozen=True)
class Event:
    name: str          # what the user asked for ("fork", or a function name)
    function: str      # the kernel function it stops in
    at_return: bool    # at its return (else at its entry)
    what: str          # the heading of its map


# The named events: the kernel function behind each, and where in it the picture is taken.
EVENTS = {
    "fork": (C.FORK, True, "fork has copied or shared the parent's pages"),
    "exec": (C.EXEC, True, "exec has made the new program's space live"),
    "exit": (C.EXIT, False, "a process is ending (its memory still there)"),
}


def parse_event(text):
    """An Event from --memview-at's text: a named event, NAME (a kernel function's entry) or
    NAME:return."""
    if text in EVENTS:
        function, at_return, what = EVENTS[text]
        return Event(text, function, at_return, what)
    function, _, where = text.partition(":return")
    if not function or where or (":" in function and "::" not in function):
        raise PagodaError(f"--memview-at {text}: not an event ({', '.join(EVENTS)}) or a kernel "
                          "function name (NAME, or NAME:return)")
    return Event(text, function, text.endswith(":return"),
                 f"{function} {'returns' if text.endswith(':return') else 'is called'}")


class Session:
    """One gdbstub connection for the whole run: it stops the guest at each of @p events (and
    when request() asks, for Ctrl-A M), hands the map's lines to @p show(heading, lines), and
    lets the guest go on. start() once QEMU listens; it runs in a thread of its own."""

    WAIT_STEP = 0.2     # seconds between looks at the socket while the guest runs

    def __init__(self, socket_path, kernel, arch, events, show, colour=False, width=64):
        self.socket_path, self.kernel, self.arch = socket_path, kernel, arch
        self.events, self.show, self.colour, self.width = events, show, colour, width
        self.rsp, _ = _imports()
        from pagoda_grade.witness import ARCHES   # the ISA's registers (gdbstub names)
        self.model = ARCHES[arch]
        self.client = None
        self.entries = {}       # breakpoint address: the Event stopping at that function's entry
        self.returns = {}       # return breakpoint address: the Event waiting for it
        self.wanted = threading.Event()
        self.wake_r, self.wake_w = os.pipe()
        self.thread = None
        self.error = None

    def resolve(self):
        """The entry addresses of the events' functions (PagodaError for an unknown one)."""
        from pagoda_grade import symbols
        for event in self.events:
            try:
                self.entries[symbols.address_of(self.kernel, event.function)] = event
            except AssertionError as err:
                raise PagodaError(f"--memview-at {event.name}: {err}")

    def start(self, wait=30.0):
        """Connects (waiting up to @p wait seconds for QEMU's socket), puts the breakpoints in and
        lets the guest run."""
        end = time.monotonic() + wait
        while True:
            try:
                self.client = self.rsp.RspClient.connect_unix(self.socket_path, arch=self.arch, timeout=10)
                break
            except (FileNotFoundError, ConnectionRefusedError, sockets.error):
                if time.monotonic() > end:
                    raise PagodaError(f"QEMU's gdbstub never listened on {self.socket_path}")
                time.sleep(0.05)
        _attach(self.client, self.rsp)
        for address in self.entries:
            self.client.set_breakpoint(address)
        self.client.cont()
        self.thread = threading.Thread(target=self._run, name="memview", daemon=True)
        self.thread.start()

    def request(self):
        """Ctrl-A M: a map as soon as the guest can be stopped."""
        self.wanted.set()
        os.write(self.wake_w, b"x")

    def close(self):
        os.write(self.wake_w, b"q")
        if self.thread:
            self.thread.join(timeout=5)
        if self.client:
            self.client.close()
        for fd in (self.wake_r, self.wake_w):
            os.close(fd)

    def _return_address(self):
        """At a function's first instruction: where it returns to (x86_64: the word at RSP;
        AArch64: the link register)."""
        if self.model.link_register is None:
            sp = self.client.read_register(self.model.sp)
            return int.from_bytes(self.client.read_memory(sp, 8), "little")
        return self.client.read_register(self.model.link_register)

    def _go_on(self, pc):
        """Lets the guest run from a stop at @p pc (stepping over a breakpoint there first: QEMU
        would report it again without running it)."""
        if pc in self.entries or pc in self.returns:
            self.client.remove_breakpoint(pc)
            self.client.step()
            self.client.wait_stop()
            self.client.set_breakpoint(pc)
        self.client.cont()

    def _run(self):
        try:
            while True:
                ready, _, _ = select.select([self.client.sock, self.wake_r], [], [], self.WAIT_STEP)
                if self.wake_r in ready:
                    if os.read(self.wake_r, 64).endswith(b"q"):
                        return
                    if self.wanted.is_set() and self.client.running:
                        self.client.send_interrupt()
                if self.client.running and not self.client.stop_pending():
                    continue
                stop = self.client.wait_stop()
                if stop.exited:
                    return
                self._stopped()
        except (self.rsp.RspError, OSError) as err:
            self.error = str(err)      # QEMU ended: the run is over

    def _stopped(self):
        pc = self.client.read_register(self.model.pc)
        headings = []
        event = self.returns.get(pc)
        if event is not None:
            del self.returns[pc]
            self.client.remove_breakpoint(pc)
            headings.append(f"memview at {event.name}: {event.what}")
        event = self.entries.get(pc)
        if event is not None:
            if event.at_return:
                back = self._return_address()
                if back not in self.returns:
                    self.returns[back] = event
                    self.client.set_breakpoint(back)
            else:
                headings.append(f"memview at {event.name}: {event.what}")
        if self.wanted.is_set():
            self.wanted.clear()
            headings.append("memview (Ctrl-A M)")
        if headings:
            self.show(headings, _census_lines(self.client, self.kernel, self.arch, self.colour, self.width))
        self._go_on(pc)


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
