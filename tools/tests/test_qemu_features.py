"""qemu.missing_cpu_features: the requested CPU features a QEMU says it cannot emulate (QEMU 6.2's
TCG has no UMIP), read from QEMU's own warnings; and the note a test leaves under its result."""
import io
import os
import stat
from types import SimpleNamespace

import pytest

from pagoda import grade
from pagoda_core import qemu

# What QEMU 6.2 (Ubuntu 22.04) writes for the grader's x86_64 machine, plus a feature this grader
# does not ask for and one without a name.
JAMMY_STDERR = (
    "qemu-system-x86_64: warning: TCG doesn't support requested feature: CPUID.07H:ECX.umip [bit 2]\n"
    "qemu-system-x86_64: warning: TCG doesn't support requested feature: CPUID.07H:EBX.avx512f [bit 16]\n"
    "qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.80000001H:ECX [bit 30]\n")


def test_the_warnings_name_the_features():
    assert qemu.parse_missing_features(JAMMY_STDERR) == {"umip", "avx512f", "CPUID.80000001H:ECX"}
    assert qemu.parse_missing_features("qemu-system-x86_64: -S: some other warning\n") == set()
    assert qemu.parse_missing_features("") == set()


def test_the_grader_asks_for_smep_smap_umip_on_x86_64_only():
    assert qemu.requested_features("x86_64") == {"smep", "smap", "umip"}
    assert qemu.requested_features("aarch64") == set()


@pytest.fixture
def fake_qemu(tmp_path, monkeypatch):
    """Puts a qemu-system-x86_64 on PATH that writes @p stderr and exits with @p status."""
    monkeypatch.setattr(qemu, "_missing_features", {})

    def make(stderr, status=0):
        binary = tmp_path / "qemu-system-x86_64"
        (tmp_path / "err.txt").write_text(stderr)
        binary.write_text(f"#!/bin/sh\ncat >/dev/null\ncat '{tmp_path / 'err.txt'}' >&2\n"
                          f"echo \"$@\" >> '{tmp_path / 'calls'}'\nexit {status}\n")
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
        return tmp_path / "calls"
    return make


def test_the_probe_keeps_only_what_the_grader_asked_for_and_asks_once(fake_qemu):
    calls = fake_qemu(JAMMY_STDERR)
    assert qemu.missing_cpu_features("x86_64") == {"umip"}
    assert qemu.missing_cpu_features("x86_64") == {"umip"}
    lines = calls.read_text().splitlines()
    assert len(lines) == 1 and "-cpu qemu64,+smep,+smap,+umip" in lines[0] and "-S" in lines[0].split()


def test_a_qemu_that_has_everything_lacks_nothing(fake_qemu):
    fake_qemu("")
    assert qemu.missing_cpu_features("x86_64") == set()


def test_a_qemu_that_does_not_start_is_an_error_not_a_lack(fake_qemu):
    fake_qemu("qemu-system-x86_64: -M microvm: unsupported machine type\n", status=1)
    with pytest.raises(RuntimeError, match="unsupported machine type"):
        qemu.missing_cpu_features("x86_64")


def test_qemu_is_not_asked_for_what_it_lacks(fake_qemu):
    """QEMU 6.2 would warn of UMIP on every start, in the middle of ./pagoda's own lines: the boot
    command leaves out what the probe found missing, and keeps the rest of the machine."""
    fake_qemu(JAMMY_STDERR)
    argv = qemu.command("kernel.elf", arch="x86_64")
    assert argv[argv.index("-cpu") + 1] == "qemu64,+smep,+smap"
    full = list(qemu.MACHINES["x86_64"].args)
    full[full.index("-cpu") + 1] = "qemu64,+smep,+smap"
    assert argv[1:1 + len(full)] == full


def test_qemu_is_asked_for_everything_when_it_has_it_or_the_probe_fails(fake_qemu, monkeypatch):
    fake_qemu("")
    argv = qemu.command("kernel.elf", arch="x86_64")
    assert argv[argv.index("-cpu") + 1] == "qemu64,+smep,+smap,+umip"
    qemu._missing_features.clear()
    calls = fake_qemu("qemu-system-x86_64: -M microvm: unsupported machine type\n", status=1)
    argv = qemu.command("kernel.elf", arch="x86_64")
    assert argv[argv.index("-cpu") + 1] == "qemu64,+smep,+smap,+umip"
    os.unlink(calls.parent / "qemu-system-x86_64")
    monkeypatch.setenv("PATH", str(calls.parent))   # no QEMU at all: the boot will say so
    argv = qemu.command("kernel.elf", arch="x86_64")
    assert argv[argv.index("-cpu") + 1] == "qemu64,+smep,+smap,+umip"


def test_a_note_is_printed_under_a_passed_and_a_failed_test():
    spec = lambda i: SimpleNamespace(id=i, points=1, hidden=False)   # noqa: E731
    labs = {3: SimpleNamespace(title="roots", tests=[spec("privileged"), spec("roots_verified")])}
    note = "this QEMU cannot emulate umip (QEMU's own warning); what needs it is not asked for"
    results = {(3, "privileged"): {"outcome": "passed", "duration": 1.0, "reason": "", "note": note},
               (3, "roots_verified"): {"outcome": "failed", "duration": 1.0, "reason": "SMEP is off", "note": note}}
    out = io.StringIO()
    assert grade.print_table([3], labs, results, out=out) == (1, 2)
    text = out.getvalue()
    assert text.count("note: this QEMU cannot emulate umip") == 2, text
    assert text.index("SMEP is off") < text.rindex("note:")
