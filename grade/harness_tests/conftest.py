"""Tests of the grader itself; they import the grader's modules directly.

Fixture kernels (hostile variants of the reference kernel, grade/harness_tests/fixtures/) are
built once per run, under a lock, with `fixture_kernel(name)`. Helpers the tests import live in
modules of their own names (graderrun.py: `run_grader`), never here: every test directory has a
conftest.py, and one pytest command may collect several of them, so `from conftest import`
would find whichever came first."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "gdb"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.dirname(HERE))

from pagoda_core import build, paths, pytest_cpu  # noqa: E402


def pytest_configure(config):
    pytest_cpu.register(config)     # each test's CPU time, the dearest listed after the run


def _locked_build(targets, arch=paths.DEFAULT_ARCH):
    with build.locked(arch):   # one ninja at a time in build/<arch>, whatever the worker
        build.configure(arch)
        out = subprocess.run(["cmake", "--build", "--preset", arch, "--target", *targets],
                             cwd=paths.ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]


@pytest.fixture(scope="session")
def reference_kernel():
    """The reference kernel ELF, built (once) under the grader's build lock."""
    _locked_build(["kernel"])
    return paths.kernel_elf(paths.DEFAULT_ARCH)


@pytest.fixture(scope="session")
def aarch64_kernel():
    """The AArch64 reference kernel ELF, built (once) under the grader's build lock."""
    _locked_build(["kernel"], "aarch64")
    return paths.kernel_elf("aarch64")


def _kernel_names(kernel, arch):
    from pagoda_core import kernelinfo
    from pagoda_pt.isa import isa
    from pagoda_pt.kernelnames import KernelNames
    return KernelNames.read(isa(arch), kernelinfo.elf(kernel).names)


@pytest.fixture(scope="session")
def x86_names():
    """The x86_64 reference kernel's tables of names (pagoda_pt.kernelnames), read from its ELF: what
    a synthetic QEMU log is described with, as the grader describes a boot's."""
    _locked_build(["kernel"], "x86_64")
    return _kernel_names(paths.kernel_elf("x86_64"), "x86_64")


@pytest.fixture(scope="session")
def aarch64_names(aarch64_kernel):
    """The AArch64 reference kernel's tables of names, read from its ELF."""
    return _kernel_names(aarch64_kernel, "aarch64")


def _fixture_kernels(arch):
    """Builds every fixture kernel of @p arch; returns name -> ELF path."""
    _locked_build(["kernel", "grader-fixtures"], arch)
    directory = os.path.join(paths.build_dir(arch), "fixtures")
    return {f[:-4]: os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".elf")}


@pytest.fixture(scope="session")
def fixture_kernels():
    """Every fixture kernel of the default arch, built once: name -> ELF path."""
    return _fixture_kernels(paths.DEFAULT_ARCH)


@pytest.fixture(scope="session")
def aarch64_fixture_kernels():
    """Every AArch64 fixture kernel (grade/harness_tests/fixtures/aarch64/), built once."""
    return _fixture_kernels("aarch64")

