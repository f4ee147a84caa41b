"""The kernel's include rules and the Python side's import rules (tools/pagoda/layers.py): the real
tree keeps them, and each rule catches its violation in a small synthetic tree."""
import os

from pagoda import layers
from pagoda_core import paths


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_the_kernel_keeps_its_layers():
    assert layers.check(paths.ROOT) == []


def test_each_rule_catches_its_violation(tmp_path):
    root = str(tmp_path)
    write(root, "kernel/lib/types.hpp", "#pragma once\n")
    write(root, "kernel/lib/console.cpp", '#include "lib/types.hpp"\n#include "core/arch.hpp"\n')
    write(root, "kernel/core/arch.hpp", '#include "lib/types.hpp"\n#include "core/helper.hpp"\n')
    write(root, "kernel/core/helper.hpp", '#include "mm/pt/page_table.hpp"\n')
    write(root, "kernel/core/lab.hpp", "#pragma once\n")
    write(root, "kernel/mm/pt/page_table.hpp", '#include "mm/pt/walk.hpp"\n#include "arch_impl/page_table_format.hpp"\n')
    write(root, "kernel/mm/pt/walk.hpp", '#include "core/lab.hpp"\n')                        # reaches lab.hpp
    write(root, "kernel/mm/vm.cpp", '#include "core/lab.hpp"\n#include "arch/x86_64/cpu.hpp"\n'
                                    "constexpr u64 kPage = 4 * KiB;  // 4096 in a comment is fine\n")
    write(root, "kernel/mm/heap.cpp", '#include "arch_impl/traps.hpp"\n')
    write(root, "kernel/mm/space/vma.hpp", '#include "mm/pt/cursor.hpp"\n#include "mm/space/regions.hpp"\n'
                                           '#include "mm/tempmap/temp_map.hpp"\n')  # down, own, up
    write(root, "kernel/mm/phys/frames.cpp", '#include "mm/vm.hpp"\n#include "mm/base/addr.hpp"\n')  # up, down
    write(root, "kernel/mm/misc/odd.hpp", '#include "lib/types.hpp"\n')            # a folder out of order
    # The kernel's folder order: down is fine, up or an unknown folder is not; host tests may include anything.
    write(root, "kernel/lib/format.hpp", '#include "arch_impl/traps.hpp"\n')                   # the arch from lib
    write(root, "kernel/boot/memmap.hpp", '#include "mm/base/addr.hpp"\n#include "core/panic.hpp"\n')  # down, up
    write(root, "kernel/mm/base/layout.hpp", '#include "boot/memmap.hpp"\n')              # mm/base is below boot
    write(root, "kernel/main/kmain.cpp", '#include "proc/run.hpp"\n#include "mm/vm.hpp"\n')     # the top: fine
    write(root, "kernel/proc/run.hpp", '#include "main/kmain.hpp"\n')                       # up to the top
    write(root, "kernel/tests/test_vm.cpp", '#include "main/kmain.hpp"\n')                  # a host test: fine
    write(root, "kernel/extra/thing.hpp", '#include "lib/types.hpp"\n')                     # no such folder
    write(root, "arch/x86_64/cpu.hpp", "#pragma once\n")
    write(root, "arch/x86_64/lapic.cpp", "constexpr u64 kMask = 0x000f'ffff'ffff'f000ull;\n")
    write(root, "arch/x86_64/page_defs.h", "#define X86_PAGE_SIZE 4096\n")            # its home: fine
    write(root, "arch/x86_64/include/arch_impl/page_table_format.hpp", "#pragma once\n")
    write(root, "arch/x86_64/include/arch_impl/traps.hpp", "#pragma once\n")
    problems = layers.check(root)
    text = "\n".join(problems)
    assert "kernel/lib/console.cpp: includes core/arch.hpp: the kernel's folders include only" in text
    assert "kernel/lib/format.hpp: includes arch_impl/traps.hpp: kernel/lib includes nothing" in text
    assert "kernel/core/helper.hpp: includes mm/pt/page_table.hpp: the kernel's folders" in text
    assert "kernel/boot/memmap.hpp: includes core/panic.hpp: the kernel's folders" in text
    assert "kernel/mm/base/layout.hpp: includes boot/memmap.hpp: the kernel's folders" in text
    assert "kernel/proc/run.hpp: includes main/kmain.hpp: the kernel's folders" in text
    assert "kernel/extra/thing.hpp: kernel/extra/ is no folder of the kernel's order" in text
    assert "kmain.cpp" not in text and "test_vm.cpp" not in text and "includes mm/base/addr.hpp" not in text
    assert "kernel/mm/vm.cpp: includes arch/x86_64/cpu.hpp" in text
    assert "kernel/mm/heap.cpp: includes arch_impl/traps.hpp" in text
    assert "kernel/mm/pt/page_table.hpp: reaches core/lab.hpp" in text     # through walk.hpp
    assert "kernel/mm/pt/walk.hpp: reaches core/lab.hpp" in text
    assert "kernel/mm/vm.cpp: reaches" not in text                       # vm is not the page-table layer
    assert "kernel/core/arch.hpp: pulls in kernel/mm/pt/page_table.hpp, kernel/mm/pt/walk.hpp" in text
    assert "kernel/mm/vm.cpp:3: '4 * KiB'" in text
    assert "arch/x86_64/lapic.cpp:1: '0x000f'ffff'ffff'f000'" in text
    assert "page_defs.h" not in text
    assert "kernel/mm/space/vma.hpp: includes mm/tempmap/temp_map.hpp: kernel/mm's folders include only" in text
    assert "kernel/mm/phys/frames.cpp: includes mm/vm.hpp" in text
    assert "kernel/mm/misc/odd.hpp: kernel/mm/misc/ is no folder of kernel/mm's order" in text
    assert "mm/pt/cursor.hpp" not in text and "mm/space/regions.hpp" not in text and "mm/base/addr.hpp" not in text
    assert len(problems) == 17, text


def test_the_python_side_keeps_its_layers():
    assert layers.check_python(paths.ROOT) == []


def test_each_python_rule_catches_its_violation(tmp_path):
    root = str(tmp_path)
    write(root, "tools/pagoda/__init__.py", "")
    write(root, "tools/pagoda/cmd.py", "import os\nimport sys\n\nfrom pagoda_core import lib\nimport pagoda_grade\n"
                                       "sys.path[:0] = ['elsewhere']\n")
    write(root, "tools/pagoda_core/__init__.py", "")
    write(root, "tools/pagoda_core/lib.py", "import json\n\n\ndef f():\n    from pagoda import cmd  # lazy, still up\n"
                                            "    return cmd\n")
    write(root, "tools/gdb/pagoda_pt/__init__.py", "")
    write(root, "tools/gdb/pagoda_pt/walk.py", "from pagoda_core.lib import f\n")
    write(root, "grade/pagoda_grade/__init__.py", "")
    write(root, "grade/pagoda_grade/a.py", "from . import b\nfrom pagoda_core import lib\nfrom pagoda_pt import walk\n")
    write(root, "grade/pagoda_grade/b.py", "def g():\n    from .a import X\n    return X\n")
    write(root, "grade/pagoda_grade/c.py", "from pagoda.cmd import run\n")
    write(root, "grade/test_lab9.py", "from pagoda_grade import c\nfrom pagoda import cmd\n")
    write(root, "grade/conftest.py", "import sys\nsys.path.insert(0, 'tools')\n")               # an entry point
    write(root, "tools/tests/test_x.py", "import sys\nsys.path.insert(0, 'x')\nfrom pagoda import cmd\n")
    # ISA names: compared in a package module is a violation; looked up, or compared in a test, is not.
    write(root, "tools/pagoda_core/machine.py", 'MACHINES = {"x86_64": 1}\n\n\ndef f(arch):\n'
                                                '    if arch == "aarch64":\n        return MACHINES["x86_64"]\n'
                                                '    return arch.startswith("x86")\n')
    write(root, "tools/gdb/pagoda_pt/x86_64.py", 'ARCH = "x86_64"\n')
    # ISA names as a table's keys: a violation in a package module (machine.py:1 above too), not in a test.
    write(root, "grade/pagoda_grade/rsp.py", 'KIND = dict(x86_64=1, aarch64=4)\nBY_ARCH = {a: 1 for a in ("x", "y")}\n')
    write(root, "tools/tests/test_w.py", 'EXPECTED = {"aarch64": 4}\n')
    write(root, "tools/gdb/pagoda_pt/fmt.py", "from . import x86_64\n\n\ndef g(arch):\n"
                                              '    return arch in (x86_64.ARCH, "other")\n')
    write(root, "tools/tests/test_y.py", 'def test_z(arch):\n    assert arch != "aarch64"\n')
    write(root, "grade/test_lab8.py", 'def test_z(arch):\n    assert arch in ("x86_64", "aarch64")\n')
    problems = layers.check_python(root)
    text = "\n".join(problems)
    assert "tools/pagoda_core/lib.py:5: imports pagoda.cmd" in text
    assert "tools/gdb/pagoda_pt/walk.py:1: imports pagoda_core.lib" in text
    assert "grade/pagoda_grade/c.py:1: imports pagoda.cmd" in text
    assert "grade/test_lab9.py:2: imports pagoda.cmd" in text
    assert "import circle among grade/pagoda_grade/a.py, grade/pagoda_grade/b.py" in text
    assert "import circle among tools/pagoda/cmd.py, tools/pagoda_core/lib.py" in text
    assert "tools/pagoda/cmd.py:6: edits sys.path" in text
    assert "tools/tests/test_x.py:2: edits sys.path" in text
    assert "grade/conftest.py" not in text and "tools/pagoda/cmd.py:5" not in text    # entry point; down is fine
    assert "tools/pagoda_core/machine.py:5: compares against the ISA name aarch64" in text
    assert "tools/pagoda_core/machine.py:7: compares against the ISA name x86" in text
    assert "tools/gdb/pagoda_pt/fmt.py:5: compares against the ISA name x86_64.ARCH" in text
    assert "tools/pagoda_core/machine.py:1: a table keyed by the ISA name x86_64" in text
    assert "grade/pagoda_grade/rsp.py:1: a table keyed by the ISA name x86_64" in text
    assert "rsp.py:2" not in text and "test_w.py" not in text                        # no name; a test
    assert "machine.py:6" not in text and "x86_64.py" not in text                    # lookups
    assert "test_y.py" not in text and "test_lab8.py" not in text                      # tests may compare
    assert len(problems) == 13, text
