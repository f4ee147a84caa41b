"""What batch grading and Gradescope say about a submission that does not build (its first
compiler, linker or CMake error, with paths relative to the student's tree), and how a CSV cell
is cut (with an ellipsis, not in the middle of a word).

The logs below are the shapes Ninja, clang 14, ld.lld and CMake 3.25 print here (taken from
real failed builds of broken trees, the tree at /sub/tree)."""
import pytest

from pagoda import batch
from pagoda_core.ui import clip

TREE = "/sub/tree"
CLANG = "/usr/bin/clang++ --target=x86_64-unknown-none-elf -I/sub/tree/kernel -Wall -Werror -c " \
        "/sub/tree/kernel/core/cmdline.cpp"

COMPILER_LOG = f"""$ cmake --preset x86_64
-- Configuring done
$ cmake --build --preset x86_64
[12/135] Building CXX object user/CMakeFiles/user_echo_x86_64.dir/programs/echo.cpp.obj
FAILED: arch/x86_64/CMakeFiles/kernel-objects.dir/__/__/kernel/core/cmdline.cpp.obj
{CLANG}
In file included from /sub/tree/kernel/core/cmdline.cpp:3:
/sub/tree/kernel/core/cmdline.hpp:41:12: error: use of undeclared identifier 'undefined_thing'
int oops = undefined_thing;
           ^
/sub/tree/kernel/core/cmdline.cpp:50:1: error: expected ';' after top level declarator
1 error generated.
ninja: build stopped: subcommand failed.
"""

LINKER_LOG = f"""$ cmake --build --preset x86_64
[134/135] Linking CXX executable kernel.elf
FAILED: kernel.elf
{CLANG}
ld.lld: error: undefined symbol: pagoda::vm::missing()
>>> referenced by vm.cpp:40 (/sub/tree/kernel/mm/vm.cpp:40)
>>>               kernel/mm/vm.cpp.obj:(pagoda::vm::init())
clang++: error: linker command failed with exit code 1 (use -v to see invocation)
ninja: build stopped: subcommand failed.
"""

CMAKE_LOG = """$ cmake --preset x86_64
-- The CXX compiler identification is Clang 14.0.6
-- Configuring done
CMake Error at arch/x86_64/CMakeLists.txt:48 (add_library):
  Cannot find source file:

    nothere.cpp


CMake Error at arch/x86_64/CMakeLists.txt:48 (add_library):
  No SOURCES given to target: broken


CMake Generate step failed.  Build files cannot be regenerated correctly.
"""


def log(tmp_path, text):
    path = tmp_path / "build.log"
    path.write_text(text)
    return str(path)


def test_the_first_compiler_error_with_its_source_line(tmp_path):
    block = batch.first_build_error(log(tmp_path, COMPILER_LOG), TREE)
    assert block == ["In file included from kernel/core/cmdline.cpp:3:",
                     "kernel/core/cmdline.hpp:41:12: error: use of undeclared identifier 'undefined_thing'",
                     "int oops = undefined_thing;",
                     "           ^"]
    assert batch.one_line(block) == \
        "kernel/core/cmdline.hpp:41:12: error: use of undeclared identifier 'undefined_thing'"


def test_the_compiler_command_line_is_not_an_error(tmp_path):
    """It says -Werror: the old search for 'error' showed the whole command line."""
    block = batch.first_build_error(log(tmp_path, COMPILER_LOG.replace("In file included", "x").replace(
        "/sub/tree/kernel/core/cmdline.hpp:41:12: error", "w")), TREE)
    assert block[0] == "kernel/core/cmdline.cpp:50:1: error: expected ';' after top level declarator"
    assert not any("-Werror" in line for line in block)


def test_the_linker_error_with_its_references(tmp_path):
    block = batch.first_build_error(log(tmp_path, LINKER_LOG), TREE)
    assert block == ["ld.lld: error: undefined symbol: pagoda::vm::missing()",
                     ">>> referenced by vm.cpp:40 (kernel/mm/vm.cpp:40)",
                     ">>>               kernel/mm/vm.cpp.obj:(pagoda::vm::init())"]


def test_cmake_s_first_error_keeps_its_message(tmp_path):
    """The message is on the indented lines after 'CMake Error at ...:' (it was dropped)."""
    block = batch.first_build_error(log(tmp_path, CMAKE_LOG), TREE)
    assert block[0] == "CMake Error at arch/x86_64/CMakeLists.txt:48 (add_library):"
    assert "nothere.cpp" in "\n".join(block) and "No SOURCES" not in "\n".join(block)
    assert batch.one_line(block) == \
        "CMake Error at arch/x86_64/CMakeLists.txt:48 (add_library): Cannot find source file: nothere.cpp"


def test_no_error_line_gives_the_last_line(tmp_path):
    assert batch.first_build_error(log(tmp_path, "$ cmake --build x\nKilled\n"), TREE) == ["Killed"]


@pytest.mark.parametrize("width", [10, 40, 200])
def test_clip_cuts_with_an_ellipsis(width):
    text = "first failure: vm_map: the entry at 0x343000 maps frame 0x1234000 read-only " * 4
    cut = clip(text, width)
    assert len(cut) <= width and cut.endswith("\u2026")
    assert text.startswith(cut[:-1])
    if width >= 40:
        assert text[len(cut) - 1] == " "            # cut at a word's end, never inside 0x343000
    assert clip("short", width) == "short"


def test_a_long_summary_is_cut_with_an_ellipsis():
    row = batch.Row("s1", notes=["graded lab1 (0123456789ab)", "first failure: x: " + "0x3430 " * 200])
    assert len(row.summary()) <= batch.MAX_SUMMARY and row.summary().endswith("0x3430\u2026")


def test_paths_relative_to_the_build_directory_are_made_relative_to_the_tree(tmp_path):
    """Compiled through the object cache (treebuild.py), clang names the tree's files as ccache
    handed them over: relative to build/x86_64, two levels below the tree."""
    relative = COMPILER_LOG.replace("/sub/tree/", "../../")
    block = batch.first_build_error(log(tmp_path, relative), TREE)
    assert block == ["In file included from kernel/core/cmdline.cpp:3:",
                     "kernel/core/cmdline.hpp:41:12: error: use of undeclared identifier 'undefined_thing'",
                     "int oops = undefined_thing;",
                     "           ^"]
