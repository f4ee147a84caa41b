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
