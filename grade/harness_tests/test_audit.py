"""The audit of the kernel's memory at a failure (pagoda_pt.frames.audit, through
grade/pagoda_grade/audit.py) and its rank in the failure (causes.producer_first), and a panic's
site (causes.panic_site). The kernel's records are
laid out in a synthetic guest RAM, where the reference kernel's ELF (its symbols and facts) says
they live, as the grader reads a real one."""
import struct

import pytest

from pagoda_core import faultlog
from pagoda_core.symbolize import Symbolizer
from pagoda_grade import audit, causes
from pagoda_grade.harness import GradeFailure, Run
from pagoda_grade.symbols import address_of, fact, physical_of

PAGE = 4096
HEAP_FRAME = 0x300000          # a frame of the heap, in the window
FREE_FRAME = 0x301000          # a frame the allocator calls free
BITMAP_FRAME = 0x200000        # where the fake bitmaps live (used, then managed)
WORDS = 0x800                  # bitmap words: 64 Mi of RAM in 4 KiB frames


class FakeRam:
    """Sparse guest RAM (x86_64: from physical 0): read_phys like audit.Remains'; zeros unwritten."""

    def __init__(self):
        self.pages = {}
        self.fd = 0   # what audit.findings() looks at to see that the RAM is still there
        self.boot = None

    def write(self, pa, data):
        for i, byte in enumerate(data):
            page = self.pages.setdefault((pa + i) // PAGE, bytearray(PAGE))
            page[(pa + i) % PAGE] = byte

    def read_phys(self, pa, size):
        return bytes(self.pages.get((pa + i) // PAGE, bytes(PAGE))[(pa + i) % PAGE] for i in range(size))


def window(kernel, pa):
    return fact(kernel, "window_base") + pa - fact(kernel, "window_phys_base")


def records(kernel, used=(), managed=range(0x100, 0x4000), free_count=None):
    """RAM with the frame allocator's bitmaps (@p used, @p managed: frame numbers) and its free
    count (the bitmaps' own count unless given), and empty heap lists."""
    ram = FakeRam()
    used_bits = sum(1 << f for f in used)
    managed_bits = sum(1 << f for f in managed)
    ram.write(BITMAP_FRAME, used_bits.to_bytes(WORDS * 8, "little"))
    ram.write(BITMAP_FRAME + WORDS * 8, managed_bits.to_bytes(WORDS * 8, "little"))
    count_at = BITMAP_FRAME + 2 * WORDS * 8
    at = physical_of(kernel, address_of(kernel, "pagoda_frame_bitmaps"))
    ram.write(at, struct.pack("<4Q", window(kernel, BITMAP_FRAME), window(kernel, BITMAP_FRAME + WORDS * 8), WORDS,
                              window(kernel, count_at)))
    count = bin(managed_bits & ~used_bits).count("1") if free_count is None else free_count
    ram.write(count_at, struct.pack("<Q", count))
    lists = address_of(kernel, "pagoda::heap::g_free_lists")
    ram.write(physical_of(kernel, address_of(kernel, "pagoda_heap_free_lists")), struct.pack("<Q", lists))
    return ram


def list_block(ram, kernel, size_class, pa, magic, requested=0, nxt=0):
    """Puts the block at @p pa, with a header of @p magic, at the head of class @p size_class's list."""
    lists = physical_of(kernel, address_of(kernel, "pagoda::heap::g_free_lists"))
    ram.write(lists + 8 * size_class, struct.pack("<Q", window(kernel, pa)))
    ram.write(pa, struct.pack("<IIQ", magic, size_class, requested))
    ram.write(pa + fact(kernel, "heap_next_offset"), struct.pack("<Q", nxt))


def audit_of(kernel, ram):
    return audit.audit_ram(kernel, "x86_64", ram.read_phys)


def test_consistent_records_have_no_finding(reference_kernel):
    k = reference_kernel
    ram = records(k, used=[HEAP_FRAME // PAGE])
    list_block(ram, k, 3, HEAP_FRAME + 256, fact(k, "heap_magic_free"))
    assert audit_of(k, ram) == []


def test_a_listed_block_in_use_is_a_block_handed_out_twice(reference_kernel):
    k = reference_kernel
    ram = records(k, used=[HEAP_FRAME // PAGE])
    list_block(ram, k, 3, HEAP_FRAME + 256, fact(k, "heap_magic_small"), requested=200)
    found = audit_of(k, ram)
    assert found and "on the free list and in use at once" in found[0] and "twice" in found[0], found


def test_a_listed_block_in_a_free_frame_lies_outside_the_heap(reference_kernel):
    k = reference_kernel
    ram = records(k, used=[HEAP_FRAME // PAGE])
    list_block(ram, k, 2, FREE_FRAME, fact(k, "heap_magic_free"))
    found = audit_of(k, ram)
    assert found and "which the frame allocator calls free" in found[0] and "past the end of its frame" in found[0], found


def test_an_overwritten_header_names_the_neighbour_that_wrote_past_its_end(reference_kernel):
    k = reference_kernel
    ram = records(k, used=[HEAP_FRAME // PAGE])
    size = 1 << (3 + fact(k, "heap_min_class_shift"))
    ram.write(HEAP_FRAME, struct.pack("<IIQ", fact(k, "heap_magic_small"), 3, size + 40))   # in use, asked too much
    list_block(ram, k, 3, HEAP_FRAME + size, 0x41414141)
    found = audit_of(k, ram)
    assert found and "overwritten header" in found[0] and f"{window(k, HEAP_FRAME):#x}" in found[0] \
        and "wrote past its end" in found[0], found


def test_a_free_count_above_the_bitmaps_is_an_allocation_that_did_not_lower_it(reference_kernel):
    k = reference_kernel
    managed = range(0x100, 0x4000)
    ram = records(k, used=range(0x100, 0x180), free_count=len(managed))
    found = audit_of(k, ram)
    assert found and found[0].startswith(f"the frame allocator's free count says {len(managed)} frames are free, but "
                                         f"its own bitmaps hold {len(managed) - 0x80} free frames"), found
    assert "did not lower the free count" in found[0]


def run_of(kernel, tmp_path, lines=("selftest x: start",), exit_code=33):
    return Run(token="00", cmdline="", memory="128M", lines=list(lines), exit_code=exit_code, elapsed=1.0,
               directory=str(tmp_path), log=faultlog.parse("", "x86_64"), symbolizer=Symbolizer(kernel),
               arch="x86_64")


def test_the_audit_heads_the_failure_and_the_test_s_words_follow(reference_kernel, tmp_path):
    k = reference_kernel
    run = run_of(k, tmp_path)
    run.remains = records(k, used=[HEAP_FRAME // PAGE])
    list_block(run.remains, k, 3, HEAP_FRAME + 256, fact(k, "heap_magic_small"), requested=200)
    with pytest.raises(GradeFailure) as e:
        run.fail("the symptom the test saw", cause="the cause the test found")
    lines = str(e.value).splitlines()
    assert "on the free list and in use at once" in lines[0], lines[:3]
    assert lines[1] == "the cause the test found" and lines[3] == "the symptom the test saw", lines[:4]
    assert lines[2].startswith("(the grader audited the kernel's frame and heap records"), lines[2]


def test_nothing_found_leaves_the_failure_as_it_was(reference_kernel, tmp_path):
    k = reference_kernel
    run = run_of(k, tmp_path)
    run.remains = records(k)
    with pytest.raises(GradeFailure) as e:
        run.fail("the symptom the test saw")
    assert str(e.value).splitlines()[0] == "the symptom the test saw"


def test_a_panic_names_its_function_and_caller(reference_kernel, tmp_path):
    k = reference_kernel
    inner = address_of(k, "pagoda::AddressSpace::unmap") + 8
    outer = address_of(k, "pagoda::pagoda_selftest_vm_frames") + 8
    run = run_of(k, tmp_path, lines=("PANIC: frame allocator: cannot free frame 0x0", "backtrace:",
                                     f"  #0 {inner:#018x}", f"  #1 {outer:#018x}", "  #2 0x0000000000000001"),
                 exit_code=35)
    assert causes.panic_site(run) == " in AddressSpace::unmap (called from pagoda_selftest_vm_frames)"
    assert causes.headline(run, "missing: a line").startswith(
        "the kernel panicked in AddressSpace::unmap (called from pagoda_selftest_vm_frames): frame allocator")


def test_two_classes_in_one_frame_is_a_block_on_another_class_s_list(reference_kernel):
    k = reference_kernel
    ram = records(k, used=[HEAP_FRAME // PAGE])
    list_block(ram, k, 0, HEAP_FRAME + 0x40, fact(k, "heap_magic_free"))      # a 64-byte block's place
    list_block(ram, k, 1, HEAP_FRAME + 0x80, fact(k, "heap_magic_free"))
    found = audit_of(k, ram)
    assert found and f"heap frame {HEAP_FRAME:#x} holds free blocks of class 0" in found[0] \
        and "given back to another class's free list" in found[0], found


def test_kept_ram_is_given_back_when_its_run_goes(tmp_path):
    """A Booter outside the grade's fixture is never closed: each boot's RAM (an fd on QEMU's
    memfd, which keeps its memory alive) must go with the last object that holds it."""
    import gc
    import os
    path = tmp_path / "ram"
    path.write_bytes(bytes(PAGE))
    fd = os.open(path, os.O_RDONLY)
    remains = audit.Remains(fd, 0, PAGE)
    assert remains.read_phys(0, 8) == bytes(8)
    del remains
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_a_finding_seen_at_a_stop_that_the_test_puts_first_stays_before_the_audit(reference_kernel, tmp_path):
    # A copy-on-write fault seen going wrong (the process audit's stop finding) is what the frames
    # freed while mapped at the boot's end came from: it stays first, with its own lines, and the
    # audit's finding follows them.
    k = reference_kernel
    run = run_of(k, tmp_path)
    run.remains = records(k, used=[HEAP_FRAME // PAGE])
    list_block(run.remains, k, 3, HEAP_FRAME + 256, fact(k, "heap_magic_small"), requested=200)
    run.audit_findings = ["the copy-on-write fault gave write permission back"]
    with pytest.raises(GradeFailure) as e:
        run.fail("the copy-on-write fault gave write permission back\n  and again")
    lines = str(e.value).splitlines()
    assert lines[0] == "the copy-on-write fault gave write permission back", lines[:3]
    assert lines[1] == "  and again" and "on the free list and in use at once" in lines[2], lines[:3]
    run.audit_findings = ["and again"]   # (the test's own second line: still its cause first)
    with pytest.raises(GradeFailure) as e:
        run.fail("the copy-on-write fault gave write permission back\n  and again")
    assert str(e.value).splitlines()[0] == "the copy-on-write fault gave write permission back"
    run.audit_findings = ["the copy-on-write fault gave write permission back"]
    with pytest.raises(GradeFailure) as e:   # the test's reason after another headline (a panic)
        run.fail("the copy-on-write fault gave write permission back", cause="the kernel panicked")
    lines = str(e.value).splitlines()
    assert lines[0] == "the copy-on-write fault gave write permission back", lines[:3]
    assert "on the free list and in use at once" in lines[1] and lines[2] == "the kernel panicked", lines[:4]
    run.audit_findings = ["something else seen at a stop"]
    with pytest.raises(GradeFailure) as e:
        run.fail("the copy-on-write fault gave write permission back")
    assert str(e.value).splitlines()[0] == "something else seen at a stop"


def test_a_finding_fails_a_test_that_passed(reference_kernel, tmp_path):
    """Booter.unexplained_problem (called after a test's own checks passed): the frame and heap
    audit of the RAM its last boot left fails it, the finding on line 1; consistent records do not."""
    from pagoda_grade.harness import Booter
    k = reference_kernel
    booter = Booter(k, "x86_64", str(tmp_path), 10)
    booter.kept_ram.append(records(k, used=[HEAP_FRAME // PAGE]))
    booter.unexplained_problem()    # nothing broken: passes
    broken = records(k, used=[HEAP_FRAME // PAGE])
    list_block(broken, k, 3, HEAP_FRAME + 256, fact(k, "heap_magic_small"), requested=200)
    broken.boot = ("feedface", "/logs/boot2")
    booter.kept_ram.append(broken)
    with pytest.raises(GradeFailure) as e:
        booter.unexplained_problem()
    lines = str(e.value).splitlines()
    assert "on the free list and in use at once" in lines[0], lines[:2]
    assert "though the test's own checks passed" in lines[1], lines[:2]
    # The boot it found the finding in, as `labs mutants --why` finds a failure's boot.
    assert "full log: /logs/boot2/serial.log" in str(e.value) and "boot token feedface" in str(e.value)


def test_a_process_audit_finding_fails_a_test_that_passed(reference_kernel, tmp_path):
    from pagoda_grade.harness import Booter
    booter = Booter(reference_kernel, "x86_64", str(tmp_path), 10)
    booter.audit_findings.append("pid 2 (spin) is Running in the process table, but the CPU runs pid 1\nmore")
    with pytest.raises(GradeFailure) as e:
        booter.unexplained_problem()
    assert str(e.value).splitlines()[0] == "pid 2 (spin) is Running in the process table, but the CPU runs pid 1"


def test_leaked_frames_are_classified_by_their_bytes(reference_kernel):
    """audit.leak_classes: a table tree whose leaves were freed is 'page-table frames (their levels,
    whose root): exit frees leaves but not tables'; a heap frame, a zeroed frame are named so."""
    k = reference_kernel
    root, pdpt, pd, pt, leaf = 0x400000, 0x401000, 0x402000, 0x403000, 0x404000
    heap, zero = 0x405000, 0x406000
    leaked = [root, pdpt, pd, pt, heap, zero]
    ram = records(k, used=[f // PAGE for f in leaked])
    for table, child in ((root, pdpt), (pdpt, pd), (pd, pt), (pt, leaf)):
        ram.write(table + 8, struct.pack("<Q", child | 0x7))
    ram.write(heap, struct.pack("<IIQ", fact(k, "heap_magic_small"), 2, 100))
    classes = audit.leak_classes(k, "x86_64", ram.read_phys, leaked, {root: "pid 4 (forker)"})
    first = classes[0].sentence()
    assert first.startswith("leaked 4 page-table frames (levels 4, 3, 2, 1 tables (PML4, PDPT, PD, PT) of pid 4 "
                            "(forker)'s root 0x400000)"), first
    assert "exit frees leaves but not tables" in first, first
    said = [c.sentence() for c in classes]
    assert any(s.startswith("leaked 1 kernel heap frame") for s in said), said
    assert any(s.startswith("leaked 1 zeroed frame") for s in said), said
    # The same tables under no root the run saw, their root freed: the tables below a root.
    classes = audit.leak_classes(k, "x86_64", ram.read_phys, [pd, pt])
    assert classes[0].sentence().startswith("leaked 2 page-table frames (levels 2, 1 tables (PD, PT) under no leaked "
                                            "root): the teardown freed the root but not the tables"), \
        classes[0].sentence()


def test_a_smaller_class_s_block_on_a_list_is_named_so(reference_kernel):
    """A block at the start of a 128-byte block but not of a 256-byte one, on class 3's (256-byte)
    list: a smaller class's block given back to this list; a pointer 16 bytes into a block (the
    object's address) is a pointer into a block."""
    k = reference_kernel
    ram = records(k, used=[HEAP_FRAME // PAGE])
    list_block(ram, k, 3, HEAP_FRAME + 128, fact(k, "heap_magic_free"))
    found = audit_of(k, ram)
    assert found and "at the start of a 128-byte one: a block of a smaller class given back" in found[0], found
    ram = records(k, used=[HEAP_FRAME // PAGE])
    list_block(ram, k, 3, HEAP_FRAME + 256 + 16, fact(k, "heap_magic_free"))
    found = audit_of(k, ram)
    assert found and "holds a pointer into a block" in found[0] and "smaller class" not in found[0], found


def test_a_failing_test_draws_the_ram_its_last_boot_left(reference_kernel, tmp_path):
    """Booter.picture (grade/conftest.py calls it for a failing test): the page of the RAM the last
    boot kept, line 1 of the failure at its head, the frame counts of the records in that RAM;
    without kept RAM, the cause alone and why."""
    import json
    import re
    from pagoda_grade.harness import Booter
    k = reference_kernel
    booter = Booter(k, "x86_64", str(tmp_path), 30)
    assert booter.picture("nothing booted") is None
    run = run_of(k, tmp_path, ["hello"])
    run.remains = records(k, used=[HEAP_FRAME // PAGE, HEAP_FRAME // PAGE + 1])
    run.remains.write(physical_of(k, address_of(k, "pagoda_debug_roots")),   # an empty root registry
                      struct.pack("<8sIIIIQ", b"PGROOTS\0", 1, 32, 0, 0, 0))
    booter.last_run = run
    page = open(booter.picture("line one <cause>\nline two")).read()
    data = json.loads(re.search(r'id=snapshot>(.*?)</script>', page)[1])
    assert data["cause"] == "line one <cause>" and "line one &lt;cause&gt;" in page
    assert data["counts"].get("kernel") == 2 and data["counts"]["free"] == 0x4000 - 0x100 - 2, data["notes"]
    run.remains = None
    page = open(booter.picture("the cause")).read()
    assert "kept no guest RAM" in page and "id=map" not in page
