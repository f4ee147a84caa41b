"""The machine on the other end of `target remote`: QEMU's gdbstub.

  require_stopped()        CommandError unless connected and stopped; the current_arch()
  current_arch()           'x86_64' or 'aarch64' (pagoda_pt's names)
  register(name)           an integer, read in the innermost frame (None if GDB lacks it)
  paging_regs(arch)        the dict pagoda_pt's walk/dump take (CR0/CR3/CR4/EFER, TTBRs...)
  monitor(command)         text of a QEMU monitor command (`monitor info registers`)
  x86_system_regs()        TR, GDT, IDT, CR2, EFER parsed from `monitor info registers`
  pa_bits(arch)            the CPU's physical address width and where it came from
  physical_memory()        context manager yielding read_phys(pa, size) -> bytes

The physical address width decides which entry bits are reserved.  On x86_64 it is CPUID
0x80000008 EAX[7:0]: pagoda-attach executes CPUID in the guest once, at the kernel's entry
point (probe_x86_pa_bits: paging is off there, so the two bytes of the instruction can be put
at RIP and taken away again); a session attached elsewhere asks QEMU for the CPU's phys-bits
property, which is what QEMU answers CPUID with.  On AArch64 it is ID_AA64MMFR0_EL1.PARange, a
register GDB reads.  Without any of these the architectural maximum is assumed, and said.

Physical reads: QEMU's gdbstub has a physical-memory mode (`maintenance packet
Qqemu.PhyMemMode:1`) in which GDB's ordinary memory reads take physical addresses.  We turn
it on around the reads and ALWAYS turn it off again (finally), so later `x` and `print`
commands see virtual memory.  A gdbstub without that mode gets `monitor xp` instead.
In physical mode QEMU reads addresses with no RAM behind them as zeros instead of failing,
so reads are checked against the RAM ranges of `monitor info mtree -f` first.
"""

import re
from contextlib import contextmanager

import gdb

from pagoda_pt.walker import canonical_arch
from pagoda_pt.isa import isa

from .registry import CommandError

NOT_CONNECTED = ("not connected to QEMU: start a session with ./pagoda gdb, or run "
                 "./pagoda run --gdb and then `target remote SOCKET` (the path it prints)")


def require_stopped():
    """Raises CommandError unless GDB is connected to a target that is stopped; returns its ISA
    (current_arch())."""
    inferior = gdb.selected_inferior()
    connection = getattr(inferior, "connection", None)
    if inferior.pid == 0 or connection is None:
        raise CommandError(NOT_CONNECTED)
    thread = gdb.selected_thread()
    if thread is None:
        raise CommandError(NOT_CONNECTED)
    if thread.is_running():
        raise CommandError("the machine is running: interrupt it first (Ctrl-C)")
    return current_arch()


def current_arch():
    name = gdb.selected_inferior().architecture().name()
    try:
        return canonical_arch(name)
    except ValueError:
        raise CommandError("architecture %s is not supported (x86_64 or aarch64)" % name) from None


def register(name):
    """Register @p name of the innermost frame as an unsigned integer, or None when GDB
    does not know that register."""
    try:
        value = gdb.newest_frame().read_register(name)
    except (ValueError, gdb.error):
        return None
    from .args import value_to_int
    try:
        return value_to_int(value)
    except gdb.error:
        return None  # <unavailable>


@contextmanager
def register_bits(name, mask, value):
    """Register @p name with its @p mask bits set to @p value for the body, then as it was; yields
    whether it was changed (not when it already had them, or GDB cannot read it). The guest must
    not run in between except for a call GDB makes (which leaves the registers as it found them)."""
    saved = register(name) if name else None
    changed = saved is not None and saved & mask != value
    if changed:
        gdb.execute("set $%s = %#x" % (name, (saved & ~mask) | value), to_string=True)
    try:
        yield changed
    finally:
        if changed:
            gdb.execute("set $%s = %#x" % (name, saved), to_string=True)


def monitor(command):
    """Output of a QEMU monitor command, with the monitor's \\r\\n turned into \\n."""
    return gdb.execute("monitor " + command, to_string=True).replace("\r\n", "\n")


# ---- x86_64 -------------------------------------------------------------------------------

_SEGMENT = re.compile(r"^(ES|CS|SS|DS|FS|GS|LDT|TR)\s*=([0-9a-f]{4}) ([0-9a-f]+) ([0-9a-f]+) "
                      r"([0-9a-f]+)(.*)$", re.M)
_TABLE = re.compile(r"^(GDT|IDT)\s*=\s*([0-9a-f]+) ([0-9a-f]+)", re.M)
_VALUE = re.compile(r"\b(CR0|CR2|CR3|CR4|EFER|RIP|RSP)=([0-9a-f]+)")


def parse_x86_monitor_registers(text):
    """{'TR': {'selector', 'base', 'limit', 'flags', 'text'}, 'IDT': {'base', 'limit'}, 'GDT':
    ..., 'CR2': int, 'EFER': int, ...} from the text of `monitor info registers`."""
    regs = {}
    for m in _SEGMENT.finditer(text):
        regs[m.group(1)] = {"selector": int(m.group(2), 16), "base": int(m.group(3), 16),
                            "limit": int(m.group(4), 16), "flags": int(m.group(5), 16),
                            "text": m.group(6).strip()}
    for m in _TABLE.finditer(text):
        regs[m.group(1)] = {"base": int(m.group(2), 16), "limit": int(m.group(3), 16)}
    for m in _VALUE.finditer(text):
        regs.setdefault(m.group(1), int(m.group(2), 16))
    return regs


def x86_system_regs():
    return parse_x86_monitor_registers(monitor("info registers"))


def system_regs(arch):
    """The ISA's translation registers (Isa.system_registers, spelled as GDB spells them) as
    integers, None for one nobody can read: GDB's registers first, then an older gdbstub's name
    for one (Isa.register_aliases), then QEMU's monitor `info registers` where it shows them
    (Isa.registers_from). CommandError when a register a walk needs stays unknown."""
    model = isa(arch)
    regs = {name: register(name) for name in model.system_registers}
    for name, older in model.register_aliases:
        if regs[name] is None:
            regs[name] = register(older)
    monitor_too = model.registers_from == "monitor"
    if monitor_too and any(value is None for value in regs.values()):
        fallback = x86_system_regs()
        for name in regs:
            if regs[name] is None:
                regs[name] = fallback.get(name.upper())
    missing = [name for name in model.required_registers if regs[name] is None]
    if missing:
        raise CommandError(("cannot read %s from GDB or the QEMU monitor" if monitor_too else
                            "GDB cannot read %s from this target") % ", ".join(missing))
    return regs


def x86_control_regs():
    """{'cr0', 'cr2', 'cr3', 'cr4', 'efer'} as integers; GDB's registers first, the monitor's
    `info registers` for any GDB does not have."""
    return system_regs("x86_64")


def paging_regs(arch):
    """The register dictionary pagoda_pt's walk/dump/diff take."""
    model = isa(arch)
    return {k.lower(): v for k, v in system_regs(model).items()
            if v is not None and k.lower() in model.translation}


def paging_off_reason(arch, regs):
    """None when the CPU translates with tables pagoda_pt can walk; otherwise a sentence."""
    return isa(arch).paging_off(regs)


# ---- the physical address width -----------------------------------------------------------

CPUID_ADDRESS_SIZES = 0x80000008
_CPUID = b"\x0f\xa2"
_pa_bits_cache = {}


def _connection_key():
    connection = getattr(gdb.selected_inferior(), "connection", None)
    return getattr(connection, "num", None), getattr(connection, "details", None)


def probe_x86_pa_bits():
    """Executes CPUID 0x80000008 in the guest, at the current instruction, and remembers EAX's
    low byte for this connection.  Only where that is harmless: stopped, paging off (RIP is a
    physical address in RAM).  Restores the two bytes and every register it changes; returns
    the width, or None when it did not run."""
    regs = x86_control_regs()
    if regs["cr0"] & (1 << 31):
        return None
    names = ("rax", "rbx", "rcx", "rdx", "rip")
    saved = {name: register(name) for name in names}
    if None in saved.values():
        return None
    inferior = gdb.selected_inferior()
    pc = saved["rip"]
    original = bytes(inferior.read_memory(pc, len(_CPUID)))
    bits = None
    try:
        inferior.write_memory(pc, _CPUID)
        gdb.execute("set $rax = %#x" % CPUID_ADDRESS_SIZES, to_string=True)
        gdb.execute("set $rcx = 0", to_string=True)
        gdb.execute("stepi", to_string=True)
        if register("rip") == pc + len(_CPUID):
            bits = register("rax") & 0xFF
    finally:
        inferior.write_memory(pc, original)
        for name in names:
            gdb.execute("set $%s = %#x" % (name, saved[name]), to_string=True)
        gdb.execute("maintenance flush dcache", to_string=True)
    if bits:
        _pa_bits_cache[_connection_key()] = (bits, "CPUID 0x80000008, run in the guest")
    return bits or None


def _qemu_phys_bits():
    try:
        text = monitor("qom-get /machine/unattached/device[0] phys-bits").strip()
    except gdb.error:
        return None
    return int(text) if text.isdigit() and 32 <= int(text) <= 52 else None


def pa_bits(arch):
    """(width, source) of the CPU's physical addresses, e.g. (40, "CPUID 0x80000008, ...")."""
    key = _connection_key()
    if key in _pa_bits_cache:
        return _pa_bits_cache[key]
    found = None
    model = isa(arch)
    if model.phys_bits_from_qemu:
        bits = _qemu_phys_bits()
        if bits:
            found = (bits, "QEMU's CPU phys-bits, what its CPUID 0x80000008 reports")
    elif model.pa_bits_register:
        value = register(model.pa_bits_register)
        bits = model.format.pa_bits_decode(value) if value is not None else None
        if bits:
            found = (bits, "%s.PARange" % model.pa_bits_register)
    if found is None:
        return model.format.MAX_PA_BITS, "assumed: the architectural maximum (the CPU did not say)"
    _pa_bits_cache[key] = found
    return found


# ---- physical memory ----------------------------------------------------------------------

class PhysicalReadError(Exception):
    pass


def _packet(text):
    """Sends one remote-protocol packet; returns the reply's text ('' when unsupported)."""
    output = gdb.execute("maintenance packet " + text, to_string=True)
    m = re.search(r'received: "(.*)"', output)
    return m.group(1) if m else ""


def phys_mode():
    """QEMU's answer to qqemu.PhyMemMode: '1' physical, '0' virtual, '' unsupported."""
    return _packet("qqemu.PhyMemMode")


_MTREE_LINE = re.compile(r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio -?\d+, (ram|rom|romd)\)", re.M)
_ram_cache = {}


def ram_ranges():
    """[(start, end_exclusive)] of guest RAM/ROM in the CPU's view, from `info mtree -f`;
    None when QEMU's output cannot be understood (then nothing is checked)."""
    key = str(getattr(gdb.selected_inferior(), "connection", None))
    if key in _ram_cache:
        return _ram_cache[key]
    ranges = None
    try:
        text = monitor("info mtree -f")
    except gdb.error:
        text = ""
    # The flat view of the CPU's address space ("memory", "cpu-memory-0"); QEMU lists the
    # views in no fixed order.
    for view in re.split(r"^FlatView #\d+\n", text, flags=re.M):
        if 'AS "cpu-memory-0"' in view or 'AS "memory"' in view:
            found = [(int(a, 16), int(b, 16) + 1) for a, b, _ in _MTREE_LINE.findall(view)]
            if found:
                ranges = sorted(found)
            break
    _ram_cache[key] = ranges
    return ranges


def _in_ram(ranges, pa, size):
    if ranges is None:
        return True
    end = pa + size
    for start, stop in ranges:
        if start <= pa < stop:
            if end <= stop:
                return True
            pa = stop           # continues in the next range?
    return False


def _xp_reader(pa, size):
    """Reads through `monitor xp`, 8 bytes per value (size must be a multiple of 8)."""
    count = (size + 7) // 8
    text = monitor("xp /%dgx %#x" % (count, pa))
    values = []
    for line in text.splitlines():
        if "Cannot access memory" in line:
            raise PhysicalReadError("no memory at %s" % line.split(":")[0])
        values.extend(int(v, 16) for v in re.findall(r"0x([0-9a-f]+)", line.split(":", 1)[-1]))
    if len(values) < count:
        raise PhysicalReadError("QEMU's xp returned %d of %d values" % (len(values), count))
    return b"".join(v.to_bytes(8, "little") for v in values[:count])[:size]


@contextmanager
def physical_memory():
    """with physical_memory() as read_phys: read_phys(pa, size) -> bytes.

    Switches QEMU's gdbstub to physical addresses for the duration and always switches it
    back (also when the body raises), then drops GDB's memory cache."""
    ranges = ram_ranges()
    inferior = gdb.selected_inferior()
    already_physical = phys_mode() == "1"      # the user switched it on: leave it on
    use_packet = already_physical or _packet("Qqemu.PhyMemMode:1") == "OK"

    def read_phys(pa, size):
        if not _in_ram(ranges, pa, size):
            raise PhysicalReadError("%#x is not guest RAM" % pa)
        if not use_packet:
            return _xp_reader(pa, size)
        try:
            return bytes(inferior.read_memory(pa, size))
        except gdb.MemoryError as err:
            raise PhysicalReadError(str(err)) from None

    try:
        yield read_phys
    finally:
        if use_packet and not already_physical:
            try:
                restored = _packet("Qqemu.PhyMemMode:0") == "OK"
                gdb.execute("maintenance flush dcache", to_string=True)
            except gdb.error:
                restored = False
            if not restored:
                gdb.write("warning: could not switch QEMU's gdbstub back to virtual addresses; "
                          "run: maintenance packet Qqemu.PhyMemMode:0\n", gdb.STDERR)
