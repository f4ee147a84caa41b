"""./pagoda grade and the grader's pytest plugin, misused: each case gets a short, clear message."""
import os
import shutil
import subprocess
import time
import types

import pytest

from pagoda import grade
from pagoda_core import paths
from pagoda_core.speed import scaled  # noqa: E402  (limits for this machine: speed.py)

ROOT = paths.ROOT


def mini_clone(tmp_path):
    """A copy of what the grader needs (grade/, labs/, tools/) to change a manifest safely."""
    for part in ("grade", "labs", "tools"):
        shutil.copytree(os.path.join(ROOT, part), tmp_path / part,
                        ignore=shutil.ignore_patterns("__pycache__", "harness_tests", "build"))
    return tmp_path


def test_manifest_test_without_implementation_is_one_clear_error(tmp_path, reference_kernel):
    """It was a 35-line INTERNALERROR traceback from a crashed xdist worker."""
    clone = mini_clone(tmp_path)
    with open(clone / "labs" / "00-boot" / "lab.toml", "a") as f:
        f.write('\n[[tests]]\nid = "ghost"\npoints = 1\ntimeout = 5\n')
    out = subprocess.run([paths.SYSTEM_PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2",
                          f"--pagoda-kernel={reference_kernel}", "test_lab0.py"],
                         cwd=clone / "grade", capture_output=True, text=True,
                         env=dict(os.environ, PAGODA_GRADE_LOGS=str(tmp_path / "logs")))
    text = out.stdout + out.stderr
    assert out.returncode == 4, text
    assert "INTERNALERROR" not in text
    assert "lab 0 declares test 'ghost' in its lab.toml, but grade/test_lab0.py does not implement it" in text
    assert len(text.strip().splitlines()) <= 3, text


def test_implementation_without_manifest_entry_is_one_clear_error(tmp_path, reference_kernel):
    clone = mini_clone(tmp_path)
    with open(clone / "grade" / "test_lab0.py", "a") as f:
        f.write('\n\n@lab_test(0, "stray")\ndef test_stray(boot):\n    pass\n')
    out = subprocess.run([paths.SYSTEM_PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "2",
                          f"--pagoda-kernel={reference_kernel}", "test_lab0.py"],
                         cwd=clone / "grade", capture_output=True, text=True,
                         env=dict(os.environ, PAGODA_GRADE_LOGS=str(tmp_path / "logs")))
    text = out.stdout + out.stderr
    assert out.returncode == 4 and "INTERNALERROR" not in text, text
    assert "implements test 'stray', which lab 0's lab.toml does not declare" in text


def test_one_job_means_no_xdist(monkeypatch, tmp_path):
    """-j 1 arrives as the text "1", which was compared with the number 1."""
    seen = []

    def fake_main(args, plugins):
        seen.append(args)
        return 0

    monkeypatch.setattr(pytest, "main", fake_main)
    monkeypatch.setattr(grade.paths, "BUILD", str(tmp_path))
    monkeypatch.delenv("PAGODA_GRADE_LOGS", raising=False)
    grade.run_pytest([0], "x86_64", grade.jobs_argument("1"))
    grade.run_pytest([0], "x86_64", grade.jobs_argument("2"))
    assert "-n" not in seen[0]
    assert seen[1][seen[1].index("-n") + 1] == "2"


def test_each_grade_keeps_its_pytest_output_to_itself(monkeypatch, tmp_path):
    """Two grades in one clone both wrote build/grade-pytest.log, and each left an empty
    /tmp/pagoda-grade-*.json when killed with -9. Now pytest's output (its descriptors 1 and 2:
    its workers' too) is in the grade's own log directory, the results come from pytest in this
    process, and nothing is left behind: not the log directory in the environment, not the
    working directory, not the descriptors."""
    runs = []

    def fake_main(args, plugins):   # a pytest whose one test passed
        runs.append((os.environ["PAGODA_GRADE_RUN_DIR"], os.getcwd()))
        os.write(1, b"pytest says\n")
        os.write(2, b"a worker says\n")
        config = types.SimpleNamespace(_pagoda_results={"0:boot_banner": {
            "lab": 0, "id": "boot_banner", "outcome": "passed", "duration": 1.0, "reason": ""}})
        plugins[0].pytest_configure(config)
        return 0

    monkeypatch.setattr(pytest, "main", fake_main)
    monkeypatch.setattr(grade.paths, "BUILD", str(tmp_path / "build"))
    monkeypatch.delenv("PAGODA_GRADE_LOGS", raising=False)
    monkeypatch.delenv("PAGODA_GRADE_RUN_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    fds, cwd = sorted(os.listdir("/proc/self/fd")), os.getcwd()
    for _ in range(2):
        results, status = grade.run_pytest([0], "x86_64", "1")
        assert status == 0 and results[(0, "boot_banner")]["outcome"] == "passed"
    logs = [os.path.join(run_dir, "pytest.log") for run_dir, _ in runs]
    assert logs[0] != logs[1] and all(p.startswith(str(tmp_path / "build" / "grade" / "run-")) for p in logs)
    assert all(open(p).read() == "pytest says\na worker says\n" for p in logs)
    assert all(where == paths.GRADE for _, where in runs)
    assert "PAGODA_GRADE_RUN_DIR" not in os.environ and os.getcwd() == cwd
    assert sorted(os.listdir("/proc/self/fd")) == fds
    assert os.listdir(tmp_path / "tmp") == [] and not os.path.exists(tmp_path / "build" / "grade-pytest.log")


def test_truncated_kernel_is_rejected_up_front(tmp_path, reference_kernel):
    truncated = tmp_path / "truncated.elf"
    with open(reference_kernel, "rb") as f:
        truncated.write_bytes(f.read(8192))
    out = subprocess.run([paths.SYSTEM_PYTHON, os.path.join(ROOT, "pagoda"), "grade", "--kernel", str(truncated)],
                         cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PAGODA_GRADE_LOGS=str(tmp_path / "logs")))
    assert out.returncode != 0
    assert f"--kernel {truncated} is truncated" in out.stderr
    assert "Score" not in out.stdout and not (tmp_path / "logs").exists()


def test_two_grades_in_one_clone_keep_their_own_logs(tmp_path, reference_kernel):
    """They deleted each other's boot directories (FileNotFoundError on qemu.log or ram)."""
    logs = tmp_path / "logs"
    env = dict(os.environ, PAGODA_GRADE_LOGS=str(logs))
    argv = [paths.SYSTEM_PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q",
            f"--pagoda-kernel={reference_kernel}", "test_lab0.py", "-k", "boot_banner"]
    slow = subprocess.Popen(argv, cwd=paths.GRADE, env=dict(env, PAGODA_GRADE_CMDLINE="test=hang"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)   # the slow grade's boot is running (it hangs until its 10 s timeout)
    fast = subprocess.run(argv, cwd=paths.GRADE, env=env, capture_output=True, text=True)
    slow_out = slow.communicate(timeout=scaled(120))[0]
    assert fast.returncode == 0, fast.stdout[-3000:]
    assert "FileNotFoundError" not in slow_out
    commands = []
    for directory, _, files in os.walk(logs):
        commands += [open(os.path.join(directory, f)).read() for f in files if f == "command"]
    assert len(commands) == 2, commands
    assert sum("test=hang" in c for c in commands) == 1
    assert os.path.islink(logs / "last")


def test_a_failing_check_says_its_sentence_without_pytest_introspection(tmp_path):
    """A dirty_only failure printed 'assert 399 == 157 / + where 399 = sum(<generator ...>)' after
    its sentence: the grader's settings (grade/pytest.ini) keep pytest from rewriting asserts."""
    (tmp_path / "test_sum.py").write_text('def test_sum():\n    xs = [1, 2]\n'
                                          '    assert sum(x for x in xs) == 4, "the sum is not 4"\n')
    out = subprocess.run([paths.SYSTEM_PYTHON, "-m", "pytest", "-c", os.path.join(ROOT, "grade", "pytest.ini"),
                          "--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-q", "test_sum.py"],
                         cwd=tmp_path, capture_output=True, text=True)
    text = out.stdout + out.stderr
    assert out.returncode == 1 and "AssertionError: the sum is not 4" in text, text
    assert "where" not in text and "assert 3 == 4" not in text, text
