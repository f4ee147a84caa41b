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
    lab3, lab4 = tmp_path / "labs-check" / "lab3", tmp_path / "labs-check" / "lab4"
    a, b = treebuild.launcher(str(lab3)).split(";"), treebuild.launcher(str(lab4)).split(";")
    assert a[-1] == "/usr/bin/ccache" and os.path.basename(a[0]) == "env"
    assert f"CCACHE_DIR={tmp_path / 'labs-check' / 'ccache'}" in a and f"CCACHE_DIR={tmp_path / 'labs-check' / 'ccache'}" in b
    assert f"CCACHE_BASEDIR={lab3}" in a and f"CCACHE_BASEDIR={lab4}" in b
    assert "CCACHE_NOHASHDIR=1" in a


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
