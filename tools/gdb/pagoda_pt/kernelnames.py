"""The kernel's tables of names, as the Python readers print them: the kernel's reports and the
tools' sentences name one exception with one name, because the tools read the kernel's own tables
from its ELF instead of keeping a copy.

    KernelNames.read(isa, read_table)   read_table(table) -> {key: (mnemonic or None, name)}
                                        (pagoda_core/elffile.py: Elf.names)
    NO_NAMES                            no kernel ELF to read: everything named by its number

Which tables an ISA's kernel exports is the ISA object's (Isa.name_tables, pagoda_pt/isa.py); the
kernel exports them with PAGODA_FACT_NAMES (kernel/lib/facts.hpp). Pure data: no ELF is read here,
so GDB, the grader and the CLI can all load it.

The one fallback, NO_NAMES, is for a reader given no kernel: a QEMU log or a synthetic machine
read on its own (a test's, or `faultlog.parse(text)` with no kernel), and GDB with no kernel file
or one built before the tables were exported. It copies no name: an x86 vector is then "#14
exception" ("vector 14" in fault-why), an exception class only its number ("EC 0x25 other"). Every
reader that has the kernel (fault-why in GDB, the grader, the fault log of a graded boot) reads the
kernel's names.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KernelNames:
    # x86_64: vector -> (mnemonic, name) of each defined exception. A vector the kernel names by
    # its number alone ("#9") is reserved and left out: a reader says "vector 9".
    exceptions: dict = field(default_factory=dict)
    # AArch64: exception class (ESR bits 31:26) -> name.
    classes: dict = field(default_factory=dict)
    # AArch64: an abort's fault status (ISS bits 5:0) -> name, for those that carry no level.
    fault_statuses: dict = field(default_factory=dict)

    @classmethod
    def read(cls, isa, read_table):
        """The names of @p isa's kernel tables (isa.name_tables: (role, table) pairs), each read
        with @p read_table(table)."""
        roles = {}
        for role, table in isa.name_tables:
            rows = read_table(table)
            if role == "exceptions":
                roles[role] = {key: (mnemonic, name) for key, (mnemonic, name) in rows.items()
                               if mnemonic != "#%d" % key}
            else:
                roles[role] = {key: name for key, (_, name) in rows.items()}
        return cls(**roles)

    def exception(self, vector):
        """(mnemonic, name) of x86 vector @p vector, or None (reserved, or no names read)."""
        return self.exceptions.get(vector)

    def class_name(self, ec, otherwise):
        """The name of exception class @p ec, or @p otherwise."""
        return self.classes.get(ec, otherwise)

    def fault_status(self, status, otherwise):
        """The name of fault status @p status (one with no level), or @p otherwise."""
        return self.fault_statuses.get(status, otherwise)


NO_NAMES = KernelNames()
