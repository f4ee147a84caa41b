"""Argument handling shared by the commands: splitting, options, and GDB expressions.

Arguments are GDB expressions (`$rip`, `&pagoda::kmain`, `frame->rip + 8`), so they are not
split like a shell would: quotes are kept (GDB needs 'quoted::symbol' names), and the words
that are not options are joined back into one expression.  Only words that start with `--`
and name a known option are options.
"""

import re

import gdb

from pagoda_pt import contract as C

from .registry import UsageError

ADDRESS_MASK = (1 << 64) - 1

# A word: quoted strings (kept whole, quotes included) or runs of non-space characters.
_WORD = re.compile(r"""(?:"[^"]*"|'[^']*'|[^\s"'])+""")


def split_words(arg):
    """'pt-walk  $rsp + 8 --root "&tables[1]"' -> ['$rsp', '+', '8', '--root', '"&tables[1]"']."""
    words = _WORD.findall(arg)
    rest = _WORD.sub("", arg)
    if rest.strip():
        raise UsageError("unbalanced quotes in %r" % arg.strip())
    return words


def _unquote(word):
    """Strips one pair of double quotes (they group an expression that contains spaces)."""
    if len(word) >= 2 and word[0] == word[-1] == '"':
        return word[1:-1]
    return word


class Parsed:
    """The result of parse(): `.positional` (list of expression strings), `.flags` (set of
    flag names) and `.options` (dict of option name -> expression string)."""

    def __init__(self):
        self.positional = []
        self.flags = set()
        self.options = {}


def parse(arg, flags=(), options=(), min_positional=0, max_positional=None, join=False):
    """Parses @p arg.  With join=True every non-option word forms ONE positional expression
    (so `pt-walk $rsp + 8` works); otherwise each word is one positional argument."""
    result = Parsed()
    loose = []
    words = split_words(arg)
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word.partition("=")
            if name in flags and not eq:
                result.flags.add(name)
            elif name in options:
                if not eq:
                    i += 1
                    if i >= len(words):
                        raise UsageError("%s needs a value" % name)
                    value = words[i]
                if name in result.options:
                    raise UsageError("%s given twice" % name)
                result.options[name] = _unquote(value)
            else:
                raise UsageError("unknown option %s" % name)
        else:
            loose.append(word)
        i += 1
    if join:
        result.positional = [" ".join(_unquote(w) for w in loose)] if loose else []
    else:
        result.positional = [_unquote(w) for w in loose]
    count = len(result.positional)
    if count < min_positional:
        raise UsageError("missing argument" if min_positional - count == 1 else
                         "missing arguments")
    if max_positional is not None and count > max_positional:
        raise UsageError("too many arguments: %s" % " ".join(result.positional[max_positional:]))
    return result


def _uint64_type():
    return gdb.lookup_type("unsigned long long")


def value_to_int(value):
    """An integer from a gdb.Value of a register, pointer, integer, enum or flags type."""
    try:
        return int(value) & ADDRESS_MASK
    except (gdb.error, TypeError, ValueError):
        return int(value.cast(_uint64_type())) & ADDRESS_MASK


_ADDRESSABLE = None


def _addressable_codes():
    global _ADDRESSABLE
    if _ADDRESSABLE is None:
        _ADDRESSABLE = {gdb.TYPE_CODE_ARRAY, gdb.TYPE_CODE_FUNC}
    return _ADDRESSABLE


_ADDRESS_TYPE = re.compile(r"^%s<(.*)>$" % re.escape(C.ADDRESS))
_ADDRESS_KINDS = {t: t.split("::")[-1][:-len("Tag")] for t in C.ADDRESS_TAGS}   # ('Phys', 'Virt')


def address_kind(value):
    """'Phys' or 'Virt' for a pagoda::PhysAddr / pagoda::VirtAddr value, else None."""
    tag = value.type.strip_typedefs().unqualified().tag or ""
    m = _ADDRESS_TYPE.match(tag)
    return _ADDRESS_KINDS.get(m.group(1)) if m else None


def address(expr, what="address", want=None):
    """Evaluates the GDB expression @p expr to a 64-bit integer.

    Arrays and functions stand for their address (as in C); a symbol without debug
    information (assembly labels such as boot_pml4) stands for its address too.  The kernel's
    own address types count by their value: a pagoda::PhysAddr or pagoda::VirtAddr is the
    address it holds, but one of the wrong kind for @p want ('phys' or 'virt') is refused.
    Anything else that is not a number (a struct, say) is a UsageError."""
    expr = expr.strip()
    if not expr:
        raise UsageError("missing %s" % what)
    try:
        value = gdb.parse_and_eval(expr)
    except gdb.error as err:
        message = str(err)
        if "unknown type" in message:
            value = gdb.parse_and_eval("&(%s)" % expr)
        else:
            raise UsageError("cannot evaluate %s %r: %s%s" % (what, expr, message.rstrip("."),
                                                             _symbol_hint(message))) from None
    code = value.type.strip_typedefs().code
    if code == gdb.TYPE_CODE_REF:
        value = value.referenced_value()
        code = value.type.strip_typedefs().code
    kind = address_kind(value) if code == gdb.TYPE_CODE_STRUCT else None
    if kind is not None:
        if want == "phys" and kind == "Virt":
            raise UsageError("%s %r is a VirtAddr: a physical address is needed here"
                             % (what, expr))
        if want == "virt" and kind == "Phys":
            raise UsageError("%s %r is a PhysAddr: a virtual address is needed here"
                             % (what, expr))
        return value_to_int(value["value_"])
    if code in _addressable_codes():
        value = value.address
        code = gdb.TYPE_CODE_PTR
    if code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION, gdb.TYPE_CODE_VOID) or value is None:
        raise UsageError("%s %r is not a number or pointer (type %s)" % (what, expr, value.type))
    try:
        return value_to_int(value)
    except gdb.error as err:
        raise UsageError("%s %r: %s" % (what, expr, err)) from None


_NO_SYMBOL = re.compile(r'No symbol "([A-Za-z_][A-Za-z0-9_]*)" in current context')


def _symbol_hint(message):
    """For 'No symbol "kmain"': suggests the namespace-qualified name GDB knows."""
    m = _NO_SYMBOL.search(message)
    if not m:
        return ""
    try:
        _, sals = gdb.decode_line(m.group(1))
    except gdb.error:
        return ""
    for sal in sals or ():
        block = gdb.block_for_pc(sal.pc) if sal.pc else None
        while block is not None and block.function is None:
            block = block.superblock
        function = block.function if block is not None else None
        if function is not None:
            name = function.name.split("(")[0]
            if name != m.group(1):
                return " (C++ names need their namespace: did you mean %s?)" % name
    return ""
