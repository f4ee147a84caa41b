"""Paging bugs under the grader's harness (build/x86_64/kernel-fixtures.elf: the kernel plus the
deliberately broken self-tests of arch/x86_64/fixtures/paging_bugs.cpp).

- The kernel's pre-switch check (AddressSpace::activate, mm/space/critical_ranges.hpp) refuses a root
  that would kill the CPU and names the cause in its panic, before the switch: the machine
  takes no exception at all. With vm_check=off the same bugs die the raw way (what fault-why
  explains: tools/gdb/tests/test_gdb_fixtures.py).
- make_table_entry() refuses a virtual address (the CPU's physical width, from CPUID).
- A missing TLB invalidation is seen from outside: what the kernel read through a page is not
  what the page tables map there (grade/pagoda_grade/tlb.py).
Each message is checked against what the fixture printed and the kernel's symbols.
"""
import fcntl
import os
import re

import pytest

from pagoda_core import build, paths
from pagoda_grade import tlb
from pagoda_grade.harness import Booter
from pagoda_grade.proof import new_token, proof
from pagoda_grade.symbols import address_of, physical_of

HEX = r"0x[0-9a-f]+"
SCRATCH_PAGE = 0x0000_6000_0000_0000   # bug_stale_tlb's page (paging_bugs.cpp, kScratchPage)


@pytest.fixture(scope="module")
def kernel():
    os.makedirs(paths.BUILD, exist_ok=True)
    with open(os.path.join(paths.BUILD, ".grade-build-x86_64.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build.build_kernel("x86_64", fixtures=True)


def boot(kernel, tmp_path, test, timeout=20, **options):
    return Booter(kernel, "x86_64", str(tmp_path), timeout)(test=test, **options)


def printed(run, pattern):
    m = run.search(pattern)
    assert m, "\n".join(run.lines[-30:])
    return [int(v, 16) for v in m.groups()]


def panic_message(run):
    m = run.search(r"^PANIC: (.*)$")
    assert m, "\n".join(run.lines[-30:])
    return m.group(1)


def refused_before_the_switch(run):
    """The check ran on the old root: it printed its table, and the CPU took no exception."""
    run.expect_outcome("failure")
    assert run.search(r"^vm: refusing to load root "), "\n".join(run.lines[-30:])
    assert run.log.faults == [], run.log.summary()


# ---- the pre-switch check: on (the default) and off ------------------------------------------

def test_check_refuses_a_root_without_the_running_stack(kernel, tmp_path):
    run = boot(kernel, tmp_path, "bug_stack_root")
    refused_before_the_switch(run)
    top, root = printed(run, r"on the stack at (0x[0-9a-f]+), activating root (0x[0-9a-f]+)")
    m = re.fullmatch(r"new root %#x does not map the running stack (%s) \(PML4 entry 510 not present\); "
                     r"it does not share the kernel half: PML4 entry 510 is 0x0, the kernel's is %s: kernel-half "
                     r"entries left empty, as by a copy that skipped them" % (root, HEX, HEX), panic_message(run))
    assert m, panic_message(run)
    assert top - 0x1000 < int(m.group(1), 16) < top     # RSP, on the fixture's stack


def test_without_the_check_the_same_root_kills_the_stack(kernel, tmp_path):
    run = boot(kernel, tmp_path, "bug_stack_root", extra_cmdline="vm_check=off")
    top, _ = printed(run, r"on the stack at (0x[0-9a-f]+), activating root (0x[0-9a-f]+)")
    assert run.search(r"^vm: vm_check=off: ")
    assert not run.search(r"refusing to load root")
    faults = run.log.faults
    assert [f.mnemonic for f in faults[:2]] == ["#PF", "#DF"], run.log.summary()
    assert top - 0x1000 < faults[0].cr2 < top and faults[0].cr2 == faults[0].rsp


def test_check_names_a_section_end_rounded_down(kernel, tmp_path):
    run = boot(kernel, tmp_path, "bug_section_end")
    refused_before_the_switch(run)
    root, last, end = printed(run, r"activating root (0x[0-9a-f]+): the text mapped up to (0x[0-9a-f]+), "
                                   r"but it ends at (0x[0-9a-f]+)")
    assert last == (end - 1) & ~0xFFF == address_of(kernel, "__text_end") - 1 & ~0xFFF
    assert panic_message(run) == (
        "new root %#x does not map the kernel text %#x (PT entry %d not present): only its last page "
        "fails, so its end was rounded down instead of up" % (root, last, last >> 12 & 511))


def test_without_the_check_the_kernel_dies_on_the_last_text_page(kernel, tmp_path):
    run = boot(kernel, tmp_path, "bug_section_end", extra_cmdline="vm_check=off")
    _, last, _ = printed(run, r"activating root (0x[0-9a-f]+): the text mapped up to (0x[0-9a-f]+), "
                              r"but it ends at (0x[0-9a-f]+)")
    first = run.log.faults[0]
    assert first.mnemonic == "#PF" and first.rip == first.cr2 and first.cr2 & ~0xFFF == last, \
        run.log.summary()
    assert first.rip == address_of(kernel, "pagoda::(anonymous namespace)::on_the_last_text_page()")


def test_check_refuses_a_root_without_the_code(kernel, tmp_path):
    run = boot(kernel, tmp_path, "bug_code_unmapped")
    refused_before_the_switch(run)
    (root,) = printed(run, r"activating root (0x[0-9a-f]+): no kernel text in it")
    after_the_switch = address_of(kernel, "pagoda::x86::hw::load_root")
    assert panic_message(run) == ("new root %#x does not map the current instruction %#x (PT entry %d not "
                                  "present)" % (root, after_the_switch, after_the_switch >> 12 & 511))


def test_without_the_check_code_not_mapped_is_a_storm(kernel, tmp_path):
    """vm_check=off: after the switch neither the next instruction nor the #PF handler can be
    fetched: #PF after #PF with RIP == CR2; the grader's storm detection (issue 10) ends the boot
    with that diagnosis instead of waiting for the deadline."""
    run = boot(kernel, tmp_path, "bug_code_unmapped", timeout=20, extra_cmdline="vm_check=off")
    assert run.outcome() == "exception storm", run.log.summary()
    assert "the code being executed is not mapped (after a root switch?)" in run.stop_reason
    faults = run.log.faults
    assert len(faults) > 64, run.log.summary()
    page_faults = [f for f in faults if f.mnemonic == "#PF"]
    assert all(f.rip == f.cr2 for f in page_faults), run.log.summary()
    # Mostly the #PF handler's own first instruction; each #PF pushes a frame, and when the stack
    # has run down into memory it cannot write, a #DF (on its own stack) whose handler cannot be
    # fetched either.
    handler = address_of(kernel, "x86_vector_stubs") + 16 * 14
    assert sum(f.rip == handler for f in page_faults) > len(faults) * 0.9
    assert {f.mnemonic for f in faults} <= {"#PF", "#DF"} and not run.log.triple_fault


# ---- a virtual address where a physical one belongs ------------------------------------------

def test_make_table_entry_refuses_a_virtual_address(kernel, tmp_path):
    run = boot(kernel, tmp_path, "bug_va_in_make_entry")
    run.expect_outcome("failure")
    (va,) = printed(run, r"linking the table at (0x[0-9a-f]+) by its virtual address")
    assert panic_message(run) == (
        "make_table_entry: %#x is not a physical address of this CPU (its addresses are below 2^40); it "
        "looks like a kernel virtual address: an entry must hold the physical address (virt_to_phys)" % va)
    assert run.log.faults == []


# ---- a stale TLB entry -----------------------------------------------------------------------

def test_a_stale_tlb_entry_is_seen_from_outside(kernel, tmp_path):
    token = new_token()
    seen = {}

    def check(guest):
        read = int.from_bytes(guest.read_phys(physical_of(kernel, address_of(kernel, "pagoda_fixture_stale_read")),
                                              8), "little")
        seen.update(root=guest.root, pa_bits=guest.pa_bits, read=read,
                    verdict=tlb.stale_read(guest, SCRATCH_PAGE, read),
                    control=tlb.stale_read(guest, SCRATCH_PAGE, proof(token, 2)))

    run = boot(kernel, tmp_path, "bug_stale_tlb", token=token, inspect=check)
    page, x, first, y, second = printed(
        run, r"mapped (0x[0-9a-f]+) to frame (0x[0-9a-f]+) and read (0x[0-9a-f]+); cleared its entry without "
             r"invalidating the TLB; mapped it to frame (0x[0-9a-f]+) and read (0x[0-9a-f]+)")
    assert page == SCRATCH_PAGE and first == second == seen["read"] == proof(token, 1)
    assert seen["pa_bits"] == 40                     # QEMU's default x86 CPU, from QEMU itself
    # (the old frame among the frames holding the value at that offset: a copy of it may also sit in a
    # kernel stack's page, as the self-test's local variable)
    said = re.fullmatch(
        re.escape("stale TLB: the kernel read %#x through %#x, but the active root %#x maps it to frame %#x, which "
                  "holds %#x; %#x is what " % (second, page, seen["root"], y, proof(token, 2), second))
        + r"frames? ((?:0x[0-9a-f]+(?:, )?)+) holds? there: " + re.escape(
            "the read went through a translation the page tables no longer hold (a TLB entry not invalidated "
            "after an unmap or a remap)"), seen["verdict"] or "")
    assert said and "%#x" % x in said.group(1).split(", "), seen["verdict"]
    assert seen["control"] is None                   # what the tables map there is not 'stale'
