"""The sandbox a submission's build runs in (tools/pagoda/sandbox.py), attacked directly, in each
mode this machine can run: a build that writes everywhere it should not and leaves processes
behind reaches nothing, and after clean() nothing of it runs or lies around."""
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from pagoda import sandbox
from pagoda_core import qemu


def modes():
    found = []
    if os.geteuid() == 0:
        found.append("uid")
        try:
            if sandbox.detect() == "namespaces":
                found.append("namespaces")
        except sandbox.SandboxError:
            pass
    if sandbox.shutil.which("bwrap") and sandbox._works(["bwrap", "--ro-bind", "/", "/", "--unshare-all", "true"]):
        found.append("bwrap")
    return found


HOSTILE = textwrap.dedent('''\
    import os, sys
    targets, build, secret, token = sys.argv[1].split(":"), sys.argv[2], sys.argv[3], sys.argv[4]
    for t in targets:
        try:
            os.makedirs(os.path.dirname(t), exist_ok=True)
            with open(t, "w") as f:
                f.write("pwned")
        except OSError:
            pass
    try:
        with open(secret) as f:
            leaked = f.read()
    except OSError:
        leaked = ""
    with open(os.path.join(build, "report"), "w") as f:
        f.write(f"{os.getuid()} {os.environ.get('HOME')} {leaked}")
    # A daemon: two forks and a new session, out of the build's process group.
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sh", ["sh", "-c", "while true; do sleep 5; done", token])
        os._exit(0)
    os.wait()
    ''')


@pytest.mark.parametrize("mode", modes())
def test_a_hostile_build_reaches_nothing_and_leaves_nothing(mode, tmp_path):
    token = f"pagoda-sandbox-test-{mode}-{os.getpid()}"
    grader = tmp_path / "grader"                      # the grader's folder: hidden tests
    (grader / "hidden").mkdir(parents=True)
    secret = grader / "hidden" / "test_secret.py"
    secret.write_text("the hidden test\n")
    os.chmod(grader, 0o755)
    home = tmp_path / "home"                          # the grader's HOME and user site
    home.mkdir()
    targets = [str(home / ".local/lib/python3/site-packages/usercustomize.py"), str(grader / "conftest.py"),
               f"/etc/{token}", f"/tmp/{token}", f"/var/tmp/{token}", f"/dev/shm/{token}"]
    stage, box = sandbox.staging_dir(), None
    try:
        tree = os.path.join(stage, "tree")
        os.makedirs(tree)
        os.chmod(tree, 0o755)
        build = os.path.join(tree, "build")
        box = sandbox.Sandbox(os.path.join(stage, "box"), build, mode=mode).prepare()
        argv = box.wrap([sys.executable, "-I", "-c", HOSTILE, ":".join(targets), build, str(secret), token], tree)
        # (output to a file, as the batch's build log: a daemon holding a pipe open would keep
        # run() waiting for its end)
        with open(tmp_path / "log", "w") as log:
            r = subprocess.run(argv, cwd=tree, env=box.environment(), stdout=log, stderr=subprocess.STDOUT)
        assert r.returncode == 0, (tmp_path / "log").read_text()
        with open(os.path.join(build, "report")) as f:
            uid, build_home, leaked = (f.read().split(" ", 2) + [""])[:3]
        assert build_home == box.home and leaked == ""          # a HOME of its own; the secret unread
        if mode != "bwrap":
            assert int(uid) == box.uid and int(uid) != os.geteuid()
        box.clean()
        assert qemu.processes_mentioning("sh", token) == []      # the daemon is gone
        assert [t for t in targets if os.path.lexists(t)] == []
        assert not os.path.exists(grader / "conftest.py") and secret.read_text() == "the hidden test\n"
    finally:
        if box is not None:
            box.release()
        for pid in qemu.processes_mentioning("sh", token):      # (a failed run must not leave it)
            os.kill(pid, 9)
        for t in targets:
            if os.path.lexists(t):
                os.unlink(t)
        sandbox.shutil.rmtree(stage, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid sandbox needs root")
def test_two_sandboxes_at_once_never_share_a_uid(tmp_path):
    """Two graders on one machine (two batches; a test beside a batch) each kill every process of
    their sandbox's uid: they must never hold the same one (a batch once killed the other's build)."""
    boxes = [sandbox.Sandbox(str(tmp_path / f"b{i}"), str(tmp_path / f"b{i}" / "build"), mode="uid") for i in range(3)]
    try:
        assert len({b.uid for b in boxes}) == 3
        taken = boxes[0].uid
        boxes[0].release()
        again = sandbox.Sandbox(str(tmp_path / "b3"), str(tmp_path / "b3" / "build"), mode="uid")
        boxes.append(again)
        assert again.uid == taken                  # given back, taken again
    finally:
        for b in boxes:
            b.release()


def test_the_kernel_is_read_only_from_a_regular_file(tmp_path):
    """take_kernel() never follows a link planted in the build folder (it could name any file of
    the grader's machine) and refuses what is not a regular file."""
    build = tmp_path / "build"
    (build / "x86_64").mkdir(parents=True)
    (build / "x86_64" / "kernel.elf").write_bytes(b"\x7fELF kernel")
    assert sandbox.take_kernel(str(build), "x86_64/kernel.elf", str(tmp_path / "k1")) == str(tmp_path / "k1")
    assert (tmp_path / "k1").read_bytes() == b"\x7fELF kernel"
    (build / "x86_64" / "kernel.elf").unlink()
    (build / "x86_64" / "kernel.elf").symlink_to("/etc/passwd")
    assert sandbox.take_kernel(str(build), "x86_64/kernel.elf", str(tmp_path / "k2")) is None
    (build / "x86_64" / "kernel.elf").unlink()
    (build / "x86_64").rename(build / "elsewhere")
    (build / "x86_64").symlink_to(build / "elsewhere")
    (build / "elsewhere" / "kernel.elf").write_bytes(b"\x7fELF")
    assert sandbox.take_kernel(str(build), "x86_64/kernel.elf", str(tmp_path / "k3")) is None
    assert not (tmp_path / "k2").exists() and not (tmp_path / "k3").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid sandbox needs root")
def test_a_folder_the_sandbox_cannot_walk_to_is_refused_clearly(tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir()
    os.chmod(closed, 0o700)
    with pytest.raises(sandbox.SandboxError, match="cannot be entered by other users"):
        sandbox.Sandbox(str(closed / "box"), str(closed / "build"), mode="uid").prepare()
    assert stat.S_IMODE(os.stat(closed).st_mode) == 0o700     # left as it was
