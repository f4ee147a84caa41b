"""The kernel's include rules: layers point down only, and a few facts are written once.

Checked by `./pagoda test` (tools/tests/test_layers.py) on the real tree:

  lib       kernel/lib includes nothing from core/, mm/, boot/ or the arch (it is the bottom);
  mm        kernel/mm reaches the arch only through its seam headers
            (arch_impl/page_table_format.hpp, address_space.hpp, layout.hpp), never arch/<isa>/;
  labs      the page-table layer (page_table, cursor, table_iterator, consistency_batch,
            table_memory, address_space, walk, perms, addr, page) never reaches core/lab.hpp, even
            through other headers: its lab skeletons return errors that carry their message;
  seam      core/arch.hpp, which everything includes, does not pull in the memory manager;
  facts     the page size and the x86 address mask are written only where they are defined
            (the format and arch/x86_64/page_defs.h), not as literals elsewhere in the kernel
            or in the user programs (user/lib/arch/<isa>/syscall_arch.hpp gives them kPageSize).

Includes are `#include "path"` lines, resolved like the compiler does for the kernel: against
kernel/, the tree's root, and arch/<isa>/include/.
"""
import os
import re

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)
SOURCE_SUFFIXES = (".hpp", ".h", ".cpp")
MM_ARCH_SEAMS = ("arch_impl/page_table_format.hpp", "arch_impl/address_space.hpp", "arch_impl/layout.hpp")
PAGE_TABLE_LAYER = ("page_table", "cursor", "table_iterator", "consistency_batch", "table_memory",
                    "address_space", "walk", "perms", "addr", "page")
# Literals of the page size and of the x86 physical-address mask, and where they may appear.
FACT_LITERALS = re.compile(r"\b4096\b|\b4\s*\*\s*KiB\b|0x0*1000\b(?!')|0x000f'?ffff'?ffff'?f000")
FACT_HOMES = ("arch/x86_64/page_defs.h", "arch/x86_64/page_table_format.hpp")


def _sources(root, top):
    base = os.path.join(root, top)
    for dirpath, _, files in os.walk(base):
        for name in sorted(files):
            if name.endswith(SOURCE_SUFFIXES):
                yield os.path.relpath(os.path.join(dirpath, name), root)


def includes(root, rel):
    """The quoted includes of @p rel (a path relative to @p root)."""
    with open(os.path.join(root, rel), errors="replace") as f:
        return INCLUDE.findall(f.read())


def resolve(root, name, arches):
    """The file @p name (as written in an #include) refers to, relative to @p root, or None."""
    for base in ["kernel", ""] + [os.path.join("arch", a, "include") for a in arches]:
        rel = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(os.path.join(root, rel)):
            return rel
    return None


def reaches(root, start, arches):
    """Every file @p start includes, directly or not (paths relative to @p root)."""
    seen, todo = set(), [start]
    while todo:
        rel = todo.pop()
        for name in includes(root, rel):
            target = resolve(root, name, arches)
            if target and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def check(root):
    """Every violation of the rules above in the tree at @p root, as 'file: problem' lines."""
    arches = sorted(d for d in os.listdir(os.path.join(root, "arch"))) if os.path.isdir(os.path.join(root, "arch")) else []
    problems = []
    for rel in _sources(root, "kernel/lib"):
        for name in includes(root, rel):
            if name.split("/")[0] in ("core", "mm", "boot", "arch", "arch_impl"):
                problems.append(f"{rel}: includes {name}: kernel/lib includes nothing from the layers above it")
    for rel in _sources(root, "kernel/mm"):
        for name in includes(root, rel):
            if name.startswith("arch/") or (name.startswith("arch_impl/") and name not in MM_ARCH_SEAMS):
                problems.append(f"{rel}: includes {name}: kernel/mm reaches the arch only through "
                                f"{', '.join(MM_ARCH_SEAMS)}")
        stem = os.path.splitext(os.path.basename(rel))[0]
        if stem in PAGE_TABLE_LAYER and "kernel/core/lab.hpp" in reaches(root, rel, arches):
            problems.append(f"{rel}: reaches core/lab.hpp: the page-table layer's skeletons return errors "
                            "with their message instead")
    seam = os.path.join("kernel", "core", "arch.hpp")
    if os.path.isfile(os.path.join(root, seam)):
        pulled = sorted(r for r in reaches(root, seam, arches) if r.startswith("kernel/mm/"))
        if pulled:
            problems.append(f"{seam}: pulls in {', '.join(pulled)}: the CPU seam must not drag in the memory manager")
    for top in ("kernel", "arch", "user"):
        for rel in _sources(root, top):
            if rel.startswith("kernel/tests/") or rel in FACT_HOMES:
                continue
            with open(os.path.join(root, rel), errors="replace") as f:
                for number, line in enumerate(f, 1):
                    code = line.split("//", 1)[0]
                    m = FACT_LITERALS.search(code)
                    if m:
                        problems.append(f"{rel}:{number}: '{m[0]}' is the page size or the address mask, "
                                        f"written again: use kPageSize or the format's kAddressMask")
    return problems
