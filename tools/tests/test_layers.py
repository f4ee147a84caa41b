"""The kernel's include rules (tools/pagoda/layers.py): the real tree keeps them, and each rule
catches its violation in a small synthetic tree."""
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
    write(root, "kernel/core/helper.hpp", '#include "mm/page_table.hpp"\n')
    write(root, "kernel/core/lab.hpp", "#pragma once\n")
    write(root, "kernel/mm/page_table.hpp", '#include "mm/walk.hpp"\n#include "arch_impl/page_table_format.hpp"\n')
    write(root, "kernel/mm/walk.hpp", '#include "core/lab.hpp"\n')                        # reaches lab.hpp
    write(root, "kernel/mm/vm.cpp", '#include "core/lab.hpp"\n#include "arch/x86_64/cpu.hpp"\n'
                                    "constexpr u64 kPage = 4 * KiB;  // 4096 in a comment is fine\n")
    write(root, "kernel/mm/heap.cpp", '#include "arch_impl/traps.hpp"\n')
    write(root, "arch/x86_64/cpu.hpp", "#pragma once\n")
    write(root, "arch/x86_64/lapic.cpp", "constexpr u64 kMask = 0x000f'ffff'ffff'f000ull;\n")
    write(root, "arch/x86_64/page_defs.h", "#define X86_PAGE_SIZE 4096\n")            # its home: fine
    write(root, "arch/x86_64/include/arch_impl/page_table_format.hpp", "#pragma once\n")
    write(root, "arch/x86_64/include/arch_impl/traps.hpp", "#pragma once\n")
    problems = layers.check(root)
    text = "\n".join(problems)
    assert "kernel/lib/console.cpp: includes core/arch.hpp" in text
    assert "kernel/mm/vm.cpp: includes arch/x86_64/cpu.hpp" in text
    assert "kernel/mm/heap.cpp: includes arch_impl/traps.hpp" in text
    assert "kernel/mm/page_table.hpp: reaches core/lab.hpp" in text     # through walk.hpp
    assert "kernel/mm/walk.hpp: reaches core/lab.hpp" in text
    assert "kernel/mm/vm.cpp: reaches" not in text                       # vm is not the page-table layer
    assert "kernel/core/arch.hpp: pulls in kernel/mm/page_table.hpp, kernel/mm/walk.hpp" in text
    assert "kernel/mm/vm.cpp:3: '4 * KiB'" in text
    assert "arch/x86_64/lapic.cpp:1: '0x000f'ffff'ffff'f000'" in text
    assert "page_defs.h" not in text
    assert len(problems) == 8, text
