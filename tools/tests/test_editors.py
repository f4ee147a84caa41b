"""The editor wiring in .vscode/ and .clangd: launch configurations and tasks for both ISAs
that ./pagoda accepts, problem matchers that find real clang, ld.lld and CMake errors, and the
compilation database ./pagoda build writes for clangd and the C/C++ extension."""
import json
import os
import re
import shutil
import subprocess

import pytest

from pagoda import cli
from pagoda_core import build, paths

from pagoda_grade import symbols

VSCODE = os.path.join(paths.ROOT, ".vscode")
WS = "${workspaceFolder}"


def jsonc(name):
    """A VS Code settings file: JSON with // comments (outside strings) and trailing commas."""
    with open(os.path.join(VSCODE, name)) as f:
        text = f.read()
    out, i, in_string = [], 0, False
    while i < len(text):
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\":
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif text.startswith("//", i):
            i = text.index("\n", i) - 1
        else:
            out.append(c)
        i += 1
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", "".join(out)))


TASKS = {t["label"]: t for t in jsonc("tasks.json")["tasks"]}
INPUTS = {i["id"]: i for i in jsonc("tasks.json")["inputs"]}
LAUNCH = jsonc("launch.json")["configurations"]
ISA = {"x86_64": {"gdb_arch": "x86_64", "target": "x86_64-unknown-none-elf"},
       "aarch64": {"gdb_arch": "arm64", "target": "aarch64-unknown-none-elf"}}


def expand(text, arch=None):
    """A task's or configuration's string with VS Code's variables filled in (inputs: default)."""
    text = text.replace(WS, paths.ROOT)
    return re.sub(r"\$\{input:(\w+)\}", lambda m: INPUTS[m[1]]["default"], text)


def task_argv(label):
    task = TASKS[label]
    assert task["command"] == f"{WS}/pagoda", task
    return [expand(a) for a in task["args"]]


@pytest.mark.parametrize("arch", paths.ARCHES)
def test_each_isa_can_be_built_run_and_debugged(arch):
    configs = [c for c in LAUNCH if c.get("type") == "cppdbg" and f"/build/{arch}/" in c["program"]]
    assert len(configs) >= 3, [c["name"] for c in LAUNCH]
    for c in configs:
        assert c["program"] == f"{WS}/build/{arch}/kernel.elf"
        assert c["targetArchitecture"] == ISA[arch]["gdb_arch"] and c["miDebuggerPath"] == "gdb-multiarch"
        assert any(s["text"] == f"add-auto-load-safe-path {WS}/build/{arch}" for s in c["setupCommands"])
        argv = task_argv(c["preLaunchTask"])
        args = cli.parser().parse_args(argv)        # ./pagoda takes the task's command line
        assert args.command == "run" and args.arch == arch
        assert expand(c["miDebuggerServerAddress"]) == os.path.abspath(args.gdb)
        assert TASKS[c["preLaunchTask"]]["isBackground"]
        stop = TASKS[c["postDebugTask"]]["command"]
        assert f"target remote {c['miDebuggerServerAddress']}" in stop
    native = [c for c in LAUNCH if c.get("type") == "gdb" and f"/build/{arch}/" in c["executable"]]
    assert len(native) == 1 and task_argv(native[0]["preLaunchTask"])[:3] == ["run", "--arch", arch]
    built = cli.parser().parse_args(task_argv(f"pagoda: build {arch}"))
    assert built.command == "build" and built.targets == [arch]


@pytest.mark.parametrize("arch", paths.ARCHES)
def test_the_breakpoints_name_symbols_of_that_kernel(arch):
    """`break pagoda::panic_end` and the entry point's tbreak must resolve in that ISA's ELF."""
    kernel = build.build_kernel(arch)
    names = set()
    for c in LAUNCH:
        if c.get("program", c.get("executable", "")).endswith(f"/build/{arch}/kernel.elf"):
            for cmd in c.get("postRemoteConnectCommands", []) + [{"text": a} for a in c.get("autorun", [])]:
                m = re.fullmatch(r"t?break (\S+)", cmd["text"])
                if m:
                    names.add(m[1])
    assert "pagoda::panic_end" in names and len(names) >= 2
    for name in names:
        assert symbols.find(kernel, name).address


def test_only_the_x86_64_build_is_the_default():
    defaults = [t["label"] for t in TASKS.values() if isinstance(t.get("group"), dict) and t["group"].get("isDefault")]
    assert defaults == ["pagoda: build x86_64"]


# ---- problem matchers, against what the real tools print --------------------------------------

def matchers(label):
    return TASKS[label]["problemMatcher"]


def apply(matcher, lines, arch):
    """What VS Code would put in the Problems panel: (absolute file, line, severity, message)."""
    patterns = matcher["pattern"] if isinstance(matcher["pattern"], list) else [matcher["pattern"]]
    kind, base = matcher["fileLocation"]
    assert kind == "autoDetect"
    base = expand(base, arch)
    found = []
    for i in range(len(lines) - len(patterns) + 1):
        groups = {}
        for k, pattern in enumerate(patterns):
            m = re.search(pattern["regexp"], lines[i + k])
            if not m:
                break
            for key in ("file", "line", "column", "severity", "message"):
                if key in pattern:
                    groups[key] = m.group(pattern[key])
        else:
            path = groups["file"] if os.path.isabs(groups["file"]) else os.path.join(base, groups["file"])
            found.append((os.path.normpath(path), int(groups["line"]),
                          groups.get("severity", matcher.get("severity")), groups.get("message")))
    return found


@pytest.fixture(scope="module")
def broken_sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("broken")
    (d / "a.cpp").write_text("int f(int x) {\n  if (x = 1) return 0;\n  return undefined_name;\n}\n")
    (d / "b.cpp").write_text("int missing();\nextern \"C\" int start() { return missing(); }\n")
    return d


@pytest.mark.parametrize("arch", paths.ARCHES)
def test_clang_errors_and_warnings_land_at_their_line(arch, broken_sources):
    out = subprocess.run(["clang++", f"--target={ISA[arch]['target']}", "-ffreestanding", "-Wall",
                          "-fsyntax-only", str(broken_sources / "a.cpp")], capture_output=True, text=True)
    assert out.returncode != 0
    found = [p for m in matchers(f"pagoda: build {arch}") for p in apply(m, out.stderr.splitlines(), arch)]
    a = str(broken_sources / "a.cpp")
    assert (a, 3, "error", "use of undeclared identifier 'undefined_name'") in found, out.stderr
    assert any(f == a and line == 2 and sev == "warning" for f, line, sev, _ in found), found
    assert len(found) == 2, found          # not the source lines, carets or "1 error generated"


@pytest.mark.parametrize("arch", paths.ARCHES)
def test_an_undefined_symbol_lands_where_it_is_used(arch, broken_sources, tmp_path):
    obj = tmp_path / "b.o"
    subprocess.run(["clang++", f"--target={ISA[arch]['target']}", "-ffreestanding", "-g", "-c",
                    str(broken_sources / "b.cpp"), "-o", str(obj)], check=True)
    out = subprocess.run(["ld.lld", "-e", "start", str(obj), "-o", str(tmp_path / "b.elf")],
                         capture_output=True, text=True)
    assert out.returncode != 0
    found = [p for m in matchers(f"pagoda: build {arch}") for p in apply(m, out.stderr.splitlines(), arch)]
    assert found == [(str(broken_sources / "b.cpp"), 2, "error", "undefined symbol: missing()")], out.stderr


def test_a_cmake_error_lands_in_its_cmakelists(tmp_path):
    if shutil.which("cmake") is None:
        pytest.skip("cmake missing")
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(x NONE)\n\nadd_library(stray STATIC no_such_file.cpp)\n")
    # Ninja, the generator the project builds with (setup installs it; a fresh machine has no make)
    out = subprocess.run(["cmake", "-G", "Ninja", "-S", str(tmp_path), "-B", str(tmp_path / "b")], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode != 0
    lines = (out.stdout + out.stderr).splitlines()
    # The matcher's base is the workspace: CMake prints paths relative to the source tree.
    cmake = [m for m in matchers("pagoda: build x86_64") if m["source"] == "cmake"][0]
    found = apply(dict(cmake, fileLocation=["autoDetect", str(tmp_path)]), lines, "x86_64")
    assert found and found[0][:3] == (str(tmp_path / "CMakeLists.txt"), 4, "error"), lines
    assert found[0][3], lines


# ---- the compilation database ------------------------------------------------------------------

def test_editors_are_pointed_at_the_merged_database():
    with open(os.path.join(paths.ROOT, ".clangd")) as f:
        assert re.search(r"^\s+CompilationDatabase: build\s*$", f.read(), re.M)
    settings = jsonc("settings.json")
    assert f"--compile-commands-dir={WS}/build" in settings["clangd.arguments"]
    assert settings["C_Cpp.default.compileCommands"] == f"{WS}/build/compile_commands.json"
    configs = {c["name"]: c["compileCommands"] for c in jsonc("c_cpp_properties.json")["configurations"]}
    assert sorted(configs.values()) == sorted([f"{WS}/build/compile_commands.json"] +
                                              [f"{WS}/build/{a}/compile_commands.json" for a in paths.ARCHES])


def fake_build(root, preset, files):
    os.makedirs(root / preset, exist_ok=True)
    (root / preset / "compile_commands.json").write_text(json.dumps(
        [{"directory": str(root / preset), "file": f"/src/{f}", "command": f"clang++ --target={preset} -c /src/{f}"}
         for f in files]))


def test_the_merge_gives_each_file_its_own_isa(tmp_path):
    assert build.merge_compile_commands(str(tmp_path)) is None
    fake_build(tmp_path, "aarch64", ["kernel/mm/vm.cpp", "arch/aarch64/mmu.cpp"])
    fake_build(tmp_path, "x86_64", ["kernel/mm/vm.cpp", "arch/x86_64/mmu.cpp"])
    fake_build(tmp_path, "host", ["kernel/mm/vm.cpp", "kernel/tests/vma_test.cpp"])
    path = build.merge_compile_commands(str(tmp_path))
    with open(path) as f:
        merged = {e["file"]: e["command"].split()[1] for e in json.load(f)}
    assert merged == {"/src/kernel/mm/vm.cpp": "--target=x86_64", "/src/arch/x86_64/mmu.cpp": "--target=x86_64",
                      "/src/arch/aarch64/mmu.cpp": "--target=aarch64",
                      "/src/kernel/tests/vma_test.cpp": "--target=host"}
    stamp = os.stat(path).st_mtime_ns
    os.utime(path, ns=(stamp - 10**9, stamp - 10**9))
    build.merge_compile_commands(str(tmp_path))               # unchanged: not rewritten
    assert os.stat(path).st_mtime_ns == stamp - 10**9


def test_pagoda_build_writes_the_database():
    for arch in paths.ARCHES:
        build.build_kernel(arch)
    with open(os.path.join(paths.BUILD, "compile_commands.json")) as f:
        merged = json.load(f)
    for arch in paths.ARCHES:
        own = [e for e in merged if f"/arch/{arch}/" in e["file"]]
        target = re.compile(rf"(--target=|-target ){ISA[arch]['target']}\b")    # C++ and assembly
        assert own and all(target.search(e.get("command", " ".join(e.get("arguments", [])))) for e in own)
    assert any(e["file"].endswith("kernel/mm/vm.cpp") for e in merged)
