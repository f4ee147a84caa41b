"""The grader's contract with the kernel (grade/pagoda_grade/contract.py), checked without booting:
every name it declares is in both reference kernels' ELFs, as a function, a variable or a label as
declared, and in the sources of every published lab tree from its lab on (so a skeleton that drops
a function the grader stops at is seen here); every fact is exported by both ELFs and defined with
PAGODA_FACT in those trees; and the grader's Python names kernel symbols and facts only through
the contract. A renamed kernel function fails here in seconds, not in a full grade."""
import ast
import os
import re

import pytest

from pagoda import publish
from pagoda_core import paths
from pagoda_grade import contract, symbols

ARCHES = ("x86_64", "aarch64")
KINDS = {contract.FUNCTION: "Tt", contract.DATA: "DdBbRrVvSs"}   # (a LABEL may be any)
# Sources of a lab tree that are the kernel: not its host tests nor the debugging fixtures.
KERNEL_DIRS = ("kernel/", "arch/")
NOT_KERNEL = re.compile(r"^(kernel/tests/|arch/[^/]+/fixtures/)")
COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def elf_problems(kernel, arch):
    """What the ELF @p kernel lacks of the contract for @p arch, one sentence each."""
    problems = []
    for name in contract.names_for(arch):
        try:
            s = symbols.find(kernel, name)
        except AssertionError as e:
            problems.append(f"{arch}: {name} (lab {name.lab}, {name.kind}): {e}")
            continue
        if s.kind not in KINDS.get(name.kind, s.kind):
            problems.append(f"{arch}: {name} is a symbol of kind {s.kind!r}, not a {name.kind}")
    table = symbols.symbols(kernel)
    problems += [f"{arch}: no fact {f} (symbol {symbols.FACT_PREFIX}{f})" for f in contract.facts_for(arch)
                 if symbols.FACT_PREFIX + f not in table]
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


def grader_files():
    grade = os.path.join(paths.ROOT, "grade")
    files = [os.path.join(grade, f) for f in os.listdir(grade) if f.endswith(".py")]
    lib = os.path.join(grade, "pagoda_grade")
    return files + [os.path.join(lib, f) for f in os.listdir(lib) if f.endswith(".py") and f != "contract.py"]


FACT_READERS = {"fact", "layout_value"}


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
    readers = {r: 1 for r in FACT_READERS}
    for node in ast.walk(tree):
        target, fn = None, None
        if isinstance(node, ast.FunctionDef):
            target, fn = node.name, node
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda) and len(node.targets) == 1:
            target, fn = getattr(node.targets[0], "id", None), node.value
        if target is None:
            continue
        params = [a.arg for a in fn.args.args]
        for call in ast.walk(fn):
            name = getattr(call, "func", None)
            name = getattr(name, "attr", getattr(name, "id", None))
            if isinstance(call, ast.Call) and name in FACT_READERS and len(call.args) == 2 and \
                    getattr(call.args[1], "id", None) in params:
                readers[target] = params.index(call.args[1].id)
    return readers


def naming_problems(path, source):
    """Where @p source names a kernel symbol itself, or asks for a fact the contract lacks (through
    fact(), layout_value() or a function or lambda of its own that passes a name on to them)."""
    declared = set(contract.NAMES)
    problems = []
    tree = ast.parse(source)
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
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                (node.value in declared or node.value.startswith("pagoda::") and node.value != "pagoda::"):
            problems.append(f"{where}: names the kernel symbol {node.value!r} (contract.py declares them)")
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) and \
                str(node.values[0].value).startswith("pagoda::"):
            problems.append(f"{where}: builds a kernel symbol's name (contract.py declares them)")
        reader = getattr(node.func, "attr", getattr(node.func, "id", None)) if isinstance(node, ast.Call) else None
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


def test_the_grader_names_kernel_symbols_and_facts_only_through_the_contract():
    problems = []
    for path in grader_files():
        with open(path) as f:
            problems += naming_problems(path, f.read())
    assert not problems, "\n".join(problems)


def test_the_checks_name_a_renamed_function_a_missing_fact_and_a_name_written_outside(reference_kernel):
    # A kernel without fork_process (renamed): the ELF check names it.
    real = symbols.symbol_table(reference_kernel)
    renamed = tuple(symbols.Symbol(s.name.replace("fork_process", "fork_proc"), s.address, s.size, s.kind)
                    for s in real)
    symbols.symbol_table.cache_clear(), symbols.symbols.cache_clear(), symbols._names.cache_clear()
    try:
        original, symbols.symbol_table = symbols.symbol_table, lambda kernel: renamed
        found = elf_problems(reference_kernel, "x86_64")
    finally:
        symbols.symbol_table = original
        symbols.symbols.cache_clear(), symbols._names.cache_clear()
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
