"""The x86 exception names are written twice, once for each language that reports them: the
kernel's (arch/x86_64/traps.cpp, kExceptionNames, for its own reports) and the Python readers'
(tools/gdb/pagoda_pt/x86_facts.py, for fault-why, the fault log and the grader). These tests
keep the two the same, so that a student reading the kernel's report and a tool's sentence sees
one name for one exception."""
import os
import re

from pagoda_pt import x86_facts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAPS = os.path.join(ROOT, "arch", "x86_64", "traps.cpp")
ENTRY = re.compile(r'\{\s*"([^"]+)",\s*"([^"]+)"\s*\}')


def kernel_names():
    """{vector: (mnemonic, name)} of the kernel's table, in its order."""
    with open(TRAPS) as f:
        text = f.read()
    start = text.index("kExceptionNames[kExceptionCount] = {")
    body = text[start:text.index("};", start)]
    return dict(enumerate(ENTRY.findall(body)))


def test_the_kernel_names_every_exception_vector():
    assert len(kernel_names()) == x86_facts.FIRST_INTERRUPT


def test_the_python_readers_name_each_exception_as_the_kernel_does():
    # A vector the kernel names by its number alone ("#9", "#15", ...) is reserved: the Python
    # table leaves it out (a reader says "vector 9"); every other is in both, in the same words.
    kernel = {v: names for v, names in kernel_names().items() if names[0] != f"#{v}"}
    assert kernel == x86_facts.EXCEPTIONS
