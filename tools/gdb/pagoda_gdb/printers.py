"""Pretty printers for kernel types whose raw layout misleads in GDB.

pagoda::Result<T> keeps its value and its error in one union, so GDB's default display shows
both (`{error_ = pagoda::Error::NoMemory, ok_ = true}` for a success). These printers show
only the member that is live, and print PhysAddr/VirtAddr as plain hexadecimal addresses.
"""
import re

import gdb  # noqa: F401  (only inside GDB)
import gdb.printing

from pagoda_pt import contract as C

from .args import address_kind

_RESULT = re.compile(r"^%s<.*>$" % re.escape(C.RESULT))


class ResultPrinter:
    def __init__(self, value):
        self.value = value

    def to_string(self):
        if bool(self.value["ok_"]):
            fields = [f.name for f in self.value.type.strip_typedefs().fields()]
            if "value_" in fields:
                return f"ok: {self.value['value_']}"
            return "ok"
        return f"error: {self.value['error_']}"


class AddressPrinter:
    def __init__(self, value, kind):
        self.value = value
        self.kind = kind

    def to_string(self):
        return f"{self.kind}Addr {int(self.value['value_']):#x}"


def _lookup(value):
    name = value.type.strip_typedefs().unqualified().tag
    if not name:
        return None
    if _RESULT.match(name):
        return ResultPrinter(value)
    kind = address_kind(value)
    if kind:
        return AddressPrinter(value, kind)
    return None


def register(objfile=None):
    """Adds the printers (once) to @p objfile, or globally."""
    target = objfile if objfile is not None else gdb
    if _lookup not in target.pretty_printers:
        target.pretty_printers.append(_lookup)
