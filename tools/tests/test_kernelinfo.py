"""kernelinfo: the self-tests and the least RAM read from the kernel ELF, checked against the
symbol table and against real boots."""
import os
import re
import resource
import subprocess
import threading
import time

import pytest

from pagoda_core import build, kernelinfo, paths, qemu
from pagoda_core.speed import scaled  # noqa: E402  (limits for this machine: speed.py)


@pytest.fixture(scope="module")
def kernel():
    return build.build_kernel()


def pagoda(*argv):
    return subprocess.run([paths.SYSTEM_PYTHON, os.path.join(paths.ROOT, "pagoda"), *argv],
                          cwd=paths.ROOT, capture_output=True, text=True, timeout=scaled(120))


def test_selftests_match_the_symbol_table(kernel):
    """The descriptors' names (read through their pointers) against their symbols' names."""
    nm = subprocess.run(["llvm-nm", "--demangle", kernel], capture_output=True, text=True, check=True).stdout
    from_symbols = set(re.findall(r"\bpagoda_selftest_desc_(\w+)$", nm, re.M))
    listed = kernelinfo.selftests(kernel)
    assert len(listed) == len(set(listed)) >= 10
    assert set(listed) == from_symbols
    assert {"shutdown", "pf", "hang", "vm_translate"} <= set(listed)


def test_run_lists_the_self_tests_instead_of_booting_an_unknown_one(kernel):
    out = pagoda("run", "--test", "nosuch")
    assert out.returncode == 2
    assert "the kernel has no self-test 'nosuch'; known self-tests: shutdown ud pf" in out.stderr
    assert "booting" not in out.stderr


def cpu_seconds(pid):
    """CPU time (user + system) process @p pid has used so far, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def children_cpu():
    own = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime


def boot_outcome(kernel, mib, arch=paths.DEFAULT_ARCH, cpu_budget=None):
    """(outcome, output) of booting @p kernel in @p mib MiB to the shutdown self-test. A "hang"
    runs past the time limit or, with @p cpu_budget, has made QEMU spend that many CPU seconds
    without ending: under TCG the guest advances with QEMU's CPU time, not the clock, so a boot
    that has used several times a clean boot's CPU is not booting cleanly, however busy the
    machine (a kernel that spins in an exception loop would otherwise burn a CPU to the limit)."""
    argv = qemu.command(kernel, "test=shutdown", arch=arch, memory=f"{mib}M", serial="stdio")
    proc = qemu.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    chunks = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    deadline = time.monotonic() + scaled(15)
    while proc.poll() is None:
        spent = cpu_seconds(proc.pid)
        if time.monotonic() > deadline or (cpu_budget is not None and spent is not None and spent > cpu_budget):
            qemu.kill_group(proc)
            reader.join()
            return "hang", b"".join(chunks)
        time.sleep(0.05)
    reader.join()
    return qemu.describe_exit(proc.returncode), b"".join(chunks)


@pytest.mark.parametrize("arch", paths.ARCHES)
def test_the_minimum_memory_is_the_least_that_boots(arch):
    kernel = build.build_kernel(arch)
    machine = qemu.MACHINES[arch]
    least = kernelinfo.minimum_memory(kernel, machine)
    image_end = kernelinfo.elf(kernel).load_end(machine.ram_base)
    assert least * kernelinfo.MiB >= image_end  # equal when the image ends on a MiB boundary
    before = children_cpu()
    outcome, out = boot_outcome(kernel, least, arch)
    assert outcome == "clean shutdown", out.decode(errors="replace")[-2000:]
    clean = children_cpu() - before             # what QEMU spent on the clean boot
    # One MiB less must not boot, and must say so and stop: a panic naming the RAM it got and
    # the least it needs, the same line on every ISA (kernel/boot/memmap.cpp), and promptly:
    # given four times the clean boot's CPU, a boot that spins (AArch64 once faulted clearing
    # a .bss past the end of RAM, before its exception vectors were live) counts as a hang.
    outcome, out = boot_outcome(kernel, least - 1, arch, cpu_budget=4 * clean + 1.0)
    text = out.decode(errors="replace")
    assert outcome != "clean shutdown", f"-m {least - 1}M boots too: the minimum is not tight"
    assert outcome == "kernel panic (failure status)", f"-m {least - 1}M: {outcome}\n{text[-2000:]}"
    said = re.search(r"PANIC: .*too little memory: (\d+) KiB of RAM, the kernel needs at least (\d+) KiB \((.*)\)", text)
    assert said, f"-m {least - 1}M panics without saying the RAM is too little:\n{text[-2000:]}"
    got, need, why = int(said[1]), int(said[2]), said[3]
    # The RAM it names is what the firmware left it: all of -m, or (QEMU 10's SeaBIOS, Debian 13)
    # all but the top page, which the firmware keeps for itself.
    assert (least - 2) * 1024 < got <= (least - 1) * 1024 and need > got, said[0]
    if why == "its image ends there":   # the need is the image's end, past the RAM given
        assert need > (least - 1) * 1024, said[0]


def test_run_refuses_too_little_memory_with_the_minimum(kernel):
    least = kernelinfo.minimum_memory(kernel, qemu.MACHINES[paths.DEFAULT_ARCH])
    out = pagoda("run", "-m", "1M")
    assert out.returncode == 2
    assert f"-m 1M is too little RAM: this kernel boots in {least}M or more" in out.stderr


@pytest.mark.parametrize("run_options", [["--test", "nosuch"], ["-m", "1M"]])
def test_gdb_refuses_what_run_refuses_before_starting_qemu(kernel, run_options):
    """`./pagoda gdb -- OPTIONS` takes the same boot options as run, and the same checks: an
    unknown self-test or too little RAM is an error before QEMU or GDB starts, not a silent hang
    under the debugger."""
    out = pagoda("gdb", "--batch", "--", *run_options)
    assert out.returncode == 2, out.stderr
    assert ("has no self-test 'nosuch'" if "--test" in run_options else "too little RAM") in out.stderr
    assert "is paused" not in out.stderr and "gdbstub" not in out.stderr
    out = pagoda("gdb", "--batch", *run_options)
    assert out.returncode == 2, out.stderr
