"""docs/arch-seam.md, the index of the arch seam's headers, stays true: every header of a port
and every arch_impl header is listed, and every file the page names exists."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = os.path.join(ROOT, "docs", "arch-seam.md")
ISAS = ("x86_64", "aarch64")
FILE = re.compile(r"`([\w./-]+\.(?:hpp|h|cpp|S|py|cmake|ld))`")
# Where a name the page gives without its folder may live.
BARE_HOMES = [os.path.join("arch", isa) for isa in ISAS] + \
             [os.path.join("user", "lib", "arch", isa) for isa in ISAS] + \
             [os.path.join("kernel", "mm"), os.path.join("tools", "gdb", "pagoda_pt")]


def named_files(text):
    return set(FILE.findall(text))


def missing_files(names, root):
    """The names that no file in the tree answers to."""
    missing = []
    for name in sorted(names):
        if name.startswith("arch_impl/"):
            candidates = [os.path.join("arch", isa, "include", name) for isa in ISAS]
        elif "/" in name:
            candidates = [name]
        else:
            candidates = [os.path.join(home, name) for home in BARE_HOMES]
        if not any(os.path.isfile(os.path.join(root, c)) for c in candidates):
            missing.append(name)
    return missing


def unlisted_headers(names, root):
    """Seam headers of either port the page does not name."""
    listed = {os.path.basename(n) for n in names}
    unlisted = []
    for isa in ISAS:
        port = os.path.join(root, "arch", isa)
        for entry in sorted(os.listdir(port)):
            if entry.endswith((".h", ".hpp")) and entry not in listed:
                unlisted.append(os.path.join("arch", isa, entry))
        impl = os.path.join(port, "include", "arch_impl")
        for entry in sorted(os.listdir(impl)):
            if "arch_impl/" + entry not in names:
                unlisted.append(os.path.join("arch", isa, "include", "arch_impl", entry))
    return unlisted


def test_the_page_names_every_seam_header():
    with open(PAGE) as f:
        names = named_files(f.read())
    assert unlisted_headers(names, ROOT) == []


def test_every_file_the_page_names_exists():
    with open(PAGE) as f:
        names = named_files(f.read())
    assert len(names) > 20
    assert missing_files(names, ROOT) == []


def test_a_new_header_or_a_stale_name_is_caught(tmp_path):
    root = str(tmp_path)
    for isa in ISAS:
        os.makedirs(os.path.join(root, "arch", isa, "include", "arch_impl"))
        for rel in ("cpu.hpp", "include/arch_impl/layout.hpp"):
            open(os.path.join(root, "arch", isa, rel), "w").close()
    names = {"cpu.hpp", "arch_impl/layout.hpp"}
    assert unlisted_headers(names, root) == []
    assert missing_files(names, root) == []
    open(os.path.join(root, "arch", "aarch64", "gic.hpp"), "w").close()
    assert unlisted_headers(names, root) == [os.path.join("arch", "aarch64", "gic.hpp")]
    assert missing_files(names | {"kernel/mm/gone.hpp"}, root) == ["kernel/mm/gone.hpp"]
