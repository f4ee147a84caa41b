"""The contract with the kernel (tools/gdb/pagoda_pt/contract.py), checked without booting:
every name it declares is in both reference kernels' ELFs, as a function, a variable or a label as
declared, and in the sources of every published lab tree from its lab on (so a skeleton that drops
a function the grader stops at is seen here); every fact is exported by both ELFs and defined with
PAGODA_FACT in those trees; and the Python of the grader, the GDB tools (their tests too), pagoda_pt
and the commands names kernel symbols and facts only through the contract. A renamed kernel
function fails here in seconds, not in a full grade or a fault-why that quietly finds nothing."""
import ast
import os
import re
import subprocess

import pytest

from pagoda import layers, publish
from pagoda_core import paths
from pagoda_pt import contract
from pagoda_grade import symbols

ARCHES = ("x86_64", "aarch64")
CONTRACT = "tools/gdb/pagoda_pt/contract.py"
KINDS = {contract.FUNCTION: "Tt", contract.DATA: "DdBbRrVvSs"}   # (a LABEL may be any)
# Sources of a lab tree that are the kernel: not its host tests nor the debugging fixtures.
KERNEL_DIRS = ("kernel/", "arch/")
NOT_KERNEL = re.compile(r"^(kernel/tests/|arch/[^/]+/fixtures/)")
COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def _short(name):
    """The last identifier of a type or prefix: 'Syscall' of 'pagoda::abi::Syscall', 'Swapper' of
    'pagoda::Swapper::'."""
    return re.findall(r"\w+", name)[-1]


def dwarf_names(kernel, names):
    """Which of @p names (identifiers) @p kernel's debugging information names (a type, a class, a
    namespace): what GDB finds where the symbol table has nothing (an enum, a header-only class)."""
    out = subprocess.run(["llvm-dwarfdump", *(f"--name={n}" for n in names), kernel],
                         capture_output=True, text=True, check=True).stdout
    return set(re.findall(r'DW_AT_name\s*\("([^"]+)"\)', out)) & set(names)


def elf_problems(kernel, arch):
    """What the ELF @p kernel lacks of the contract for @p arch, one sentence each."""
    problems = []
    every = "\n".join(s.name for s in symbols.symbol_table(kernel))
    types = [n for n in contract.names_for(arch) if n.kind == contract.TYPE]
    debug = dwarf_names(kernel, sorted({_short(n) for n in types}))
    for name in contract.names_for(arch):
        if name.kind == contract.TYPE:    # (no symbol of its own: a part of some symbol's name, or a type)
            if not re.search(re.escape(name) + (r"(?!\w)" if name[-1].isalnum() else ""), every) and \
                    (name.endswith("_") or _short(name) not in debug):
                problems.append(f"{arch}: {name} (lab {name.lab}, a type or prefix) is in no symbol's name "
                                "nor the debugging information")
            continue
        try:
            s = symbols.find(kernel, name)
        except AssertionError as e:
            problems.append(f"{arch}: {name} (lab {name.lab}, {name.kind}): {e}")
            continue
        if s.kind not in KINDS.get(name.kind, s.kind):
            problems.append(f"{arch}: {name} is a symbol of kind {s.kind!r}, not a {name.kind}")
    table = symbols.symbols(kernel)
    problems += [f"{arch}: no fact {f} (symbol {contract.FACT_PREFIX}{f})" for f in contract.facts_for(arch)
                 if contract.FACT_PREFIX + f not in table]
    return problems


def tree_texts(sources, lab):
    """{arch: the comment-free text of the kernel's sources in the lab-@p lab tree}."""
    common, own = [], {a: [] for a in ARCHES}
    for src in sources:
        if src.link is not None or not src.path.startswith(KERNEL_DIRS) or NOT_KERNEL.match(src.path) \
                or b"\0" in src.data:
            continue
        text = COMMENT.sub("", publish.resolved(src, lab).decode("utf-8", "surrogateescape"))
        arch = src.path.split("/")[1] if src.path.startswith("arch/") else None
        (own[arch] if arch in own else common).append(text)
    return {a: "\n".join(common + own[a]) for a in ARCHES}


def tree_problems(texts, lab):
    """What the lab-@p lab tree (@p texts, tree_texts()) lacks of the names and facts the tests of
    labs up to @p lab rely on."""
    problems = []
    for arch, text in texts.items():
        for name in contract.names_for(arch, lab):
            if not name.source.search(text):
                problems.append(f"lab {lab} tree ({arch}): no {name.source.pattern} for {name} (lab {name.lab})")
        for fact in contract.facts_for(arch, lab):
            if not re.search(rf"\bPAGODA_FACT\(\s*{fact}\s*,|\bpagoda_fact_{fact}\b", text):
                problems.append(f"lab {lab} tree ({arch}): no PAGODA_FACT({fact}, ...) (read from lab "
                                f"{contract.FACTS[fact]} on)")
    return problems


# The GDB tools' own tests: the breakpoints, conditions and expressions they hand GDB name the kernel
# through the contract too (a condition naming a renamed variable quietly stops at the wrong moment).
GDB_TESTS = "tools/gdb/tests/"


def python_files():
    """Every module of the packages and the graded tests (tools/pagoda/layers.py's Python layers:
    the commands, the grader, the GDB tools, the shared library, pagoda_pt) and of the GDB tools'
    tests, the contract aside."""
    return [os.path.join(paths.ROOT, rel) for rel, (_, layer) in sorted(layers.python_modules(paths.ROOT).items())
            if (layer is not None or rel.startswith(GDB_TESTS)) and rel != CONTRACT]


def _asserted(tree):
    """The nodes of @p tree inside an assert statement: what a test expects to read back, which a
    rename fails loudly there."""
    return {id(c) for a in ast.walk(tree) if isinstance(a, ast.Assert) for c in ast.walk(a)}


# The fact readers: {name: the position of the fact's name among its arguments}.
FACT_READERS = {"fact": 1, "layout_value": 1, "fact_symbol": 0}


def fact_names(node, loops, constants):
    """The fact names a reader's name argument @p node can be: a string, or an f-string whose
    fields are loop variables over tuples of strings (@p loops: {name: the tuple's node}; a tuple
    may be a module constant, @p constants); None when it is neither."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if not isinstance(node, ast.JoinedStr):
        return None
    names = [""]
    for v in node.values:
        if isinstance(v, ast.Constant):
            names = [n + v.value for n in names]
            continue
        seq = loops.get(getattr(v.value, "id", None))
        seq = constants.get(seq.id, seq) if isinstance(seq, ast.Name) else seq
        if not isinstance(seq, (ast.Tuple, ast.List)) or not all(isinstance(e, ast.Constant) for e in seq.elts):
            return ["".join(re.escape(x.value) if isinstance(x, ast.Constant) else r"\w+" for x in node.values)]
        names = [n + e.value for n in names for e in seq.elts]
    return [re.escape(n) for n in names]


def fact_readers(tree):
    """{name: position of its fact-name argument} of the functions and lambdas of @p tree that
    pass one of their parameters to a fact reader (fact(), layout_value()) as the fact's name."""
    readers = dict(FACT_READERS)
    for node in ast.walk(tree):
        target, fn = None, None
        if isinstance(node, ast.FunctionDef):
            target, fn = node.name, node
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda) and len(node.targets) == 1:
            target, fn = getattr(node.targets[0], "id", None), node.value
        if target is None:
            continue
        params = [a.arg for a in fn.args.args if a.arg != "self"]   # (a method's name is its first)
        for call in ast.walk(fn):
            name = getattr(call, "func", None)
            name = getattr(name, "attr", getattr(name, "id", None))
            at = FACT_READERS.get(name)
            if isinstance(call, ast.Call) and at is not None and len(call.args) == at + 1 and \
                    getattr(call.args[at], "id", None) in params:
                readers[target] = params.index(call.args[at].id)
    return readers


def _docstrings(tree):
    """The string constants of @p tree that are prose: docstrings and other bare string statements."""
    return {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}


# GDB's calls that evaluate an expression or look a name up: a word of their string arguments
# that is a kernel symbol's name ('pagoda_record_words(%#x)') is a kernel name too.
GDB_EVALUATORS = {"parse_and_eval", "lookup_type", "lookup_symbol", "lookup_global_symbol", "lookup_static_symbol",
                  "execute", "Breakpoint"}


def kernel_name(text, elf_names, expression=False):
    """Whether the string @p text names a kernel symbol or fact: a pagoda::-qualified name (alone or in
    a GDB expression, a message), a fact's symbol (pagoda_fact_...), a name in @p elf_names, or (an
    @p expression GDB evaluates) holds one as a word."""
    return ("pagoda::" in text and text != "pagoda::") or text.startswith(contract.FACT_PREFIX) or text in elf_names \
        or expression and any(word in elf_names for word in re.findall(r"\b[A-Za-z_]\w*", text))


def elf_names(*kernels):
    """The names of @p kernels' symbols a Python string could mean (full, without parameters, without
    '(anonymous namespace)::'), those with a '_' or '::' only: a plain word ('vector') is no name."""
    found = set()
    for kernel in kernels:
        for table in symbols._names(kernel):
            found.update(n for n in table if "_" in n or "::" in n)
    return frozenset(found)


def naming_problems(path, source, elf_names=frozenset()):
    """Where @p source names a kernel symbol or a fact's symbol itself (a string, an f-string or a GDB
    expression that holds one, @p elf_names: the reference kernels' names), or asks for a fact the
    contract lacks (through fact(), layout_value(), fact_symbol() or a function or lambda of its own
    that passes a name on to them). In a GDB tools' test, an assert's own text is no naming."""
    problems, names = [], elf_names | set(contract.NAMES)
    tree = ast.parse(source)
    prose = _docstrings(tree) | (_asserted(tree) if os.path.relpath(path, paths.ROOT).startswith(GDB_TESTS) else set())
    readers = fact_readers(tree)
    constants = {n.targets[0].id: n.value for n in tree.body if isinstance(n, ast.Assign) and len(n.targets) == 1
                 and isinstance(n.targets[0], ast.Name)}
    loops = {}
    for node in ast.walk(tree):
        for gen in getattr(node, "generators", []) + ([node] if isinstance(node, ast.For) else []):
            if isinstance(gen.target, ast.Name):
                loops[gen.target.id] = gen.iter
    for node in ast.walk(tree):
        where = f"{os.path.relpath(path, paths.ROOT)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose and \
                kernel_name(node.value, names):
            problems.append(f"{where}: names the kernel symbol {node.value!r} itself ({CONTRACT} declares them)")
        if isinstance(node, ast.JoinedStr) and any(isinstance(v, ast.Constant) and kernel_name(v.value, frozenset())
                                                   for v in node.values):
            problems.append(f"{where}: builds a kernel symbol's name ({CONTRACT} declares them)")
        reader = getattr(node.func, "attr", getattr(node.func, "id", None)) if isinstance(node, ast.Call) else None
        if reader in GDB_EVALUATORS:
            words = [c.value for a in node.args for c in ast.walk(a) if isinstance(c, ast.Constant)
                     and isinstance(c.value, str) and kernel_name(c.value, names, expression=True)]
            problems += [f"{where}: GDB evaluates the kernel name in {w!r} itself ({CONTRACT} declares them)"
                         for w in words if not kernel_name(w, names)]
        if reader in readers and len(node.args) > readers[reader]:
            for pattern in fact_names(node.args[readers[reader]], loops, constants) or ():
                if not any(re.fullmatch(pattern, f) for f in contract.FACTS):
                    problems.append(f"{where}: asks for a fact /{pattern}/ the contract does not declare")
    return problems


@pytest.fixture(scope="module")
def sources():
    return publish.scan(paths.ROOT)


def test_every_name_and_fact_is_in_both_reference_kernels(reference_kernel, aarch64_kernel):
    problems = elf_problems(reference_kernel, "x86_64") + elf_problems(aarch64_kernel, "aarch64")
    assert not problems, "\n".join(problems)


def test_every_name_and_fact_is_in_each_published_lab_tree_from_its_lab_on(sources):
    problems = []
    for lab in sorted(publish.lab_numbers(paths.ROOT)):
        problems += tree_problems(tree_texts(sources, lab), lab)
    assert not problems, "\n".join(problems)


def test_the_grader_and_the_gdb_tools_name_kernel_symbols_and_facts_only_through_the_contract(
        reference_kernel, aarch64_kernel):
    names, problems = elf_names(reference_kernel, aarch64_kernel), []
    for path in python_files():
        with open(path) as f:
            problems += naming_problems(path, f.read(), names)
    assert not problems, "\n".join(problems)


def elf_problems_renamed(kernel, renames):
    """elf_problems() of the x86_64 @p kernel as if its symbols were renamed ({old: new} in each name)."""
    def rename(name):
        for old, new in renames.items():
            name = name.replace(old, new)
        return name
    renamed = tuple(symbols.Symbol(rename(s.name), s.address, s.size, s.kind) for s in symbols.symbol_table(kernel))
    symbols.symbol_table.cache_clear(), symbols.symbols.cache_clear(), symbols._names.cache_clear()
    try:
        original, symbols.symbol_table = symbols.symbol_table, lambda _: renamed
        return elf_problems(kernel, "x86_64")
    finally:
        symbols.symbol_table = original
        symbols.symbols.cache_clear(), symbols._names.cache_clear()


def test_the_checks_name_a_renamed_function_a_missing_fact_and_a_name_written_outside(reference_kernel):
    # A kernel without fork_process (renamed): the ELF check names it.
    found = elf_problems_renamed(reference_kernel, {"fork_process": "fork_proc"})
    assert [p for p in found if str(contract.FORK) in p] and len(found) == 1, found
    # A lab tree whose sources lost it, and a fact: the tree check names both.
    texts = {a: "i64 fork_proc(Process& p);\nPAGODA_FACT(page_size, 4096)" for a in ARCHES}
    found = "\n".join(tree_problems(texts, 6))
    assert str(contract.FORK) in found and "PAGODA_FACT(levels" in found and "PAGODA_FACT(page_size" not in found
    # A grader file that writes the name itself, or asks for an undeclared fact.
    found = naming_problems("x.py", 'stop_at("pagoda::proc::fork_process")\nfact(k, "windw_base")\n'
                                    'fact(k, f"temp_probe_{n}_stop")\nB = ("brk", "stack_lid")\n'
                                    'f = lambda name: symbols.fact(k, name)\nx = [f(f"regions_{b}") for b in B]')
    assert len(found) == 3 and any("fork_process" in p for p in found) and any("windw_base" in p for p in found) \
        and any("regions_stack_lid" in p for p in found), found


def test_a_symbol_fault_why_reads_renamed_or_written_outside_fails_the_contract(reference_kernel, aarch64_kernel):
    # fault-why calls the kernel's fault decision and reads the vector stubs' address: a kernel that
    # renamed them fails the ELF check, naming each.
    found = elf_problems_renamed(reference_kernel, {"decide_fault": "decide", "x86_vector_stubs": "x86_stubs"})
    assert len(found) == 2 and any(str(contract.DECIDE_FAULT) in p for p in found) and \
        any(str(contract.X86.VECTOR_STUBS) in p for p in found), found
    # GDB code that writes a symbol, a fact's symbol, a type or a call GDB evaluates itself: each named.
    names = elf_names(reference_kernel, aarch64_kernel)
    found = naming_problems("tools/gdb/pagoda_gdb/x.py", 'kernel.symbol_address("__kernel_start")\n'
                            'kernel.symbol_address("pagoda_fact_" + name)\ngdb.lookup_type("pagoda::Vma")\n'
                            'gdb.parse_and_eval("pagoda_record_words(%#x)" % a)\n'
                            '"""A docstring may name pagoda::decide_fault."""\n'
                            'gdb.parse_and_eval("%s(%#x)" % (C.RECORD_WORDS, a))', names)
    assert sorted(p.split(":")[1] for p in found) == ["1", "2", "3", "4"], found
    # The GDB tools' tests are scanned: a breakpoint they set names the kernel through the contract,
    # while what they assert they read back may quote it.
    assert os.path.join(paths.ROOT, GDB_TESTS, "test_gdb_swap.py") in python_files()
    found = naming_problems(os.path.join(paths.ROOT, GDB_TESTS, "x.py"),
                            'steps = [("b", "cmd", "break pagoda::proc::exit_current if x->pid == 2")]\n'
                            'assert "pagoda::proc::exit_current" in out\n', names)
    assert len(found) == 1 and ":1:" in found[0], found


# User programs whose token-derived values the grader never computes.
TWINS_NOT_YET = {"usertests.cpp"}   # (its probes: the grader reads what each must give in its memory)
TAGGED = re.compile(r"\bproof\(\s*\w+(?:\(\))?\s*,\s*(?:0x|k\w*Tag\b)|\bvalue\(\s*0x|\bproof\(\s*\w+(?:\(\))?\s*,\s*\w+\)\s*%")


def tagged_derivations(text):
    """The lines of a program's @p text that derive a value from the token with a tag of their own."""
    return [line.strip() for line in COMMENT.sub("", text).splitlines() if TAGGED.search(line)]


def test_the_programs_derive_token_values_only_from_the_shared_table():
    from pagoda_grade import derived
    assert {"hello_n", "tmfill_seed", "vmas_none_word"} <= set(derived.table())
    assert derived.value("0123456789abcdef", "edges_letter", 3) in range(ord("a"), ord("z") + 1)
    programs = os.path.join(paths.ROOT, "user", "programs")
    problems = []
    for name in sorted(os.listdir(programs)):
        if name.endswith(".cpp") and name not in TWINS_NOT_YET:
            with open(os.path.join(programs, name)) as f:
                problems += [f"user/programs/{name}: {line}" for line in tagged_derivations(f.read())]
    assert not problems, "a token value derived outside user/lib/derived.hpp (the grader reads that table):\n" + \
        "\n".join(problems)
    assert tagged_derivations("const u64 n = 1 + proof(token(), 0x4845) % 10;\nproof(token(), kHelloTag)\n"
                              "u64 s = proof(token(), page) % 512;\nproof_note(proof(token(), sum))") == \
        ["const u64 n = 1 + proof(token(), 0x4845) % 10;", "proof(token(), kHelloTag)", "u64 s = proof(token(), page) % 512;"]
