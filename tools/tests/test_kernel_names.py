"""The names the kernel prints, read by every Python reader from the kernel ELF (PAGODA_FACT_NAMES,
kernel/lib/facts.hpp; pagoda_core/elffile.py; pagoda_pt/kernelnames.py) instead of a copy: the x86
exception names (arch/x86_64/traps.cpp), the AArch64 exception classes and fault statuses
(arch/aarch64/traps.cpp). A student reading the kernel's report and a tool's sentence sees one name
for one exception.

These tests read the built kernels: the reader returns the source's tables row for row; the vector
numbers the readers reason about (x86_facts.py) are the ones the kernel names so; the fault log, the
grader's harness and fault-why's rules print the kernel's words; an ELF without the tables, or
with a table that is not whole, is refused by name; and the ISA objects' table-address mask, the one
constant they keep, is the kernel's exported address_mask."""
import os
import re
import shutil
import subprocess

import pytest

from pagoda_core import build, elffile, faultlog, paths
from pagoda_pt import x86_facts
from pagoda_pt.isa import isa
from pagoda_pt.kernelnames import NO_NAMES, KernelNames

ROW = re.compile(r'\{\s*(\w+),\s*(?:"([^"]+)"|nullptr),\s*"([^"]+)"\s*\}')


@pytest.fixture(scope="module")
def x86_kernel():
    return build.build_kernel("x86_64")


@pytest.fixture(scope="module")
def aarch64_kernel():
    return build.build_kernel("aarch64")


def source_rows(arch, table):
    """[(key as written, mnemonic or None, name)] of the FactName table @p table in the source."""
    with open(os.path.join(paths.ROOT, "arch", arch, "traps.cpp")) as f:
        text = f.read()
    start = text.index("constexpr FactName %s[" % table)
    return ROW.findall(text[start:text.index("};", start)])


def test_the_x86_names_read_from_the_elf_are_the_kernel_s_table_row_for_row(x86_kernel):
    read = elffile.elf(x86_kernel).names("x86_exceptions")
    rows = source_rows("x86_64", "kExceptionNames")
    assert len(rows) == x86_facts.FIRST_INTERRUPT == len(read)
    assert [read[v] for v in range(len(rows))] == [(m, n) for _, m, n in rows]


def test_the_vectors_the_readers_reason_about_are_named_so_by_the_kernel(x86_kernel):
    names = KernelNames.read(isa("x86_64"), elffile.elf(x86_kernel).names)
    assert names.exception(x86_facts.PAGE_FAULT) == ("#PF", "page fault")
    assert names.exception(x86_facts.GENERAL_PROTECTION) == ("#GP", "general protection fault")
    assert names.exception(x86_facts.DOUBLE_FAULT) == ("#DF", "double fault")
    assert set(x86_facts.SELECTOR_VECTORS) <= set(names.exceptions)
    # A vector the kernel names by its number alone is reserved: the readers leave it out.
    assert 9 not in names.exceptions and 15 not in names.exceptions and 31 not in names.exceptions
    assert len(names.exceptions) == 23


@pytest.mark.parametrize("table,source", [("aarch64_exception_classes", "kClassNames"),
                                          ("aarch64_fault_statuses", "kFaultStatusNames")])
def test_the_aarch64_names_read_from_the_elf_are_the_kernel_s_tables(aarch64_kernel, table, source):
    read = elffile.elf(aarch64_kernel).names(table)
    rows = source_rows("aarch64", source)
    assert len(rows) >= 10
    assert read == {int(key, 0): (None, name) for key, _, name in rows}


def test_the_fault_log_describes_events_in_the_kernel_s_words(x86_kernel, aarch64_kernel):
    x86 = KernelNames.read(isa("x86_64"), elffile.elf(x86_kernel).names)
    line = ("     0: v=0e e=0002 i=0 cpl=0 IP=0008:ffffffff8010bcb1 pc=ffffffff8010bcb1 "
            "SP=0010:ffffffff8011c7f0 CR2=00005000c7220000\n")
    event = faultlog.parse(line, "x86_64", x86).events[0]
    assert (event.mnemonic, event.name) == ("#PF", "page fault")
    assert event.describe().startswith("#PF page fault (vector 14) at RIP 0xffffffff8010bcb1")
    reserved = faultlog.parse(line.replace("v=0e", "v=0f"), "x86_64", x86).events[0]
    assert (reserved.mnemonic, reserved.name) == ("#15", "reserved exception")
    # The one fallback, a log read with no kernel: by number, no name copied.
    bare = faultlog.parse(line, "x86_64").events[0]
    assert (bare.mnemonic, bare.name) == ("#14", "exception")

    a64 = KernelNames.read(isa("aarch64"), elffile.elf(aarch64_kernel).names)
    log = ("Taking exception 4 [Data Abort] on CPU 0\n...from EL1 to EL1\n...with ESR 0x25/0x96000010\n"
           "...with FAR 0xdead0000\n...with ELR 0x4008002c\n...to EL1 PC 0x40080a00 PSTATE 0x3c5\n")
    described = faultlog.parse(log, "aarch64", a64).events[0].describe()
    assert "(EC 0x25 data abort, same EL; synchronous external abort, read)" in described
    assert "(EC 0x25 other; reserved fault status, read)" in faultlog.parse(log, "aarch64").events[0].describe()
    assert faultlog.describe_abort(0x96000021, a64) == "alignment fault, read"
    assert faultlog.describe_abort(0x96000021) == "reserved fault status, read"


def test_fault_why_s_rules_name_the_vector_as_the_kernel_does(x86_kernel):
    from pagoda_pt.diagnose_x86_64 import exception_name, mnemonic
    names = KernelNames.read(isa("x86_64"), elffile.elf(x86_kernel).names)
    assert exception_name(14, names) == "#PF page fault (vector 14)"
    assert exception_name(9, names) == "reserved exception vector 9"
    assert exception_name(14, NO_NAMES) == "exception vector 14"
    assert mnemonic(13, names) == "#GP" and mnemonic(13, NO_NAMES) == "vector 13"


def test_the_grader_reads_the_names_of_the_kernel_it_boots(x86_kernel, tmp_path):
    from pagoda_grade.harness import Booter
    booter = Booter(x86_kernel, "x86_64", str(tmp_path), timeout=10)
    assert booter.kernel_names.exception(14) == ("#PF", "page fault")


def test_an_elf_without_the_tables_is_refused_by_name(x86_kernel, tmp_path):
    stripped = str(tmp_path / "kernel.elf")
    shutil.copy(x86_kernel, stripped)
    subprocess.run(["llvm-objcopy", "--strip-symbol=pagoda_names_x86_exceptions", stripped], check=True)
    with pytest.raises(elffile.ElfError, match="exports no table of names 'x86_exceptions'"):
        elffile.elf(stripped).names("x86_exceptions")
    with pytest.raises(elffile.ElfError, match="exports no table of names 'nosuch'.*it exports: x86_exceptions"):
        elffile.elf(x86_kernel).names("nosuch")


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_isa_objects_table_address_mask_is_the_kernel_s(arch, x86_kernel, aarch64_kernel):
    """The one constant the ISA objects keep a copy of, because they are built before any kernel is
    read: the next table's address in an entry, the kernel's exported fact address_mask."""
    kernel = {"x86_64": x86_kernel, "aarch64": aarch64_kernel}[arch]
    assert isa(arch).table_address_mask == elffile.elf(kernel).symbols["pagoda_fact_address_mask"]


def test_a_table_that_is_not_whole_in_the_file_is_refused(x86_kernel, tmp_path):
    damaged = str(tmp_path / "kernel.elf")
    shutil.copy(x86_kernel, damaged)
    image = elffile.Elf(x86_kernel)
    at = image._offset(image.symbols["pagoda_names_x86_exceptions"], 16) + 8   # FactNames.count
    with open(damaged, "r+b") as f:
        f.seek(at)
        f.write((1 << 20).to_bytes(8, "little"))
    with pytest.raises(elffile.ElfError, match="the table of names 'x86_exceptions' .* is not in the file"):
        elffile.elf(damaged).names("x86_exceptions")
