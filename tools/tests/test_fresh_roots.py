"""tools/fresh-machine's promise: what it mounts in a root is unmounted whatever happens.

The script itself runs for real in its own time (docs/platforms.md: it debootstraps and installs
for tens of minutes); these tests load it and check its mounting on an empty directory, which
needs root (skipped otherwise)."""
import importlib.machinery
import importlib.util
import os
import signal
import subprocess
import time

import pytest

from pagoda_core import paths

SCRIPT = os.path.join(paths.ROOT, "tools", "fresh-machine")


def load():
    loader = importlib.machinery.SourceFileLoader("fresh_machine", SCRIPT)
    spec = importlib.util.spec_from_loader("fresh_machine", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_help_needs_nothing():
    out = subprocess.run([paths.SYSTEM_PYTHON, SCRIPT, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "debootstrap --variant=minbase" in out.stdout


def test_the_commands_run_in_the_clone_with_a_fresh_environment():
    fm = load()
    argv = fm.in_root("/r", "exec ./pagoda test")
    assert argv[:3] == ["chroot", "/r", "/usr/bin/env"] and "-i" in argv
    assert argv[-1] == "cd /root/pagoda && exec ./pagoda test"
    assert not [a for a in argv if a.startswith(("PAGODA_", "PYTHONPATH"))]


def test_each_step_of_the_test_is_reported(tmp_path):
    log = tmp_path / "jammy.test.log"
    log.write_text("pagoda: test: host ...\npagoda test: host: ok (303 tests)\nnoise\n"
                   "E   pagoda test: quoted, not a result\npagoda test: tools: FAILED (3 failed)\n")
    assert load().step_lines(str(log)) == ["pagoda test: host: ok (303 tests)", "pagoda test: tools: FAILED (3 failed)"]


def can_mount():
    """Root, and allowed to mount (a container without CAP_SYS_ADMIN is not)."""
    if os.geteuid() != 0:
        return False
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        if subprocess.run(["mount", "-t", "tmpfs", "none", d], capture_output=True).returncode != 0:
            return False
        subprocess.run(["umount", d])
        return True


as_root = pytest.mark.skipif(not can_mount(), reason="mounting needs root (with the right to mount)")


@as_root
@pytest.mark.parametrize("raised", [RuntimeError, KeyboardInterrupt])
def test_everything_mounted_is_unmounted_on_the_way_out(tmp_path, raised):
    fm = load()
    root = str(tmp_path / "root")
    os.makedirs(root)
    with pytest.raises(raised):
        with fm.Mounted(root):
            points = fm.mounts_under(root)
            assert {os.path.join(root, p) for p in ("proc", "sys", "dev")} <= set(points)
            assert os.path.exists(os.path.join(root, "dev", "null"))
            raise raised()
    assert fm.mounts_under(root) == []
    assert os.path.exists("/dev/null") and os.path.ismount("/proc")   # the host's are untouched


@as_root
def test_a_process_left_in_the_root_is_ended(tmp_path):
    fm = load()
    root = str(tmp_path / "root")
    os.makedirs(root)
    with fm.Mounted(root):
        # a process whose root is this directory: chroot into it needs a program inside, so the
        # process changes its root itself
        pid = os.fork()
        if pid == 0:
            try:
                os.chroot(root)
                signal.pause()
            finally:
                os._exit(0)
        for _ in range(200):
            if fm.processes_in(root):
                break
            time.sleep(0.05)
        assert fm.processes_in(root) == [pid]
    assert os.waitpid(pid, 0)[0] == pid          # ended by Mounted on the way out
    assert fm.mounts_under(root) == []


def test_ubuntu_roots_get_universe_a_checked_keyring_and_a_script(monkeypatch):
    fm = load()
    monkeypatch.setattr(fm, "ubuntu_keyring", lambda suite: f"/k/{suite}.gpg")
    monkeypatch.setattr(fm, "host_dpkg_arch", lambda: "amd64")
    monkeypatch.setattr(fm.os.path, "exists", lambda p: not p.endswith("/scripts/noble"))
    noble = fm.debootstrap_argv("noble", "/r")
    assert "--components=main,universe" in noble and "--keyring=/k/noble.gpg" in noble
    assert noble[-3:] == ["/r", "http://archive.ubuntu.com/ubuntu", "/usr/share/debootstrap/scripts/gutsy"]
    jammy = fm.debootstrap_argv("jammy", "/r")
    assert jammy[-1] == "http://archive.ubuntu.com/ubuntu"       # this debootstrap knows jammy
    bookworm = fm.debootstrap_argv("bookworm", "/r")
    assert not [a for a in bookworm if a.startswith(("--keyring", "--components"))]
    monkeypatch.setattr(fm, "host_dpkg_arch", lambda: "arm64")
    assert fm.mirror("ubuntu") == "http://ports.ubuntu.com/ubuntu-ports"


def test_an_ubuntu_root_has_a_stock_machine_s_sources(tmp_path, monkeypatch):
    fm = load()
    monkeypatch.setattr(fm, "host_dpkg_arch", lambda: "amd64")
    os.makedirs(tmp_path / "etc" / "apt")
    fm.stock_sources("jammy", str(tmp_path))
    lines = (tmp_path / "etc" / "apt" / "sources.list").read_text().splitlines()
    assert [l.split()[2] for l in lines] == ["jammy", "jammy-updates", "jammy-security"]
    assert all(l.endswith("main universe") for l in lines)
    fm.stock_sources("bookworm", str(tmp_path / "nowhere"))    # Debian's are left as made


def test_key_fingerprints_read_both_packet_formats(tmp_path):
    import hashlib
    fm = load()
    key = b"\x04" + bytes(range(60))             # a version-4 public-key packet body
    sub = b"\x04" + bytes(range(100, 150))
    user_id = b"someone"
    expected = [hashlib.sha1(b"\x99" + len(b).to_bytes(2, "big") + b).hexdigest().upper() for b in (key, sub)]
    old = bytes([0x99]) + len(key).to_bytes(2, "big") + key + bytes([0xB4, len(user_id)]) + user_id \
        + bytes([0xB9]) + len(sub).to_bytes(2, "big") + sub
    new = bytes([0xC6, len(key)]) + key + bytes([0xCD, len(user_id)]) + user_id + bytes([0xCE, len(sub)]) + sub
    for name, data in (("old", old), ("new", new)):
        path = tmp_path / name
        path.write_bytes(data)
        assert fm.key_fingerprints(str(path)) == expected
    (tmp_path / "armored").write_bytes(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    with pytest.raises(RuntimeError, match="not a binary OpenPGP keyring"):
        fm.key_fingerprints(str(tmp_path / "armored"))


def test_the_echoed_word_is_the_program_s_line_not_the_typed_command():
    fm = load()
    typed = b"$ echo fresh01234567\r\r\nproc 2 (echo): exec; root 0x36e000\r\r\n"
    assert not fm.echoed("fresh01234567", typed)
    assert fm.echoed("fresh01234567", typed + b"fresh01234567\r\r\n")
    assert fm.echoed("fresh01234567", typed + b"echo: argc 2: fresh01234567 proof=ab\r\n")
    assert not fm.echoed("fresh01234567", typed + b"fresh0123456\r\n")
