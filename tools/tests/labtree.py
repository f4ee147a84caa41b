"""Helpers of the lab-machinery tests: a small synthetic source tree with regions of every
comment style, in a fresh git repository.

Region markers are built at run time (see `marker`), never written out as lines of this
source: otherwise `./pagoda labs lint` would read them as regions of the real tree.
"""
import os
import subprocess

WORD = "L" + "AB"


def marker(lab, kind, leader="//", desc="", indent=""):
    """One marker line, e.g. marker(3, "BEGIN") for a C++ file; leader '/*' closes with '*/'."""
    text = f"{indent}{leader} {WORD} {lab} {kind}" + (f" {desc}" if desc else "")
    return text + (" */" if leader == "/*" else "") + "\n"


def region(lab, solution, skeleton=None, leader="//", indent="", desc=""):
    """A whole region: @p solution and @p skeleton are lists of lines without newlines;
    skeleton lines are given uncommented and get commented here, as they are in main."""
    out = marker(lab, "BEGIN", leader, desc, indent)
    out += "".join(f"{indent}{l}\n" for l in solution)
    if skeleton is not None:
        out += marker(lab, "SKELETON", leader, indent=indent)
        close = " */" if leader == "/*" else ""
        out += "".join(f"{indent}{leader} {l}{close}\n" if l else "\n" for l in skeleton)
    return out + marker(lab, "END", leader, indent=indent)


LAB_TOML = 'number = {n}\nname = "{name}"\ntitle = "{title}"\ndepends = []\n\n' \
           '[[tests]]\nid = "t{n}"\npoints = 1\ntimeout = 5\nchecks = "lab {n} works"\n'
LABS = ((0, "boot", "Boot"), (1, "map", "Identity map"), (2, "higher", "Higher half"))


def git_env():
    env = dict(os.environ)
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid",
                "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t.invalid",
                "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"})
    return env


def run_git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, env=git_env(), check=True,
                          capture_output=True).stdout.decode()


def write(root, rel, text, mode=None):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(text, bytes) else "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)
    return path


# The synthetic tree: what each file holds, so that tests can say what a lab tree must contain.
VM_LAB0 = ["u64 lab0_answer = compute_lab0_answer(42);"]
VM_LAB0_SKEL = ["u64 lab0_answer = 0;  // lab 0: compute it"]
VM_LAB1 = ["    map_identity_range(root, 0, kernel_end_address);", "    flush_whole_tlb_now();"]
VM_LAB1_SKEL = ['    panic("lab 1: write map_kernel()");']
VM_LAB2 = ["static int secret_helper_for_lab2 = 1234567;"]
CMAKE_LAB1 = ["target_sources(kernel PRIVATE lab1_solution_file.cpp)"]
CMAKE_LAB1_SKEL = ["target_sources(kernel PRIVATE lab1_stub_file.cpp)"]
LD_LAB0 = [". = KERNEL_PHYS_BASE_FROM_LAB0;"]
LD_LAB0_SKEL = [". = 0x100000;"]
PY_LAB2 = ["    return compute_the_lab2_answer(value)"]
PY_LAB2_SKEL = ['    raise NotImplementedError("lab 2")']
SH_LAB0 = ['echo "lab zero solution script line"']


def build_tree(root):
    """Writes the synthetic source tree into @p root (a fresh git repository)."""
    run_git(root, "init", "-q", "-b", "main")
    for n, name, title in LABS:
        write(root, f"labs/{n:02d}-{name}/lab.toml", LAB_TOML.format(n=n, name=name, title=title))
        write(root, f"labs/{n:02d}-{name}/README.md", f"# Lab {n}\n")
    write(root, ".gitignore", "ignored.txt\nbuild/\n")
    write(root, "ignored.txt", "not published\n")
    write(root, "build/junk.o", "not published\n")
    write(root, "src/vm.cpp",
          "#include \"vm.hpp\"\n\n" + region(0, VM_LAB0, VM_LAB0_SKEL, desc="the lab-0 answer") +
          "\nvoid map_kernel() {\n" + region(1, VM_LAB1, VM_LAB1_SKEL, indent="") +
          "}\n\n" + region(2, VM_LAB2) + "int tail_line_stays_everywhere = 1;\n")
    write(root, "CMakeLists.txt", "project(demo)\n" + region(1, CMAKE_LAB1, CMAKE_LAB1_SKEL, leader="#"))
    write(root, "kernel.ld", "SECTIONS {\n" + region(0, LD_LAB0, LD_LAB0_SKEL, leader="/*", indent="    ") + "}\n")
    write(root, "tools/helper.py", "def answer(value):\n" + region(2, PY_LAB2, PY_LAB2_SKEL, leader="#"))
    write(root, "run.sh", "#!/bin/sh\n" + region(0, SH_LAB0, ["echo todo"], leader="#"), mode=0o755)
    write(root, "data.bin", b"\x00\x01" + marker(1, "BEGIN").encode() + b"\xff\xfe")
    write(root, "docs/markers.md", "Markers look like this:\n\n```\n" + marker(1, "BEGIN") +
          marker(1, "END") + "```\n")
    run_git(root, "add", "labs", ".gitignore", "src", "CMakeLists.txt", "kernel.ld", "run.sh")
    # tools/helper.py, data.bin, docs/ stay untracked (but not ignored): published as well.
    return root
