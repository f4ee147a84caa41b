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
