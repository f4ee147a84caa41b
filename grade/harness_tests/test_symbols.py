"""fact(): the grader reads the kernel's PAGODA_FACT constants from ELF symbols, the instructor's
when it has them; a fact defined twice, or not as the course's, is refused."""
import subprocess

import pytest

from pagoda_grade import symbols


@pytest.fixture
def object_with_facts(tmp_path):
    source = tmp_path / "facts.S"
    source.write_text(".globl pagoda_fact_window_base\n.set pagoda_fact_window_base, 0xffff800000000000\n"
                      ".globl pagoda_fact_page_size\n.set pagoda_fact_page_size, 4096\n"
                      ".globl not_a_fact\n.set not_a_fact, 7\n")
    out = tmp_path / "facts.o"
    subprocess.run(["clang", "--target=x86_64-unknown-none-elf", "-c", str(source), "-o", str(out)], check=True)
    return str(out)


def test_fact_reads_absolute_symbols(object_with_facts):
    assert symbols.fact(object_with_facts, "window_base") == 0xFFFF_8000_0000_0000
    assert symbols.fact(object_with_facts, "page_size") == 4096


def test_a_missing_fact_names_the_ones_there_are(object_with_facts):
    with pytest.raises(AssertionError) as e:
        symbols.fact(object_with_facts, "window_size")
    assert "exports no fact 'window_size'" in str(e.value)
    assert "page_size, window_base" in str(e.value)


def assemble(tmp_path, *sources):
    """An x86_64 object linked (ld -r) from the assembly @p sources, each its own file."""
    objects = []
    for i, text in enumerate(sources):
        (tmp_path / f"part{i}.S").write_text(text)
        objects.append(str(tmp_path / f"part{i}.o"))
        subprocess.run(["clang", "--target=x86_64-unknown-none-elf", "-c", str(tmp_path / f"part{i}.S"), "-o",
                        objects[-1]], check=True)
    out = str(tmp_path / "linked.o")
    subprocess.run(["ld.lld", "-r", *objects, "-o", out], check=True)
    return out


PAGE_FACT = ".globl pagoda_fact_page_size\n.set pagoda_fact_page_size, 4096\n"


def test_a_fact_with_a_local_of_its_name_is_refused(tmp_path):
    """Issue 51's cheat 3d: a local absolute symbol of the fact's name in another file, the
    smaller value first in llvm-nm's list: neither is read."""
    kernel = assemble(tmp_path, PAGE_FACT, "pagoda_fact_page_size = 1\n")
    with pytest.raises(AssertionError) as e:
        symbols.fact(kernel, "page_size")
    assert "defines its fact page_size 2 times (1 as a local absolute symbol, 4096 as a global absolute" in str(e.value)
    assert symbols.fact_problems(kernel) == (str(e.value),)
    with pytest.raises(AssertionError, match="2 symbols called pagoda_fact_page_size"):
        symbols.symbols(kernel).get("pagoda_fact_page_size")


def test_the_course_facts_are_read_and_a_kernel_that_differs_is_named(tmp_path, monkeypatch):
    """With the instructor's facts (FACTS_ENV) the grader reads theirs; a kernel whose fact was
    redefined (`.set` again in a region: one global symbol, another value) is refused by name."""
    kernel = assemble(tmp_path, PAGE_FACT + ".set pagoda_fact_page_size, 1\n")
    assert symbols.exported_facts(kernel) == ({"page_size": 1}, {})
    course = tmp_path / "course.json"
    course.write_text('{"page_size": 4096, "window_base": 18446603336221196288}')
    monkeypatch.setenv(symbols.FACTS_ENV, str(course))
    assert symbols.fact(kernel, "page_size") == 4096
    assert symbols.fact_problems(kernel) == (
        "the kernel's fact page_size is 1, the course's build says 4096: facts are not yours to change",
        "the kernel does not export the fact window_base, which the course's build does (0xffff800000000000): "
        "facts are not yours to change")


def test_the_instructors_own_facts_are_written_and_agree(tmp_path, monkeypatch, object_with_facts):
    course = tmp_path / "course.json"
    symbols.write_facts(object_with_facts, str(course))
    monkeypatch.setenv(symbols.FACTS_ENV, str(course))
    assert symbols.fact_problems(object_with_facts) == ()
    with pytest.raises(AssertionError, match="defines its fact page_size 2 times"):
        symbols.write_facts(assemble(tmp_path, PAGE_FACT, "pagoda_fact_page_size = 1\n"), str(course))


@pytest.fixture
def code_with_a_label(tmp_path):
    """An AArch64 ELF whose code holds a function with .size, then a routine written without it
    (a label: a symbol of size 0, as a student's aarch64_user_copy may be), then another sized
    one."""
    source = tmp_path / "code.S"
    source.write_text(".text\n.globl sized\n.type sized, %function\nsized:\n nop\n ret\n.size sized, . - sized\n"
                      ".globl copy\n.type copy, %function\ncopy:\n ldrb w3, [x1], #1\n strb w3, [x0], #1\n ret\n"
                      ".globl after\n.type after, %function\nafter:\n ret\n.size after, . - after\n")
    obj, elf = tmp_path / "code.o", tmp_path / "code.elf"
    subprocess.run(["clang", "--target=aarch64-unknown-none-elf", "-c", str(source), "-o", str(obj)], check=True)
    subprocess.run(["ld.lld", "-e", "sized", "-Ttext=0x400000", str(obj), "-o", str(elf)], check=True)
    return str(elf)


def test_a_pc_after_a_label_without_size_is_named_after_it(code_with_a_label):
    sized = symbols.find(code_with_a_label, "sized")
    copy = symbols.find(code_with_a_label, "copy")
    assert copy.size == 0
    found = symbols.function_at(code_with_a_label, copy.address + 4)     # the strb
    assert found is not None and found.name == "copy" and found.size == 12
    assert symbols.function_at(code_with_a_label, sized.address + 4).name == "sized"
    assert symbols.function_at(code_with_a_label, copy.address + 12).name == "after"
    assert symbols.function_at(code_with_a_label, 0x10) is None           # no code there
