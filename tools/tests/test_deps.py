"""deps.py names no LLVM version, host ISA or install prefix: it asks clang and apt."""
import pytest

from pagoda import deps


def asking(answers):
    """A stand-in for deps._ask: the answer to each command line given, "" for any other."""
    return lambda argv: answers.get(" ".join(argv), "")


BUILTINS = "clang -rtlib=compiler-rt -print-libgcc-file-name"


@pytest.mark.parametrize("builtins, asan", [
    ("/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.builtins-aarch64.a",
     "/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.asan-aarch64.a"),
    ("/usr/lib/llvm-19/lib/clang/19/lib/x86_64-pc-linux-gnu/libclang_rt.builtins.a",
     "/usr/lib/llvm-19/lib/clang/19/lib/x86_64-pc-linux-gnu/libclang_rt.asan.a"),
])
def test_the_sanitizer_runtime_is_where_clang_keeps_its_builtins(monkeypatch, builtins, asan):
    monkeypatch.setattr(deps, "_ask", asking({BUILTINS: builtins}))
    assert deps.sanitizer_runtime() == asan


def test_no_clang_no_runtime_path(monkeypatch):
    monkeypatch.setattr(deps, "_ask", asking({}))
    assert deps.sanitizer_runtime() is None


SHOW = "apt-cache show --no-all-versions "


@pytest.mark.parametrize("answers, package", [
    ({SHOW + "libclang-rt-dev": "Package: libclang-rt-dev"}, "libclang-rt-dev"),        # Debian 12/13, Ubuntu 24.04
    ({"clang -dumpversion": "14.0.0", SHOW + "libclang-common-14-dev": "Package: x"},   # Ubuntu 22.04
     "libclang-common-14-dev"),
    ({"apt-cache depends clang": "clang\n  Depends: clang-18\n", SHOW + "libclang-rt-18-dev": "Package: x"},
     "libclang-rt-18-dev"),                                                              # no clang yet
])
def test_the_runtime_package_is_asked_for(monkeypatch, answers, package):
    monkeypatch.setattr(deps, "_ask", asking(answers))
    assert deps.sanitizer_package() == package


def test_every_fixed_package_name_is_versionless():
    import re
    names = [r.package for r in deps.REQUIREMENTS if not callable(r.package)]
    assert names and not [n for n in names if re.search(r"-\d+(\.\d+)?(-dev)?$", n)], names
    # (qemu-system-x86_64 and -aarch64 name the emulated target, not the host)
    paths = [r.probe for r in deps.REQUIREMENTS if r.kind == "file"]
    assert paths and not [p for p in paths if re.search(r"llvm-\d|x86_64|aarch64|amd64|arm64", p)], paths


# ---- waiting for another package manager (issue 55) ---------------------------------------------

HOLD = ("import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "getattr(fcntl, sys.argv[2])(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n")


@pytest.fixture
def holder(tmp_path):
    """holder(path, how): a process holding @p path's lock (how: 'lockf', as apt and dpkg lock, or
    'flock'), until its .stdin is closed; it has said 'held' when this returns."""
    import subprocess
    import sys
    started = []

    def start(path, how="lockf"):
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), how], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "held\n"
        started.append(proc)
        return proc
    yield start
    for proc in started:
        proc.stdin.close()
        proc.wait()


def waiter(call):
    """@p call run in a thread; the thread (poll .is_alive(), .join())."""
    import threading
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def test_a_held_apt_lock_is_named_and_waited_for(tmp_path, holder, capsys):
    lock = tmp_path / "lock-frontend"
    lock.touch()
    assert deps.lock_holder(str(lock)) is None and deps.lock_holder(str(tmp_path / "none")) is None
    proc = holder(lock)
    assert deps.lock_holder(str(lock)) == f"pid {proc.pid} (python3)"
    thread = waiter(lambda: deps.wait_for_package_manager((str(lock),), poll=0.01))
    while "waiting for another package manager" not in capsys.readouterr().err:   # (said once it looked)
        assert thread.is_alive()
        thread.join(0.01)
    assert thread.is_alive()
    proc.stdin.close()
    proc.wait()
    thread.join()            # (returns once the lock is free: no deadline here but the test's own)
    assert deps.lock_holder(str(lock)) is None


def test_a_second_setup_waits_for_the_first(tmp_path, holder, capsys):
    lock = tmp_path / "pagoda-setup.lock"
    proc = holder(lock, "flock")
    entered = []

    def take_turn():
        with deps.setup_turn(str(lock)):
            entered.append(True)
    thread = waiter(take_turn)
    while "another ./pagoda is installing packages" not in capsys.readouterr().err:
        assert thread.is_alive()
        thread.join(0.01)
    assert not entered
    proc.stdin.close()
    proc.wait()
    thread.join()
    assert entered


def test_apt_is_asked_to_wait_for_its_lock(monkeypatch, tmp_path):
    """Every apt-get the setup runs waits for apt's lock itself too (a package manager that starts
    between our look and apt's), after our own wait."""
    ran, waited = [], []
    monkeypatch.setattr(deps, "_run_logged", lambda cmd, env, log, on_line: ran.append(cmd) or 0)
    monkeypatch.setattr(deps, "wait_for_package_manager", lambda: waited.append(len(ran)))
    monkeypatch.setattr(deps, "missing", lambda requirements: [])
    monkeypatch.setattr(deps.os, "geteuid", lambda: 0)
    monkeypatch.setenv("PAGODA_SETUP_LOG", str(tmp_path / "setup.log"))
    deps.install([deps.Requirement("qemu", "qemu-system-x86", "runs the kernel", "exe", "qemu-system-x86_64")])
    assert ran and waited == list(range(len(ran)))
    assert all(cmd[0] == "apt-get" and cmd[2:4] == ["-o", f"DPkg::Lock::Timeout={deps.APT_LOCK_TIMEOUT}"]
               for cmd in ran)


def test_the_tests_own_tools_are_installed_by_setup_and_test_alone(monkeypatch):
    """chromium (the picture's browser test) is installed by ./pagoda setup and ./pagoda test, never
    by run, grade or an autograder's setup --grading (deps.ensure() without requirements)."""
    assert "chromium" in deps.packages(deps.needed())
    assert "chromium" not in deps.packages(deps.needed(grading_only=True))
    installed = []
    monkeypatch.setattr(deps, "missing", lambda requirements: list(requirements))
    monkeypatch.setattr(deps, "install_missing", lambda requirements: installed.append(deps.packages(requirements)))
    deps.ensure()
    deps.ensure(deps.REQUIREMENTS)
    assert "chromium" not in installed[0] and "chromium" in installed[1]
