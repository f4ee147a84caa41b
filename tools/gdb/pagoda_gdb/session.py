"""The debugging session around the commands: connecting to QEMU, the guest's serial log,
and what the last stop was.

  pagoda-attach SOCKET   connect, stop at the kernel's entry point, break on panics
  pagoda-serial [--all]  show the guest's serial output (new lines, or all of it)
  pagoda-help            list Pagoda's commands

Parameters (./pagoda gdb sets them):
  pagoda-serial-log PATH     the file QEMU writes the serial console to
  pagoda-serial-on-stop on   print new serial lines every time the machine stops
  pagoda-qemu-log PATH       QEMU's -d int log, read by fault-why (./pagoda gdb --int-log)
  pagoda-quit-stops-qemu on  quitting GDB ends QEMU (./pagoda gdb): `quit` asks so, once
"""

import os
import sys

import gdb

from pagoda_pt import contract as C
from pagoda_pt.isa import isa, no_result_address

from .args import parse
from .registry import CommandError, PagodaCommand, UsageError, command, commands, out

# Where a process dies of a fault the kernel did not resolve: the trap code calls it with the
# exception decoded, before the kill line is printed and the process's memory goes.
KILL_FUNCTION = C.USER_FAULT

_state = {"signal": None, "serial_offset": 0, "listening": False}
_params = {}


class _Parameter(gdb.Parameter):
    """A Pagoda setting of GDB's kind @p kind (gdb.PARAM_*), @p default at first."""

    def __init__(self, name, doc, kind, default):
        self.set_doc = "Set " + doc
        self.show_doc = "Show " + doc
        super().__init__(name, gdb.COMMAND_DATA, kind)
        self.value = default

    def get_set_string(self):
        return ""


QUIT_QUESTION = ("Quitting GDB ends this ./pagoda gdb session: QEMU stops and the machine's "
                 "state is lost. Quit anyway? ")
# Runs before GDB's own `quit` (also Ctrl-D); an error in it cancels the quit.
_QUIT_HOOK = "define hook-quit\npython __import__('pagoda_gdb').session.confirm_quit()\nend"


class _QuitParameter(_Parameter):
    """Set by ./pagoda gdb, where quitting GDB ends QEMU: `quit` then asks with those words
    (and only once), instead of GDB's "A debugging session is active ... Quit anyway?"."""

    def get_set_string(self):
        if self.value:
            _define_hooks([_QUIT_HOOK])
        return ""


def confirm_quit():
    """The hook of `quit`: asks whether to end the machine too, when GDB would ask at all (a
    live machine, `set confirm on`: never in batch mode); then GDB asks nothing more."""
    if not _param("pagoda-quit-stops-qemu") or not gdb.parameter("confirm"):
        return
    if gdb.selected_inferior().pid == 0:
        return
    if not _ask(QUIT_QUESTION):
        raise gdb.GdbError("Not confirmed: the session goes on.")
    gdb.execute("set confirm off", to_string=True)


def _ask(question):
    """A yes/no question at the terminal, as GDB's own queries work (GDB 13's Python has no
    gdb.query): without a terminal, or at end of input, the answer is yes."""
    if not sys.stdin.isatty():
        return True
    while True:
        try:
            answer = input(question + "(y or n) ").strip().lower()
        except EOFError:
            return True
        if answer[:1] in ("y", "n"):
            return answer[:1] == "y"
        gdb.write("Please answer y or n.\n")


def _param(name):
    p = _params.get(name)
    return p.value if p is not None else None


def serial_log_path():
    return _param("pagoda-serial-log") or ""


def qemu_log_path():
    return _param("pagoda-qemu-log") or ""


def last_stop_signal():
    """The signal name of the last stop GDB reported ('SIGTRAP', 'SIGQUIT' when QEMU paused
    at a shutdown/triple fault, ...), or None."""
    return _state["signal"]


def new_serial_output(everything=False):
    """Serial output written since the last call (or all of it), as text."""
    path = serial_log_path()
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            if not everything:
                f.seek(_state["serial_offset"])
            data = f.read()
            _state["serial_offset"] = f.tell()
    except OSError:
        return None
    return data.decode(errors="replace").replace("\r\n", "\n")


def _on_stop(event):
    finish_ended()
    _state["signal"] = getattr(event, "stop_signal", None) or \
        ("SIGTRAP" if isinstance(event, gdb.BreakpointEvent) else None)
    if not _param("pagoda-serial-on-stop"):
        return
    text = new_serial_output()
    if text:
        for line in text.rstrip("\n").split("\n"):
            gdb.write("[serial] " + line + "\n")


# `finish` from a breakpoint whose instruction heads a loop of its own function (with optimization
# the first line after the prologue can be an inlined loop: on AArch64 fork_process measures the
# parent's name there) would meet that breakpoint again at every turn of the loop. While a finish
# runs, such a breakpoint stops only where the stack pointer differs from the one finish started
# with (a call of the function from inside itself still stops); finish_ended() gives each its own
# condition back at the return (or the next stop). And on an ISA whose ABI does not keep the
# address of a result returned in memory (AArch64's x8: Pagoda's Result<T>), GDB reads the result
# at the return through whatever x8 then holds ("Cannot access memory at address 0x1": the finish
# fails and GDB skips its stop listeners); a watch at the return sets that register from the
# caller's own instructions first (Isa.result_address).
_FINISH_HOOKS = ("define hook-finish\npython __import__('pagoda_gdb').session.finish_starts()\nend",
                 "define hookpost-finish\npython __import__('pagoda_gdb').session.finish_ended()\nend")
_finish = {"saved": {}, "watch": None}
CALL_LOOKBACK = 8          # instructions before a call searched for where its result goes
MASK64 = (1 << 64) - 1


def _locations(bp):
    """The addresses a breakpoint @p bp is set at (its enabled locations)."""
    try:
        return {int(loc.address) for loc in bp.locations if loc.enabled and loc.address is not None}
    except AttributeError:       # GDB 12: no Breakpoint.locations
        try:
            return {int(sal.pc) for sal in gdb.decode_line(bp.location)[1] or ()}
        except (gdb.error, TypeError, RuntimeError):
            return set()


def finish_guard(breakpoints, pc, sp, locations=_locations):
    """{breakpoint number: its condition before} for the enabled code breakpoints of @p
    breakpoints set at @p pc (@p locations(bp): their addresses), each given the condition
    `$sp != SP` and its own: a turn of a loop at that very instruction, in the same frame, is
    passed over."""
    saved = {}
    for bp in breakpoints:
        if not bp.enabled or bp.type != gdb.BP_BREAKPOINT or pc not in locations(bp):
            continue
        saved[bp.number] = bp.condition
        guard = "$sp != %#x" % sp
        bp.condition = guard if bp.condition is None else "(%s) && (%s)" % (guard, bp.condition)
    return saved


class _ReturnWatch(gdb.Breakpoint):
    """An internal breakpoint at the return address of the frame a `finish` ends; it never stops.
    Reached with the caller's stack pointer (the finish is done), it gives the register that points
    at a result returned in memory its value (when the caller's code says it), before GDB reads
    the result, and has the guarded breakpoints' conditions given back after the stop."""

    def __init__(self, pc, sp, caller_code):
        super().__init__("*%#x" % pc, internal=True)
        self.silent = True
        self.sp, self.caller_code = sp, caller_code

    def stop(self):
        try:
            if int(gdb.parse_and_eval("$sp")) & MASK64 != self.sp:
                return False
            from . import target
            rule = isa(target.current_arch()).result_address
            set_to = rule(self.caller_code, lambda name: target.register(name)) if self.caller_code else None
            if set_to is not None:
                gdb.execute("set $%s = %#x" % set_to, to_string=True)
        except (gdb.error, ValueError, RuntimeError):
            pass
        gdb.post_event(finish_ended)
        return False


def _caller_code(caller):
    """The instructions up to the call @p caller (a GDB frame) is waiting on, the call last, when
    its function returns a result in memory that the ISA's ABI does not keep the address of; else
    None."""
    from . import target
    if isa(target.current_arch()).result_address is no_result_address:
        return None
    callee = caller.newer()
    function = callee.function() if callee is not None else None
    if function is None or callee.type() == gdb.INLINE_FRAME:
        return None
    result = function.type.target().strip_typedefs()
    if result.code not in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
        return None
    width = isa(target.current_arch()).breakpoint_bytes     # one instruction (fixed width)
    ret = int(caller.pc())
    code = caller.architecture().disassemble(ret - CALL_LOOKBACK * width, ret - width)
    return [insn["asm"] for insn in code]



def finish_starts():
    """hook-finish: guards the breakpoints at the stopped instruction while finish runs, and
    watches the return (above)."""
    finish_ended()
    try:
        selected = gdb.selected_frame()
        caller = selected.older()
        if caller is None:
            return     # finish refuses the outermost frame: nothing runs
        pc = int(gdb.newest_frame().pc())
        sp = int(gdb.parse_and_eval("$sp")) & MASK64
        ret, caller_sp = int(caller.pc()), int(caller.read_register("sp")) & MASK64
        code = _caller_code(caller)
    except (gdb.error, RuntimeError, ValueError):
        return
    _finish["saved"] = finish_guard(gdb.breakpoints(), pc, sp)
    if _finish["saved"] or code:
        try:
            _finish["watch"] = _ReturnWatch(ret, caller_sp, code)
        except (gdb.error, RuntimeError):
            _finish["watch"] = None
    if _finish["saved"]:
        out("(finish passes over breakpoint %s at this instruction while this frame loops on it; "
            "a call from inside still stops there)" % ", ".join(str(n) for n in sorted(_finish["saved"])))


def finish_ended():
    """Gives the breakpoints finish_starts() guarded their own conditions back and removes its
    watch (at the return, at the next stop, and after finish)."""
    saved, _finish["saved"] = _finish["saved"], {}
    watch, _finish["watch"] = _finish["watch"], None
    if watch is not None and watch.is_valid():
        try:
            watch.delete()
        except (gdb.error, RuntimeError):
            pass
    for bp in gdb.breakpoints() if saved else ():
        if bp.number in saved and bp.is_valid():
            try:
                bp.condition = saved[bp.number]
            except (gdb.error, RuntimeError):
                pass


def _define_hooks(definitions):
    """Defines GDB's hooks of commands (`define hook-CMD` texts), asking nothing."""
    confirm = gdb.parameter("confirm")
    gdb.execute("set confirm off", to_string=True)   # no "Redefine hook-...?"
    try:
        for text in definitions:
            gdb.execute(text, to_string=True)
    finally:
        gdb.execute("set confirm %s" % ("on" if confirm else "off"), to_string=True)


def setup():
    """Parameters, the stop listener and the hooks of `finish` (once)."""
    if not _params:
        _params["pagoda-serial-log"] = _Parameter(
            "pagoda-serial-log", "the file the guest's serial console is written to.", gdb.PARAM_OPTIONAL_FILENAME, "")
        _params["pagoda-qemu-log"] = _Parameter(
            "pagoda-qemu-log", "QEMU's -d int log file, read by fault-why.", gdb.PARAM_OPTIONAL_FILENAME, "")
        _params["pagoda-serial-on-stop"] = _Parameter(
            "pagoda-serial-on-stop", "whether new serial output is shown at every stop.", gdb.PARAM_BOOLEAN, True)
        _params["pagoda-quit-stops-qemu"] = _QuitParameter(
            "pagoda-quit-stops-qemu", "whether quitting GDB ends QEMU (quit asks so).", gdb.PARAM_BOOLEAN, False)
    if not _state["listening"]:
        gdb.events.stop.connect(_on_stop)
        _define_hooks(_FINISH_HOOKS)
        _state["listening"] = True


def elf_entry(path):
    """The entry point (e_entry) of the kernel ELF file at @p path (pagoda_core.elffile), or None."""
    from . import kernel
    elffile = kernel.core_module("elffile")
    try:
        return elffile.elf(path).file.header.e_entry
    except elffile.ElfError:
        return None


def _quiet(command_text):
    return gdb.execute(command_text, to_string=True)


@command
class Attach(PagodaCommand):
    """Connect to QEMU's gdbstub and stop at the kernel's first instruction.

Usage: pagoda-attach SOCKET [--no-entry] [--no-panic-break]
SOCKET is the gdbstub's unix socket path (or HOST:PORT).  QEMU started with -S is still
in its firmware on x86_64; this runs it to the ELF entry point (pvh_entry, 32-bit code with
paging off; on AArch64 QEMU starts at the entry, _start, EL1 with the MMU off) and sets a breakpoint where a panicking kernel ends up (pagoda::panic_end), so
a panic or an unhandled exception stops here with its stack intact.
--no-entry stays where QEMU is; --no-panic-break sets no panic breakpoint."""

    name = "pagoda-attach"
    usage = "pagoda-attach SOCKET [--no-entry] [--no-panic-break]"
    command_class = gdb.COMMAND_RUNNING

    def run(self, arg, from_tty):
        args = parse(arg, flags=("--no-entry", "--no-panic-break"), min_positional=1,
                     max_positional=1)
        inferior = gdb.selected_inferior()
        if inferior.pid != 0 and getattr(inferior, "connection", None) is not None:
            raise CommandError("already connected (use `disconnect` first)")
        socket = args.positional[0]
        if ":" not in socket and not os.path.exists(socket):
            raise UsageError("no gdbstub socket at %s" % socket)
        out("Connecting to QEMU at %s (it waits where the CPU starts after reset)" % socket)
        _quiet("target remote " + socket)
        if "--no-panic-break" not in args.flags:
            # (where a panicking kernel goes after printing its message and backtrace: kernel/core)
            try:
                _quiet("break " + C.PANIC_END)
                out("Breakpoint on %s: a panic stops there (then try bt, fault-why)" % C.PANIC_END)
            except gdb.error:
                pass
        progspace = gdb.current_progspace()
        entry = elf_entry(progspace.filename) if progspace.filename else None
        if "--no-entry" in args.flags or entry is None:
            gdb.execute("frame")
            return
        from . import target
        if target.register("pc") != entry:   # AArch64: QEMU already starts at the entry
            _quiet("tbreak *%#x" % entry)
            _quiet("continue")   # GDB prints where it stopped
        pc = target.register("pc")
        if pc != entry:
            out("The machine stopped at %s before reaching the kernel's entry point %#x."
                % ("an unknown address" if pc is None else "%#x" % pc, entry))
            return
        note = ""
        if gdb.selected_inferior().architecture().name() == "i386:x86-64":
            note = (" This is 32-bit code with paging off; GDB shows it as 64-bit code "
                    "(see docs/debugging.md).")
            try:
                target.probe_x86_pa_bits()   # CPUID, once, while it is harmless
            except (gdb.error, gdb.MemoryError):
                pass
        out("Stopped at the kernel's entry point %#x.%s pagoda-help lists Pagoda's commands."
            % (entry, note))


@command
class BreakKill(PagodaCommand):
    """Stop where a process is killed for a fault, before it is gone.

Usage: break-kill [PID]
Sets a breakpoint on pagoda::proc::user_fault, which the trap code calls for every exception
from user mode that nothing resolved (not a demand fault, not a copy-on-write fault), before
the kill line is printed and before the process's memory is freed.  With PID, only that
process.  At the stop the trap frame is on the stack: fault-why explains it (the process's
VMA included), bt shows the path, vma-list and pt-dump --user show its memory as it was.
`./pagoda gdb --stop-at-kill` sets it at the start."""

    name = "break-kill"
    usage = "break-kill [PID]"
    command_class = gdb.COMMAND_BREAKPOINTS

    def run(self, arg, from_tty):
        args = parse(arg, max_positional=1)
        condition = ""
        if args.positional:
            text = args.positional[0]
            if not text.isdigit():
                raise UsageError("PID must be a process id (a decimal number), not %r" % text)
            condition = " if %s()->pid == %s" % (C.CURRENT_PROCESS, text)
        try:
            _quiet("break %s%s" % (KILL_FUNCTION, condition))
        except gdb.error as err:
            raise CommandError("cannot set a breakpoint on %s (%s): is this Pagoda's kernel, "
                               "lab 3 or later?" % (KILL_FUNCTION, err)) from None
        out("Breakpoint on %s%s: a process killed for a fault stops there, before its kill line "
            "(then fault-why, bt, vma-list)" % (KILL_FUNCTION, " for pid %s" % args.positional[0]
                                               if args.positional else ""))


@command
class Gva2Gpa(PagodaCommand):
    """QEMU's own translation of a virtual address, as `monitor gva2gpa` gives it, PAN aside.

Usage: pagoda-gva2gpa VA
On AArch64 QEMU translates VA as the CPU would access it now; the kernel runs with PSTATE.PAN
set, so every user address is "Unmapped" to it while the CPU is stopped in the kernel.  This
clears PAN for the question and restores it after (the guest never runs in between).  On
x86_64 it is `monitor gva2gpa VA`.  pt-walk VA walks the tables themselves."""

    name = "pagoda-gva2gpa"
    usage = "pagoda-gva2gpa VA"

    def run(self, arg, from_tty):
        args = parse(arg, min_positional=1, max_positional=1)
        from . import target
        arch = target.require_stopped()
        va = int(gdb.parse_and_eval(args.positional[0])) & ((1 << 64) - 1)
        # QEMU's gva2gpa honours a guard some ISAs have (AArch64's PAN): lift it while asking.
        reg, bit = isa(arch).gva2gpa_masked_by or (None, 0)
        with target.register_bits(reg, bit, 0) as lifted:
            text = gdb.execute("monitor gva2gpa %#x" % va, to_string=True).strip()
        out(text + (" (asked with PSTATE.PAN cleared, then set again)" if lifted else ""))


@command
class Serial(PagodaCommand):
    """Show the guest's serial console output (new lines since last shown, or --all).

Usage: pagoda-serial [--all]"""

    name = "pagoda-serial"
    usage = "pagoda-serial [--all]"

    def run(self, arg, from_tty):
        args = parse(arg, flags=("--all",), max_positional=0)
        if not serial_log_path():
            raise CommandError("no serial log known: `set pagoda-serial-log PATH` (./pagoda "
                               "gdb sets it; with ./pagoda run --gdb the console is in that "
                               "terminal)")
        text = new_serial_output(everything="--all" in args.flags)
        if text is None:
            raise CommandError("cannot read %s" % serial_log_path())
        gdb.write(text if text else "(no new serial output)\n")
        if text and not text.endswith("\n"):
            gdb.write("\n")


@command
class Help(PagodaCommand):
    """List Pagoda's GDB commands.

Usage: pagoda-help"""

    name = "pagoda-help"
    usage = "pagoda-help"
    command_class = gdb.COMMAND_SUPPORT

    def run(self, arg, from_tty):
        parse(arg, max_positional=0)
        rows = commands()
        width = max(len(usage) for _, usage, _ in rows)
        out("Pagoda's GDB helpers (`help NAME` for details; docs/debugging.md for a tour):")
        for _, usage, summary in rows:
            out("  %-*s  %s" % (width, usage, summary))
