"""pagoda_core/pytest_share.py: under `-n 2 --dist loadgroup` (as `./pagoda test` runs the tool
tests) a module's shared fixture is set up once, on one worker, while tests without one are
still dealt out to every worker."""
import os
import subprocess
import textwrap

import pytest

from pagoda_core import paths, pytest_share, speed

SHARED = textwrap.dedent("""\
    import os
    import pytest

    @pytest.fixture(scope="module")
    def booted():
        with open(os.environ["SETUPS"], "a") as f:
            f.write(os.environ.get("PYTEST_XDIST_WORKER", "-") + "\\n")
        return "booted"

    @pytest.mark.parametrize("n", range(8))
    def test_reads(booted, n):
        assert booted == "booted"
    """)
ALONE = textwrap.dedent("""\
    import os
    import time

    import pytest

    @pytest.mark.parametrize("n", range(8))
    def test_alone(tmp_path, n):
        time.sleep(0.2)
        with open(os.environ["RAN"], "a") as f:
            f.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
    """)


def run(tmp_path, register):
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {os.path.join(paths.ROOT, 'tools')!r})\n"
        "from pagoda_core import pytest_share\n\n"
        f"def pytest_configure(config):\n    {'pytest_share.register(config)' if register else 'pass'}\n")
    (tmp_path / "test_shared.py").write_text(SHARED)
    (tmp_path / "test_alone.py").write_text(ALONE)
    setups, ran = tmp_path / "setups", tmp_path / "ran"
    out = subprocess.run([paths.SYSTEM_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                          "--dist", "loadgroup", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                         env=dict(os.environ, SETUPS=str(setups), RAN=str(ran)), timeout=speed.scaled(120))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return setups.read_text().split(), ran.read_text().split()


def test_a_module_fixture_is_set_up_once_across_workers(tmp_path):
    pytest.importorskip("xdist")
    setups, ran = run(tmp_path, register=True)
    assert len(setups) == 1, setups
    assert len(ran) == 8 and set(ran) == {"gw0", "gw1"}, ran     # the others still spread


def test_without_the_plugin_each_worker_sets_it_up(tmp_path):
    """What the plugin is for: xdist alone deals the module's tests to both workers."""
    pytest.importorskip("xdist")
    setups, _ = run(tmp_path, register=False)
    assert sorted(setups) == ["gw0", "gw1"], setups


def test_only_shared_scopes_group():
    assert set(pytest_share.SHARED_SCOPES) == {"module", "package", "class"}
