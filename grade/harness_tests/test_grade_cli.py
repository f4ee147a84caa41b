"""./pagoda grade and the grader's pytest plugin, misused: each case gets a short, clear message."""
import os
import shutil
import subprocess
import time

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

    class FakePytest:
        pid, returncode = 0, 0

        def __init__(self, argv, **kwargs):
            seen.append(argv)
            report = next(a.split("=", 1)[1] for a in argv if a.startswith("--pagoda-report="))
            with open(report, "w") as f:
                f.write("[]")

        def wait(self):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(grade.subprocess, "Popen", FakePytest)
    monkeypatch.setattr(grade.paths, "BUILD", str(tmp_path))
    monkeypatch.delenv("PAGODA_GRADE_LOGS", raising=False)
    grade.run_pytest([0], "x86_64", grade.jobs_argument("1"))
    grade.run_pytest([0], "x86_64", grade.jobs_argument("2"))
    assert "-n" not in seen[0]
    assert seen[1][seen[1].index("-n") + 1] == "2"


def test_each_grade_keeps_its_pytest_output_and_report_to_itself(monkeypatch, tmp_path):
    """Two grades in one clone both wrote build/grade-pytest.log, and each left an empty
    /tmp/pagoda-grade-*.json when killed with -9. Now pytest's output is in the grade's own log
    directory and the report in memory (the report path is a /dev/fd of a memfd)."""
    logs, reports = [], []

    class Ended:   # a pytest that has already ended with status 0
        returncode = pid = 0

        def wait(self):
            return 0

        def poll(self):
            return 0

    def fake_popen(argv, **kwargs):
        logs.append(kwargs["stdout"].name)
        reports.append(next(a.split("=", 1)[1] for a in argv if a.startswith("--pagoda-report=")))
        assert kwargs["env"]["PAGODA_GRADE_RUN_DIR"] == os.path.dirname(logs[-1])
        with open(reports[-1], "w") as f:
            f.write('[{"lab": 0, "id": "boot_banner", "outcome": "passed", "duration": 1.0, "reason": ""}]')
        return Ended()

    monkeypatch.setattr(grade.subprocess, "Popen", fake_popen)
    monkeypatch.setattr(grade.paths, "BUILD", str(tmp_path / "build"))
    monkeypatch.delenv("PAGODA_GRADE_LOGS", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    for _ in range(2):
        results, status = grade.run_pytest([0], "x86_64", "1")
        assert status == 0 and results[(0, "boot_banner")]["outcome"] == "passed"
    assert logs[0] != logs[1] and all(os.path.basename(p) == "pytest.log" for p in logs)
    assert all(p.startswith(str(tmp_path / "build" / "grade" / "run-")) for p in logs)
    assert all(r.startswith("/dev/fd/") for r in reports)
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
