"""pagoda_gdb: Pagoda's GDB commands, a thin layer over pagoda_pt (which knows no GDB).

Loaded inside GDB (it imports the `gdb` module) by build/<arch>/kernel.elf-gdb.py, which
./pagoda gdb and ./pagoda run --gdb generate.  Modules, one per command group:

  registry.py  PagodaCommand, @command, register_all(), error handling (no tracebacks)
  args.py      argument splitting, options, GDB expressions -> addresses
  target.py    the QEMU gdbstub: registers, monitor commands, physical memory reads, the
               physical address width
  kernel.py    what the kernel's symbols tell: its image, the roots it publishes
  paging.py    pt-regs, pt-walk, pt-dump, pt-diff (with copy-on-write pages), pt-top, pt-ps
  cpus.py      cpus (each CPU's state, mode, PC and root), on_cpu() for pt-walk --cpu N
  memory.py    vma-list (a process's VMAs beside its mappings), frames (owners, reference
               counts), swap-slots (slots and their holders); fault-why's VMA line
  faults.py    fault-why (the command, QEMU's exception log); the facts of each architecture
               in faults_<arch>.py, its rules in pagoda_pt/diagnose_<arch>.py
  session.py   pagoda-attach, pagoda-serial, pagoda-help, parameters, the stop listener,
               the question `quit` asks in a ./pagoda gdb session
  printers.py  pretty printers: Result<T> shows only its live member, addresses in hex

A new command group (pt-check, proc-list, ...) is a new module whose
commands are PagodaCommand subclasses decorated with @command, imported below.
"""

from . import registry
from . import cpus, faults, memory, paging, printers, session, tempmap  # noqa: F401  (importing declares their commands)

__all__ = ["cpus", "faults", "memory", "paging", "printers", "register_all", "registry", "session", "tempmap"]


def register_all():
    """Registers every command, parameter and pretty printer (again is harmless); returns the
    command names."""
    session.setup()
    printers.register()
    return registry.register_all()
