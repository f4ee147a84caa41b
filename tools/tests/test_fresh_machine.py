"""A fresh machine: ./pagoda starts with nothing but /usr/bin/python3's standard library.

A blocker on the import path (a sitecustomize that refuses pytest, pexpect and xdist, the way a
machine without python3-pytest does) stands in for the fresh machine, and a fake apt-get first
on PATH for Debian's: it floods its output like dpkg does and sets up nothing, so ./pagoda must
still find the modules missing. Every command must print what is missing, never a traceback.
"""
import os
import subprocess
import textwrap

import pytest

from pagoda import deps
from pagoda_core import paths
from pagoda_core.speed import scaled  # noqa: E402  (limits for this machine: speed.py)

BLOCKED = ("pytest", "_pytest", "xdist", "pexpect")
BLOCKER = textwrap.dedent(f"""\
    import sys

    class _Blocker:
        # What a machine without these packages does: the import fails.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, _Blocker())
    """)

# A noisy apt-get: 200 lines per call, like dpkg unpacking a few dozen packages.
FAKE_APT = textwrap.dedent("""\
    #!/bin/sh
    echo "apt-get $*" >> "$FAKE_APT_CALLS"
    i=0
    while [ $i -lt 200 ]; do echo "Unpacking libnoise$i (1.0-1) ..."; i=$((i+1)); done
    for p in "$@"; do
      case "$p" in python3-*) echo "Setting up $p (1.0-1) ...";; esac
    done
    if [ -n "$FAKE_APT_FAIL" ] && [ "$1" = install ]; then
      echo "E: Unable to locate package python3-pytest"; exit 100
    fi
    exit 0
    """)


@pytest.fixture
def fresh(tmp_path):
    """run(*argv, fail_apt=False) -> CompletedProcess of ./pagoda on the simulated fresh machine."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    apt = bin_dir / "apt-get"
    apt.write_text(FAKE_APT)
    apt.chmod(0o755)
    calls = tmp_path / "apt-calls"

    def run(*argv, fail_apt=False, python=paths.SYSTEM_PYTHON, flags=()):
        env = dict(os.environ, PYTHONPATH=str(blocker), PATH=f"{bin_dir}:{os.environ['PATH']}",
                   FAKE_APT_CALLS=str(calls), PAGODA_SETUP_LOG=str(tmp_path / "setup.log"),
                   # (setup's lock lives in the temporary directory: another ./pagoda installing on
                   # this machine at the same moment would add a "waiting" line to the output)
                   TMPDIR=str(tmp_path))
        env.pop("PAGODA_REEXEC", None)
        if fail_apt:
            env["FAKE_APT_FAIL"] = "1"
        return subprocess.run([python, *flags, os.path.join(paths.ROOT, "pagoda"), *argv],
                              cwd=paths.ROOT, env=env, capture_output=True, text=True, timeout=scaled(60))
    run.log = tmp_path / "setup.log"
    run.calls = calls
    return run


def test_the_blocker_really_blocks(fresh, tmp_path):
    out = subprocess.run([paths.SYSTEM_PYTHON, "-c", "import pytest"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(tmp_path / "blocker")))
    assert out.returncode == 1 and "No module named 'pytest'" in out.stderr


@pytest.mark.parametrize("flags", [(), ("-S",)])
def test_help_works(fresh, flags):
    out = fresh("--help", flags=flags)
    assert out.returncode == 0, out.stderr
    assert "usage: ./pagoda" in out.stdout and "Traceback" not in out.stderr


def test_setup_check_lists_what_is_missing(fresh):
    out = fresh("setup", "--check")
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr
    missing = [l for l in out.stdout.splitlines() if l.startswith("missing: ")]
    assert [l.split()[1] for l in missing] == ["pytest", "pytest-xdist", "pexpect"]
    assert "fix: apt-get install python3-pytest" in out.stdout


EVERYTHING = ["pytest", "pytest-xdist", "pexpect"]
GRADING = ["pytest", "pytest-xdist"]     # grading needs no pexpect


@pytest.mark.parametrize("argv, missing", [(["test"], EVERYTHING), (["grade", "lab0"], GRADING),
                                           (["run"], EVERYTHING), (["setup"], EVERYTHING)])
def test_commands_install_first_then_say_what_is_still_missing(fresh, argv, missing):
    """`./pagoda test` (and run, grade, setup) start by installing: one line per package, apt's
    flood in the log, and a clear error when the modules are still missing afterwards."""
    out = fresh(*argv)
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert "Traceback" not in text
    assert f"its output goes to {fresh.log}" in out.stderr
    assert f"error: still missing after apt-get: {', '.join(missing)} (" in out.stderr
    packages = ["python3-" + m for m in missing]
    for package in packages:
        assert sum(f"installed {package} (" in l for l in out.stderr.splitlines()) == 1
    # apt's 400 lines went to the log, not to the terminal
    assert "libnoise" not in text and len(text.splitlines()) <= 3 + len(missing), text
    assert open(fresh.log).read().count("Unpacking libnoise") == 400
    assert open(fresh.calls).read().splitlines()[-1] == \
        f"apt-get install -o DPkg::Lock::Timeout={deps.APT_LOCK_TIMEOUT} -y -q --no-install-recommends " + " ".join(packages)


def test_a_failing_apt_shows_the_end_of_its_log(fresh):
    out = fresh("setup", fail_apt=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "failed (status 100); the end of" in out.stderr
    assert "E: Unable to locate package python3-pytest" in out.stderr
    assert "install by hand: apt-get install python3-pytest python3-pytest-xdist python3-pexpect" in out.stderr
    assert out.stderr.count("libnoise") < deps.LOG_TAIL_LINES


def test_grading_requirements_are_a_subset_per_arch():
    grading = deps.packages(deps.needed(grading_only=True, arches=["x86_64"]))
    assert "qemu-system-x86" in grading and "python3-pytest" in grading
    assert "qemu-system-arm" not in grading and "doxygen" not in grading
    assert "qemu-system-arm" in deps.packages(deps.needed())
