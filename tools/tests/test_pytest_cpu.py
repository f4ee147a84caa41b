"""pagoda_core/pytest_cpu.py: after a run under xdist (as `./pagoda test` runs the tool tests),
the controller lists each test's CPU time, its children's included, and each file's, dearest
first; a module's shared fixture counts in the test that set it up. With $PAGODA_ONE_ISA, each
case parametrized over the ISAs runs on one of them, the others reported deselected."""
import os
import re
import subprocess
import textwrap

import pytest

from pagoda_core import paths, pytest_cpu, speed

# A child that burns about 0.4 s of CPU (its own clock, whatever the machine's load), in a
# shared fixture and in a test's call; and a test that only waits.
BURN = "import time\\nwhile time.process_time() < 0.4: pass\\n"
TESTS = textwrap.dedent(f"""\
    import subprocess
    import sys
    import time

    import pytest

    @pytest.fixture(scope="module")
    def booted():
        subprocess.run([sys.executable, "-c", "{BURN}"], check=True)
        return "booted"

    def test_burns_in_a_child():
        subprocess.run([sys.executable, "-c", "{BURN}"], check=True)

    def test_sets_up_the_fixture(booted):
        assert booted

    def test_waits():
        time.sleep(0.5)
    """)


# Eight cases on both ISAs, two tests of a module's boot on both, one test on one ISA; each
# checks that the pytest runs it starts would not see the seed.
ISA_TESTS = textwrap.dedent("""\
    import os

    import pytest

    @pytest.fixture(scope="module", params=["x86_64", "aarch64"])
    def booted(request):
        return request.param

    @pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
    @pytest.mark.parametrize("n", range(8))
    def test_case(n, arch):
        assert "PAGODA_ONE_ISA" not in os.environ

    def test_first(booted):
        assert "PAGODA_ONE_ISA" not in os.environ

    def test_second(booted):
        pass

    @pytest.mark.parametrize("arch", ["aarch64"])
    def test_one_isa(arch):
        pass
    """)


def run(tmp_path, tests=TESTS, env=None, args=()):
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {os.path.join(paths.ROOT, 'tools')!r})\n"
        "from pagoda_core import pytest_cpu\n\n"
        "def pytest_configure(config):\n    pytest_cpu.register(config)\n")
    (tmp_path / "test_cost.py").write_text(tests)
    out = subprocess.run([paths.SYSTEM_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", *args,
                          str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=speed.scaled(120),
                         env={**{k: v for k, v in os.environ.items() if k != pytest_cpu.ONE_ISA}, **(env or {})})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def listed(text, heading):
    """{name: seconds} of one table of the summary."""
    block = text.split(heading + "\n", 1)[1]
    rows = {}
    for line in block.splitlines():
        m = re.match(r"^\s+([0-9.]+)s  (\S+)$", line)
        if not m:
            break
        rows[m[2]] = float(m[1])
    return rows


def test_the_controller_lists_each_test_s_cpu_with_its_children_s(tmp_path):
    pytest.importorskip("xdist")
    out = run(tmp_path)
    tests = listed(out, "CPU time by test:")
    burn, fixture, wait = (tests[f"test_cost.py::{n}"] for n in ("test_burns_in_a_child", "test_sets_up_the_fixture",
                                                                "test_waits"))
    assert burn >= 0.4 and fixture >= 0.4, out          # the children's CPU, the fixture's setup included
    assert wait < 0.3, out                               # half a second asleep costs next to nothing
    assert list(tests)[-1] == "test_cost.py::test_waits", out     # dearest first
    files = listed(out, "CPU time by test file:")
    assert files["test_cost.py"] == pytest.approx(sum(tests.values()), abs=0.05), out


def test_one_isa_runs_each_case_on_one_isa_half_on_each_and_says_how_many_it_left(tmp_path):
    pytest.importorskip("xdist")
    every = re.findall(r"PASSED (\S+)", run(tmp_path, ISA_TESTS, args=["-rA"]))
    assert len(every) == 21, every                      # without the seed, every case on every ISA
    out = run(tmp_path, ISA_TESTS, {pytest_cpu.ONE_ISA: "abc"}, ["-rA"])
    ran = re.findall(r"PASSED test_cost.py::(\w+)\[(\S+)\]", out)
    cases = [tuple(i.split("-")) for t, i in ran if t == "test_case"]
    assert sorted(n for n, _ in cases) == [str(n) for n in range(8)], out        # each case once
    boots = {i for t, i in ran if t in ("test_first", "test_second")}
    assert len(boots) == 1 and len([t for t, _ in ran if t != "test_case"]) == 3, out   # one boot, both its tests
    isas = [a for _, a in cases] + 2 * list(boots)
    assert abs(isas.count("x86_64") - isas.count("aarch64")) <= 1, out           # half on each
    assert ("test_one_isa", "aarch64") in ran, out
    assert re.search(r"\b11 passed, 10 deselected\b", out), out[-2000:]         # told, by the controller too


def test_no_tests_no_table():
    assert pytest_cpu.summary_lines({}) == []
