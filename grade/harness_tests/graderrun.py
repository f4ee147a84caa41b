"""`run_grader(...)`: the real grader (pytest on grade/test_labN.py) in a subprocess, and its
per-test results. A module of its own name, not conftest.py, so that a test importing it finds it
whatever other test directories share the pytest command (conftest.py in tools/gdb/tests and
tools/tests are modules named `conftest` too); this directory's conftest.py puts tools/ on the
path first."""
import json
import os
import subprocess

from pagoda_core import paths


def run_grader(tmp_path, kernel, labs, keyword=None, env=None, workers=None, arch=None, records=False, only=None):
    """Runs the grader on grade/test_lab{labs}.py with @p kernel (of @p arch, the default arch
    when None); returns {test id: (outcome, reason)} from its JSON report ({test id: the whole
    record} with @p records: duration, peak_rss_kib...)."""
    report = tmp_path / f"report-{os.path.basename(kernel)}-{len(os.listdir(tmp_path))}.json"
    argv = [paths.SYSTEM_PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--pagoda-kernel={kernel}",
            f"--pagoda-report={report}"] + [f"test_lab{n}.py" for n in labs]
    if keyword:
        argv += ["-k", keyword]
    if only:   # exact test ids (-k matches substrings: mprotect would take mprotect_none too)
        argv += [f"--pagoda-only={','.join(only)}"]
    if workers:
        argv += ["-n", str(workers)]
    if arch:
        argv += [f"--pagoda-arch={arch}"]
    full_env = dict(os.environ, PAGODA_GRADE_LOGS=str(tmp_path / "logs"), **(env or {}))
    out = subprocess.run(argv, cwd=paths.GRADE, env=full_env, capture_output=True, text=True)
    assert report.exists(), out.stdout[-3000:] + out.stderr[-3000:]
    if records:
        return {r["id"]: r for r in json.loads(report.read_text())}
    return {r["id"]: (r["outcome"], r["reason"]) for r in json.loads(report.read_text())}
