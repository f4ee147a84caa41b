"""fact(): the grader reads the kernel's PAGODA_FACT constants from ELF symbols."""
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
