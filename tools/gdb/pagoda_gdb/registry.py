"""How Pagoda's GDB commands are declared, registered and report errors.

Every command is a subclass of PagodaCommand decorated with @command; register_all()
instantiates them (GDB registers a command when its object is created).  A command module
only has to be imported by pagoda_gdb/__init__.py to take part.

Errors never reach the user as Python tracebacks:
  UsageError       bad arguments        -> 'pt-walk: <why> (usage: pt-walk VA [--root PA])'
  CommandError     a clear refusal      -> 'pt-walk: <why>'  (not connected, paging off, ...)
  gdb.error        from GDB itself      -> 'pt-walk: <GDB's message>'
  anything else    a bug in the helper  -> one line, plus the traceback with
                                           `set pagoda-debug on`
"""

import traceback

import gdb

_COMMANDS = []        # PagodaCommand subclasses, in declaration order
_INSTANCES = {}       # name -> the registered instance


class UsageError(Exception):
    """The command's arguments are wrong; the message says which."""


class CommandError(Exception):
    """The command cannot do its job in the current state (one line for the user)."""


def command(cls):
    """Class decorator: register_all() will create (and so register) this command."""
    _COMMANDS.append(cls)
    return cls


class DebugParameter(gdb.Parameter):
    """Show Python tracebacks when a Pagoda helper fails unexpectedly."""

    set_doc = "Set whether Pagoda's GDB helpers print Python tracebacks on internal errors."
    show_doc = "Show whether Pagoda's GDB helpers print Python tracebacks on internal errors."

    def __init__(self):
        super().__init__("pagoda-debug", gdb.COMMAND_MAINTENANCE, gdb.PARAM_BOOLEAN)
        self.value = False

    def get_set_string(self):
        return ""

    def get_show_string(self, svalue):
        return "Pagoda helper tracebacks are %s." % svalue


_debug = None


def debug_enabled():
    return bool(_debug is not None and _debug.value)


class PagodaCommand(gdb.Command):
    """Base class: subclasses set `name`, `usage` and a docstring (GDB's `help` text) and
    implement run(arg, from_tty)."""

    name = None
    usage = ""
    command_class = gdb.COMMAND_DATA

    def __init__(self):
        super().__init__(self.name, self.command_class)

    def run(self, arg, from_tty):
        raise NotImplementedError

    @classmethod
    def help_text(cls):
        return (cls.__doc__ or cls.usage).strip()

    def invoke(self, arg, from_tty):
        if any(word in ("-h", "--help") for word in (arg or "").split()):
            out(self.help_text())
            return
        try:
            self.run(arg or "", from_tty)
        except UsageError as err:
            raise gdb.GdbError("%s: %s (usage: %s)" % (self.name, err, self.usage)) from None
        except CommandError as err:
            raise gdb.GdbError("%s: %s" % (self.name, err)) from None
        except gdb.GdbError:
            raise
        except gdb.error as err:
            raise gdb.GdbError("%s: %s" % (self.name, err)) from None
        except KeyboardInterrupt:
            raise
        except Exception as err:  # noqa: BLE001 - a helper bug must not look like a crash
            if debug_enabled():
                gdb.write(traceback.format_exc(), gdb.STDERR)
            raise gdb.GdbError("%s: internal error: %s: %s (`set pagoda-debug on` shows the "
                               "traceback)" % (self.name, type(err).__name__, err)) from None


def out(text):
    """Prints text and a newline to GDB's standard output."""
    gdb.write(text + "\n")


def register_all():
    """Creates every declared command once; calling it again changes nothing."""
    global _debug
    if _debug is None:
        _debug = DebugParameter()
    for cls in _COMMANDS:
        if cls.name not in _INSTANCES:
            _INSTANCES[cls.name] = cls()
    return sorted(_INSTANCES)


def commands():
    """(name, usage, one-line summary) of every declared command, in declaration order."""
    rows = []
    for cls in _COMMANDS:
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        rows.append((cls.name, cls.usage, summary))
    return rows
