"""The user programs embedded in the kernel, seen from outside: the kernel's `programs`
self-test lists what it carries and what its ELF parser makes of each program; this test reads
the ELF files the build made (build/<arch>/user/<arch>/embedded/) with Python's struct module
and checks every line against them: the same names, sizes and bytes (FNV-1a), the same entry
point and load segments, page-aligned copies, and a lookup of a name chosen from this boot's
token that must fail."""
import glob
import os
import re
import struct

import pytest

from pagoda_core import build, paths
from pagoda_grade.harness import Booter
from pagoda_grade.proof import FNV_OFFSET_BASIS, FNV_PRIME, MASK64, proof

PT_LOAD = 1
PAGE = 4096


def fnv1a(data):
    h = FNV_OFFSET_BASIS
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & MASK64
    return h


def read_elf(path):
    """(entry, [(vaddr, memsz, offset, filesz, 'rwx')...] sorted by vaddr) of an ELF64 file."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF", path
    entry, phoff = struct.unpack_from("<QQ", data, 24)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    loads = []
    for i in range(phnum):
        ptype, flags, offset, vaddr, _, filesz, memsz, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
        if ptype == PT_LOAD:
            perms = ("r" if flags & 4 else "-") + ("w" if flags & 2 else "-") + ("x" if flags & 1 else "-")
            loads.append((vaddr, memsz, offset, filesz, perms))
    return data, entry, sorted(loads)


@pytest.fixture(scope="module", params=paths.ARCHES)
def arch(request):
    return request.param


@pytest.fixture(scope="module")
def kernel(arch):
    return build.build_kernel(arch)


def test_programs_listed_by_the_kernel_match_the_built_files(kernel, arch, tmp_path):
    # The programs are those of the source tree (a stale ELF in build/ is not one of them).
    names = sorted(os.path.basename(p)[:-len(".cpp")] if p.endswith(".cpp") else os.path.basename(p)
                   for p in glob.glob(os.path.join(paths.ROOT, "user", "programs", "*"))
                   if p.endswith(".cpp") or glob.glob(os.path.join(p, "*.cpp")))
    assert names, "user/programs/ holds no programs"
    files = [os.path.join(paths.build_dir(arch), "user", arch, "embedded", f"{name}.elf") for name in names]
    run = Booter(kernel, arch, str(tmp_path), timeout=20)(test="programs")
    run.expect_outcome("success")
    m = run.expect(r"^programs: (\d+) embedded; target machine (\d+) ", "the number of programs")
    count = int(m[1])
    assert count == len(files), f"the kernel embeds {count} programs, the build made {len(files)}"
    machines = {struct.unpack_from("<H", read_elf(path)[0], 18)[0] for path in files}
    assert machines == {int(m[2])}, f"the kernel expects machine {m[2]}, the {arch} build made {machines}"

    total = 0
    for name, path in zip(names, files):
        data, entry, loads = read_elf(path)
        total += len(data)
        m = run.expect(rf"^program {name}: (\d+) bytes at 0x([0-9a-f]+) fnv ([0-9a-f]{{16}})$", f"program {name}")
        assert int(m[1]) == len(data), f"{name}: the kernel holds {m[1]} bytes, the file has {len(data)}"
        assert int(m[3], 16) == fnv1a(data), f"{name}: the embedded bytes differ from {path}"
        assert int(m[2], 16) % PAGE == 0, f"{name}: the embedded copy is not page aligned"
        m = run.expect(rf"^program {name}: entry 0x([0-9a-f]+), (\d+) segments$", f"{name} accepted by the ELF parser")
        assert int(m[1], 16) == entry and int(m[2]) == len(loads), f"{name}: entry or segment count differ"
        printed = [(int(v, 16), int(ms, 16), int(o, 16), int(fs, 16), p) for v, ms, o, fs, p in re.findall(
            rf"^program {name}: segment 0x([0-9a-f]+) memsz 0x([0-9a-f]+) offset 0x([0-9a-f]+) "
            r"filesz 0x([0-9a-f]+) ([r-][w-][x-]) user$", "\n".join(run.lines), re.M)]
        assert printed == loads, f"{name}: the kernel's segments {printed} differ from the file's {loads}"
    assert run.search(r"rejected|does not find") is None, "the kernel rejected or lost an embedded program"

    m = run.expect(r'^programs: find_program\("absent_([0-9a-f]+)"\) -> (\w+); (\d+) bytes in all proof=([0-9a-f]+)$',
                   "the lookup of a missing name")
    assert int(m[1], 16) == proof(run.token, 0x4D50) & 0xFFFFFF, "the missing name was not derived from this token"
    assert m[2] == "none", "find_program found a program that does not exist"
    assert int(m[3]) == total
    run.expect_proof(m[4], total, "the total size of the embedded programs")
