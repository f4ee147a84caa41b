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
