"""The generated lab trees compile through one shared object cache when ccache is installed, and
build as before without it (tools/pagoda/treebuild.py)."""
import os
import shutil

from pagoda import treebuild


def _cache(tree, arch, launcher=None, flags=""):
    build = os.path.join(tree, "build", arch)
    os.makedirs(build, exist_ok=True)
    line = "" if launcher is None else "".join(f"CMAKE_{lang}_COMPILER_LAUNCHER:STRING={launcher}\n"
                                               f"CMAKE_{lang}_FLAGS:STRING={flags}\n" for lang in ("C", "CXX"))
    with open(os.path.join(build, "CMakeCache.txt"), "w") as f:
        f.write("CMAKE_BUILD_TYPE:STRING=RelWithDebInfo\n" + line)


def with_ccache(monkeypatch, present):
    real = shutil.which
    monkeypatch.setattr(treebuild.shutil, "which",
                        lambda name: ("/usr/bin/ccache" if present else None) if name == "ccache" else real(name))


def test_every_tree_shares_one_cache_keyed_relative_to_its_own_root(tmp_path, monkeypatch):
    with_ccache(monkeypatch, True)
    monkeypatch.delenv(treebuild.TREE_CACHE_VARIABLE, raising=False)
    lab3, lab4 = tmp_path / "labs-check" / "lab3", tmp_path / "labs-check" / "lab4"
    a, b = treebuild.launcher(str(lab3)).split(";"), treebuild.launcher(str(lab4)).split(";")
    assert a[-1] == "/usr/bin/ccache" and os.path.basename(a[0]) == "env"
    assert f"CCACHE_DIR={tmp_path / 'labs-check' / 'ccache'}" in a and f"CCACHE_DIR={tmp_path / 'labs-check' / 'ccache'}" in b
    assert f"CCACHE_BASEDIR={lab3}" in a and f"CCACHE_BASEDIR={lab4}" in b
    assert "CCACHE_NOHASHDIR=1" in a
    monkeypatch.setenv(treebuild.TREE_CACHE_VARIABLE, str(tmp_path / "kept"))   # (.ci/run's, outside the clone)
    assert f"CCACHE_DIR={tmp_path / 'kept'}" in treebuild.launcher(str(lab3)).split(";")


def test_a_tree_is_configured_until_its_cache_has_the_launcher(tmp_path, monkeypatch):
    with_ccache(monkeypatch, True)
    tree = str(tmp_path / "labs-check" / "lab1")
    argv = treebuild.configure_argv(tree, "x86_64")
    assert argv[:3] == ["cmake", "--preset", "x86_64"]
    assert f"-DCMAKE_CXX_COMPILER_LAUNCHER={treebuild.launcher(tree)}" in argv
    assert f"-DCMAKE_C_COMPILER_LAUNCHER={treebuild.launcher(tree)}" in argv
    assert "-DCMAKE_CXX_FLAGS=-fmacro-prefix-map=../../=" in argv   # __FILE__ as without ccache
    _cache(tree, "x86_64")                          # configured before the cache existed
    assert treebuild.configure_argv(tree, "x86_64") == argv
    _cache(tree, "x86_64", treebuild.launcher(tree))
    assert treebuild.configure_argv(tree, "x86_64") == argv    # the prefix map is missing
    _cache(tree, "x86_64", treebuild.launcher(tree), treebuild.RELATIVE_PREFIX_MAP)
    assert treebuild.configure_argv(tree, "x86_64") is None
    assert treebuild.configure_argv(tree, "aarch64") is not None   # each ISA has its own build


def test_without_ccache_a_tree_builds_without_a_launcher(tmp_path, monkeypatch):
    with_ccache(monkeypatch, False)
    tree = str(tmp_path / "labs-check" / "lab1")
    assert treebuild.launcher(tree) == ""
    assert treebuild.configure_argv(tree, "aarch64") == ["cmake", "--preset", "aarch64",
                                                         "-DCMAKE_C_COMPILER_LAUNCHER=",
                                                         "-DCMAKE_CXX_COMPILER_LAUNCHER=",
                                                         "-DCMAKE_C_FLAGS=", "-DCMAKE_CXX_FLAGS="]
    _cache(tree, "aarch64")                         # an earlier configure, no launcher: kept
    assert treebuild.configure_argv(tree, "aarch64") is None
    _cache(tree, "aarch64", "/usr/bin/env;CCACHE_DIR=x;/usr/bin/ccache")   # ccache since removed
    assert treebuild.configure_argv(tree, "aarch64") is not None


def test_a_tree_can_name_a_cache_of_its_own(tmp_path, monkeypatch):
    """Batch grading's submission trees (WORK/<id>/tree) share the batch's cache, not one beside each."""
    with_ccache(monkeypatch, True)
    tree, cache = str(tmp_path / "work" / "alice" / "tree"), str(tmp_path / "work" / "ccache")
    argv = treebuild.configure_argv(tree, "x86_64", cache)
    assert f"-DCMAKE_CXX_COMPILER_LAUNCHER={treebuild.launcher(tree, cache)}" in argv
    assert f"CCACHE_DIR={cache}" in treebuild.launcher(tree, cache).split(";")
    assert f"CCACHE_BASEDIR={tree}" in treebuild.launcher(tree, cache).split(";")
    _cache(tree, "x86_64", treebuild.launcher(tree), treebuild.RELATIVE_PREFIX_MAP)
    assert treebuild.configure_argv(tree, "x86_64", cache) == argv    # configured with another cache
    _cache(tree, "x86_64", treebuild.launcher(tree, cache), treebuild.RELATIVE_PREFIX_MAP)
    assert treebuild.configure_argv(tree, "x86_64", cache) is None


def _fake_cmake(tmp_path, monkeypatch, fail_on=None):
    """A cmake on PATH that records each call (and whether another was running) and fails on
    an argument @p fail_on."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    script = bin_dir / "cmake"
    script.write_text("#!/bin/sh\n"
                      f"if [ -e {calls}.busy ]; then echo OVERLAP >> {calls}; fi\n"
                      f"touch {calls}.busy; echo \"$*\" >> {calls}; sleep 0.2; rm -f {calls}.busy\n"
                      + (f"case \"$*\" in *{fail_on}*) echo 'error: broken' ; exit 1;; esac\n" if fail_on else "")
                      + "echo built\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return calls


def test_build_configures_then_builds_one_target_and_logs_both(tmp_path, monkeypatch):
    with_ccache(monkeypatch, False)
    calls = _fake_cmake(tmp_path, monkeypatch)
    tree, log = str(tmp_path / "labs-check" / "lab2"), str(tmp_path / "lab2.build.log")
    os.makedirs(tree)
    assert treebuild.build(tree, "x86_64", log, target="kernel")
    assert calls.read_text().splitlines() == [" ".join(treebuild.configure_argv(tree, "x86_64")[1:]),
                                              "--build --preset x86_64 --target kernel"]
    text = open(log).read()
    assert "$ cmake --preset x86_64" in text and "$ cmake --build --preset x86_64 --target kernel" in text
    _cache(tree, "x86_64")          # configured now: only the build runs, for every target
    calls.unlink()
    assert treebuild.build(tree, "x86_64", log)
    assert calls.read_text().splitlines() == ["--build --preset x86_64"]


def test_a_failed_step_fails_the_build(tmp_path, monkeypatch):
    with_ccache(monkeypatch, False)
    _fake_cmake(tmp_path, monkeypatch, fail_on="--build")
    tree, log = str(tmp_path / "lab1"), str(tmp_path / "log")
    os.makedirs(tree)
    assert not treebuild.build(tree, "aarch64", log)
    assert "error: broken" in open(log).read()


def test_builds_of_one_process_run_one_at_a_time(tmp_path, monkeypatch):
    with_ccache(monkeypatch, False)
    calls = _fake_cmake(tmp_path, monkeypatch)
    trees = [str(tmp_path / f"lab{n}") for n in range(3)]
    for t in trees:
        os.makedirs(t)
        _cache(t, "x86_64")
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        assert all(pool.map(lambda t: treebuild.build(t, "x86_64", t + ".log"), trees))
    lines = calls.read_text().splitlines()
    assert lines.count("--build --preset x86_64") == 3 and "OVERLAP" not in lines
