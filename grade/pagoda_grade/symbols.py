"""The kernel ELF's symbols, demangled, for checking reported addresses against the truth."""
import functools
import subprocess


@functools.lru_cache(maxsize=4)
def symbols(kernel):
    """{demangled name: address} of every symbol with an address in @p kernel."""
    out = subprocess.run(["llvm-nm", "--demangle", "--defined-only", kernel],
                         capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        address, _, name = line.split(" ", 2)
        table.setdefault(name, int(address, 16))
    return table


FACT_PREFIX = "pagoda_fact_"


def fact(kernel, name):
    """The value the kernel exports as PAGODA_FACT(@p name, ...) (kernel/lib/facts.hpp): the
    absolute symbol pagoda_fact_<name>, e.g. fact(kernel, "window_base"). The layout constants
    and the page size are read this way instead of being copied into the grader."""
    table = symbols(kernel)
    if FACT_PREFIX + name not in table:
        known = sorted(n[len(FACT_PREFIX):] for n in table if n.startswith(FACT_PREFIX))
        raise AssertionError(f"{kernel} exports no fact '{name}' (symbol {FACT_PREFIX}{name}); "
                             f"it exports: {', '.join(known) or 'none'}")
    return table[FACT_PREFIX + name]


def address_of(kernel, name):
    """The address of the symbol called @p name (demangled, e.g. 'pagoda::kmain(pagoda::BootInfo
    const&)' or just 'pagoda::kmain'): exact match first, then the only name whose part before
    '(' matches."""
    table = symbols(kernel)
    if name in table:
        return table[name]
    matches = [a for n, a in table.items() if n.split("(")[0] == name]
    if len(matches) != 1:
        raise AssertionError(f"the kernel has {len(matches)} symbols called {name}")
    return matches[0]


@functools.lru_cache(maxsize=4)
def load_segments(kernel):
    """[(vaddr, paddr, memsz)] of the PT_LOAD segments of an ELF64 little-endian file."""
    import struct
    with open(kernel, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise AssertionError(f"{kernel} is not a little-endian ELF64 file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    segments = []
    for i in range(phnum):
        p_type, _, _, vaddr, paddr, _, memsz, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD
            segments.append((vaddr, paddr, memsz))
    return segments


def physical_of(kernel, va):
    """Where the loader put the byte the kernel links at @p va (its load address)."""
    for vaddr, paddr, memsz in load_segments(kernel):
        if vaddr <= va < vaddr + memsz:
            return paddr + (va - vaddr)
    raise AssertionError(f"{va:#x} is in no loadable segment of {kernel}")
