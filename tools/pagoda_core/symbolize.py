"""Naming the code addresses a kernel report prints, using the kernel's ELF symbols.

The kernel prints bare addresses in a fixed shape (backtrace lines `  #3 0x0000000000100a3a`
and the faulting instruction's report line, `  RIP 0x...` on x86_64, `  ELR 0x...` on AArch64);
this module appends ` <function+0xoff> file:line` to them,
using llvm-symbolizer on the ELF that was booted.
"""
import re
import shutil
import subprocess

from . import elffile

_BACKTRACE = re.compile(r"^(\s*#\d+ )(0x[0-9a-fA-F]+)\s*$")
_PC = re.compile(r"^(\s*(?:RIP|ELR) )(0x[0-9a-fA-F]+)")


def _short_name(function):
    """Drops the parameter list and template arguments of a demangled C++ name."""
    depth, out = 0, []
    for c in function.replace("(anonymous namespace)", "{anonymous}"):
        if c == "<":
            depth += 1
        elif c == ">" and depth:
            depth -= 1
        elif c == "(" and depth == 0 and out:
            break
        elif depth == 0:
            out.append(c)
    name = "".join(out).strip()
    return name.split(" ")[-1] if " " in name else name  # drop a leading return type


def code_ranges(elf):
    """[(start, end)] of the executable loadable segments of the ELF file @p elf; [] when it
    cannot be read as one."""
    try:
        return [(s.vaddr, s.vaddr + s.memsz) for s in elffile.elf(elf).segments if s.flags & 1]
    except elffile.ElfError:
        return []


class Symbolizer:
    def __init__(self, elf):
        self.elf = elf
        self.cache = {}
        self.available = shutil.which("llvm-symbolizer") is not None
        self.code = code_ranges(elf)

    def lookup(self, addresses):
        """Maps each address to 'function file:line' (or None when unknown, or outside the ELF's
        code: a user program's address is never named after a kernel symbol). Where the compiler
        inlined code, the function is the real one the address lies in (the outermost frame), at
        the line of that function the inlined code came from."""
        for a in addresses:
            if self.code and not any(lo <= a < hi for lo, hi in self.code):
                self.cache[a] = None
        todo = sorted({a for a in addresses if a not in self.cache})
        if todo and self.available:
            out = subprocess.run(
                ["llvm-symbolizer", f"--obj={self.elf}", "--demangle", "--inlines", "--output-style=LLVM"],
                input="\n".join(hex(a) for a in todo) + "\n", capture_output=True, text=True).stdout
            blocks = [b.splitlines() for b in out.strip("\n").split("\n\n")]
            for address, block in zip(todo, blocks):
                if len(block) < 2:
                    continue
                function, location = _short_name(block[-2]), block[-1]
                if function == "??":
                    self.cache[address] = None
                    continue
                location = re.sub(r"^.*/(kernel|arch)/", r"\1/", location)
                location = re.sub(r"^(.*:\d+):\d+$", r"\1", location)  # no column
                self.cache[address] = f"{function} {location}" if not location.startswith("??") else function
        return {a: self.cache.get(a) for a in addresses}

    def annotate(self, lines):
        """Returns @p lines with symbol names appended to backtrace and RIP/ELR lines."""
        wanted = {}
        for i, line in enumerate(lines):
            m = _BACKTRACE.match(line)
            if m:  # a return address: the call is the instruction before it
                wanted[i] = (int(m[2], 16), int(m[2], 16) - 1)
                continue
            m = _PC.match(line)
            if m:
                wanted[i] = (int(m[2], 16), int(m[2], 16))
        if not wanted:
            return list(lines)
        names = self.lookup([lookup for _, lookup in wanted.values()])
        out = list(lines)
        for i, (_, lookup) in wanted.items():
            if names.get(lookup):
                out[i] = f"{lines[i].rstrip()}  <{names[lookup]}>"
        return out
