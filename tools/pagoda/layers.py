"""The kernel's include rules: layers point down only, and a few facts are written once.

Checked by tools/tests/test_layers.py on the real tree:

  lib       kernel/lib includes nothing from the arch (nor from the kernel's other folders);
  order     the kernel's folders include only their own and those below (KERNEL_FOLDERS, bottom
            first); kernel/tests may include anything; a file in no listed folder is a problem;
  mm        kernel/mm reaches the arch only through MM_ARCH_SEAMS, never arch/<isa>/;
  mm order  kernel/mm's folders likewise (MM_FOLDERS, bottom first; "" is kernel/mm itself);
  labs      the page-table layer (PAGE_TABLE_LAYER) never reaches core/lab.hpp, even through
            other headers: its lab skeletons return errors that carry their message;
  seam      core/arch.hpp, which everything includes, does not pull in the memory manager;
  facts     the page size and the x86 address mask are written only in FACT_HOMES, not as
            literals elsewhere in the kernel or the user programs.

`#include "path"` lines are resolved as the compiler does: against kernel/, the tree's root and
arch/<isa>/include/. check_python holds the Python side's rules (below).
"""
import ast
import graphlib
import os
import re

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)
SOURCE_SUFFIXES = (".hpp", ".h", ".cpp")
MM_ARCH_SEAMS = ("arch_impl/page_table_format.hpp", "arch_impl/address_space.hpp", "arch_impl/layout.hpp")
# The kernel's folders, bottom first. mm/base, the memory vocabulary (addresses, pages, layout,
# permissions), sits below the rest of mm: the boot memory map and the self-tests speak it.
KERNEL_FOLDERS = ("lib", "mm/base", "boot", "core", "dev", "mm", "proc", "main")
KERNEL_UNCHECKED = ("tests",)   # host tests over the kernel's code: they may include anything
# kernel/mm's folders, bottom first; "" is kernel/mm itself, the top.
MM_FOLDERS = ("base", "pt", "phys", "space", "tempmap", "swap", "")
# The page-table layer: kernel/mm's folders up to pt (its vocabulary, base, below it).
PAGE_TABLE_LAYER = MM_FOLDERS[:MM_FOLDERS.index("pt") + 1]
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


def mm_folder(path):
    """The folder of kernel/mm that @p path (a file under kernel/mm, or an include "mm/...") is in:
    "" for kernel/mm itself."""
    parts = path.split("/")
    parts = parts[parts.index("mm") + 1:]
    return parts[0] if len(parts) > 1 else ""


def _mm_order_problems(rel, names):
    """The includes @p names of @p rel (a file under kernel/mm) that point up MM_FOLDERS."""
    own = mm_folder(rel)
    if own not in MM_FOLDERS:
        return [f"{rel}: kernel/mm/{own}/ is no folder of kernel/mm's order ({_mm_order()})"]
    problems = []
    for name in names:
        if not name.startswith("mm/"):
            continue
        target = mm_folder(name)
        if target not in MM_FOLDERS or MM_FOLDERS.index(target) > MM_FOLDERS.index(own):
            problems.append(f"{rel}: includes {name}: kernel/mm's folders include only their own and "
                            f"those below ({_mm_order()})")
    return problems


def kernel_folder(path):
    """The folder of KERNEL_FOLDERS that @p path (a file under kernel/, or an include written
    relative to kernel/) is in, or its first folder when that is none of them."""
    parts = path.split("/")
    if parts[0] == "kernel":
        parts = parts[1:]
    if len(parts) > 2 and "/".join(parts[:2]) in KERNEL_FOLDERS:
        return "/".join(parts[:2])
    return parts[0]


def _kernel_order_problems(rel, names):
    """The includes @p names of @p rel (a file under kernel/) that point up KERNEL_FOLDERS."""
    own = kernel_folder(rel)
    if own in KERNEL_UNCHECKED:
        return []
    if own not in KERNEL_FOLDERS:
        return [f"{rel}: kernel/{own}/ is no folder of the kernel's order ({_kernel_order()})"]
    problems = []
    for name in names:
        target = kernel_folder(name)
        if target in KERNEL_FOLDERS and KERNEL_FOLDERS.index(target) > KERNEL_FOLDERS.index(own):
            problems.append(f"{rel}: includes {name}: the kernel's folders include only their own and those "
                            f"below ({_kernel_order()})")
    return problems


def _kernel_order():
    return " < ".join(KERNEL_FOLDERS)


def _mm_order():
    return " < ".join(f"mm/{f}" if f else "mm" for f in MM_FOLDERS)


def check(root):
    """Every violation of the rules above in the tree at @p root, as 'file: problem' lines."""
    arches = sorted(d for d in os.listdir(os.path.join(root, "arch"))) if os.path.isdir(os.path.join(root, "arch")) else []
    problems = []
    for rel in _sources(root, "kernel/lib"):
        for name in includes(root, rel):
            if name.split("/")[0] in ("arch", "arch_impl"):   # the kernel's folders: the order below
                problems.append(f"{rel}: includes {name}: kernel/lib includes nothing from the layers above it")
    for rel in _sources(root, "kernel/mm"):
        for name in includes(root, rel):
            if name.startswith("arch/") or (name.startswith("arch_impl/") and name not in MM_ARCH_SEAMS):
                problems.append(f"{rel}: includes {name}: kernel/mm reaches the arch only through "
                                f"{', '.join(MM_ARCH_SEAMS)}")
        problems.extend(_mm_order_problems(rel, includes(root, rel)))
        if mm_folder(rel) in PAGE_TABLE_LAYER and "kernel/core/lab.hpp" in reaches(root, rel, arches):
            problems.append(f"{rel}: reaches core/lab.hpp: the page-table layer's skeletons return errors "
                            "with their message instead")
    for rel in _sources(root, "kernel"):
        problems.extend(_kernel_order_problems(rel, includes(root, rel)))
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


# ---- Python: packages point down, no circles, the path set only at the entry points -------------
#
#   pagoda      tools/pagoda: ./pagoda's commands (the top)
#   grader      grade/pagoda_grade and grade/*.py (the graded tests, conftest.py)
#   gdb         tools/gdb/pagoda_gdb: the GDB commands
#   core        tools/pagoda_core: the machinery the commands and the grader share
#   pt          tools/gdb/pagoda_pt: the pure page-table model (the bottom)
#
# A package imports only the packages listed for it below (its own modules aside); the grader
# never imports a command, the library neither a command nor the grader. Imports inside functions
# count like the others: a circle made lazy is still a circle. Tests (tools/tests, tools/gdb/tests,
# grade/harness_tests) may import anything, but no module, test or not, edits sys.path: the
# entry points alone do (./pagoda, which is no .py file, the conftest.py files, and GDB's script
# loader, which is text that tools/pagoda/gdb.py writes).

PYTHON_PACKAGES = {   # package: (folder, the packages it may import)
    "pagoda": ("tools/pagoda", ("pagoda_core", "pagoda_grade", "pagoda_pt")),
    "pagoda_grade": ("grade/pagoda_grade", ("pagoda_core", "pagoda_pt")),
    "pagoda_gdb": ("tools/gdb/pagoda_gdb", ("pagoda_core", "pagoda_pt")),
    "pagoda_core": ("tools/pagoda_core", ("pagoda_pt",)),
    "pagoda_pt": ("tools/gdb/pagoda_pt", ()),
}
# Folders of top-level modules: (folder, the layer its modules belong to, or None for tests).
PYTHON_MODULE_DIRS = (("grade", "pagoda_grade"), ("grade/hidden", "pagoda_grade"), ("tools/tests", None),
                      ("grade/harness_tests", None), ("tools/gdb/tests", None))
PATH_EDITS = ("insert", "append", "extend", "remove", "clear", "pop")
# ISA names a package module must not compare against (==, !=, in, startswith, match case), nor
# key a table by ({"x86_64": ...}, dict(aarch64=...)): each per-ISA fact is written once, on the
# ISA's object (pagoda_pt/isa.py) or on what it names (Isa.machine, Isa.log_parser), and the
# module looks the object up (pagoda_pt.isa.isa(name), witness.ARCHES[name]) and asks it.
# Comparing against a format module's ARCH constant (x86_64.ARCH) counts the same.
ISA_NAMES = ("x86_64", "aarch64", "x86", "arm64", "amd64", "i386", "arm")
ISA_MODULES = ("x86_64", "aarch64")


def python_modules(root):
    """{file (relative to @p root): (dotted name, its layer: a package of PYTHON_PACKAGES, or None
    for a test)} of every Python module the rules above cover."""
    found = {}
    for package, (folder, _) in PYTHON_PACKAGES.items():
        base = os.path.join(root, folder)
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            if name.endswith(".py"):
                dotted = package if name == "__init__.py" else f"{package}.{name[:-3]}"
                found[f"{folder}/{name}"] = (dotted, package)
    for folder, layer in PYTHON_MODULE_DIRS:
        base = os.path.join(root, folder)
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            if name.endswith(".py"):
                found[f"{folder}/{name}"] = (name[:-3], layer)
    return found


def _parsed(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return ast.parse(f.read(), rel)


def python_imports(root, rel, dotted):
    """[(line, dotted name imported, names imported from it)] of every import in @p rel, at any
    depth (in functions too), relative imports made absolute."""
    tree = _parsed(root, rel)
    package = dotted if rel.endswith("/__init__.py") else dotted.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name, ()) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[:len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((node.lineno, base, tuple(a.name for a in node.names)))
    return found


def python_graph(root):
    """(modules, {file: {file it imports: line}}) over the modules python_modules() finds."""
    modules = python_modules(root)
    by_name = {}
    for rel, (dotted, _) in modules.items():
        # A test's helper (labtree, ptbuild) is imported by its bare name from its own folder.
        by_name.setdefault(dotted, []).append(rel)

    def resolve(importer, name):
        choices = by_name.get(name, [])
        same = [r for r in choices if os.path.dirname(r) == os.path.dirname(importer)]
        return (same or [r for r in choices if "." in name or modules[r][1] is not None] or [None])[0]

    edges = {}
    for rel, (dotted, _) in modules.items():
        out = edges.setdefault(rel, {})
        for line, base, names in python_imports(root, rel, dotted):
            targets = [resolve(rel, f"{base}.{n}") for n in names] if names else []
            targets = [t for t in targets if t] or [resolve(rel, base)]
            for target in targets:
                if target and target != rel:
                    out.setdefault(target, line)
    return modules, edges


def _cycles(edges):
    """Circles of @p edges, each as its sorted members: graphlib finds one at a time, and its
    members are taken out before the next is looked for."""
    graph, found = {v: set(ws) for v, ws in edges.items()}, []
    while True:
        try:
            graphlib.TopologicalSorter(graph).prepare()
            return found
        except graphlib.CycleError as e:
            members = set(e.args[1])
            found.append(sorted(members))
            graph = {v: ws - members for v, ws in graph.items() if v not in members}


def _path_edits(root, rel):
    """Lines of @p rel that change sys.path (sys.path.insert(...), sys.path = ..., ...)."""
    tree = _parsed(root, rel)

    def is_path(node):
        return isinstance(node, ast.Attribute) and node.attr == "path" and \
            isinstance(node.value, ast.Name) and node.value.id == "sys"

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in PATH_EDITS and is_path(node.func.value):
            lines.append(node.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if is_path(t) or (isinstance(t, ast.Subscript) and is_path(t.value)):
                    lines.append(node.lineno)
    return sorted(lines)


def _isa_comparisons(root, rel):
    """[(line, name)] of every comparison in @p rel against an ISA's name (see ISA_NAMES)."""
    tree = _parsed(root, rel)

    def named(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ISA_NAMES:
            return node.value
        if isinstance(node, ast.Attribute) and node.attr == "ARCH" and \
                isinstance(node.value, ast.Name) and node.value.id in ISA_MODULES:
            return f"{node.value.id}.ARCH"
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return next((n for n in map(named, node.elts) if n), None)
        return None

    found = []
    for node in ast.walk(tree):
        operands = []
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("startswith", "endswith"):
            operands = list(node.args)
        elif isinstance(node, ast.MatchValue):
            operands = [node.value]
        name = next((n for n in map(named, operands) if n), None)
        if name:
            found.append((node.lineno, name))
    return sorted(found)


def _isa_tables(root, rel):
    """[(line, name)] of every table in @p rel keyed by an ISA's name: a dict display with an ISA
    name among its keys ({"x86_64": ...}), or dict(x86_64=...)."""
    tree = _parsed(root, rel)
    found = []
    for node in ast.walk(tree):
        keys = []
        if isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
            keys = [k.arg for k in node.keywords if k.arg]
        name = next((k for k in keys if k in ISA_NAMES), None)
        if name:
            found.append((node.lineno, name))
    return sorted(found)


def check_python(root):
    """Every violation of the Python rules above in the tree at @p root, as 'file:line: problem'
    lines: an import of a package above the importer's, an import circle, a sys.path edit outside
    the entry points, an ISA name compared in a package module or used there as a table's key."""
    modules, edges = python_graph(root)
    problems = []
    for rel, targets in sorted(edges.items()):
        layer = modules[rel][1]
        if layer is None:
            continue
        allowed = PYTHON_PACKAGES[layer][1] + (layer,)
        for target, line in sorted(targets.items(), key=lambda t: t[1]):
            other = modules[target][1]
            if other is not None and other not in allowed:
                problems.append(f"{rel}:{line}: imports {modules[target][0]} ({target}): {layer} imports only "
                                f"{', '.join(allowed)}, never a package above it")
            elif other is None:
                problems.append(f"{rel}:{line}: imports the test module {target}")
    for members in _cycles(edges):
        ring = ", ".join(f"{m} -> {n} (line {edges[m][n]})" for m in members for n in sorted(edges[m]) if n in members)
        problems.append(f"{members[0]}: import circle among {', '.join(members)}: {ring}; move what they share "
                        "into a module below them")
    for rel in sorted(modules):
        if os.path.basename(rel) == "conftest.py":
            continue
        for line in _path_edits(root, rel):
            problems.append(f"{rel}:{line}: edits sys.path: only the entry points do (./pagoda, conftest.py, GDB's "
                            "script loader); import the package instead")
    packages = tuple(folder + "/" for folder, _ in PYTHON_PACKAGES.values())
    for rel in sorted(modules):
        if not rel.startswith(packages):
            continue
        for line, name in _isa_comparisons(root, rel):
            problems.append(f"{rel}:{line}: compares against the ISA name {name}: look its object up once "
                            "(pagoda_pt.isa.isa, witness.ARCHES) and ask it")
        for line, name in _isa_tables(root, rel):
            problems.append(f"{rel}:{line}: a table keyed by the ISA name {name}: put the fact on the ISA's "
                            "object (pagoda_pt/isa.py, or what it names: its machine, its log parser; the "
                            "grader's ArchModel) instead")
    return problems
