"""Lab 1 — identity map: the grader's checks. Points and timeouts: labs/01-identity-map/lab.toml."""
import re

from pagoda_grade import lab_test
from pagoda_grade.proof import proof
from pagoda_grade.symbols import address_of, physical_of

# Mirrors kernel/mm/vm_selftest.cpp.
UNMAPPED_BASE = 0x0000_2000_0000_0000
UNMAPPED_PAGES = 1 << 20
TRANSLATE_TAG = 0x5452
FRAME_TEST_PAGES = 1536
PAGE = 4096

# How each architecture names its top level, and how it indexes it.
TOP_LEVEL = {"x86_64": ("PML4", 39)}
LEVEL_NAMES = {"x86_64": "PML4|PDPT|PD|PT"}
FETCH_ERROR = {"x86_64": r"error 0x11: protection violation, read, supervisor, instruction fetch"}
WRITE_ERROR = {"x86_64": r"error 0x3: protection violation, write, supervisor"}
NULL_ERROR = {"x86_64": r"error 0x0: not-present page, read, supervisor"}
HEX = r"0x[0-9a-f]+"


def translation(run, what):
    return run.expect(rf"^translate: {what} ({HEX}) -> (.*) proof=([0-9a-f]{{16}})$",
                      f"the 'translate: {what} ...' line")


def check_mapped(run, kernel, what, expected_va, perms):
    m = translation(run, what)
    va = int(m[1], 16)
    if va != expected_va:
        run.fail(f"{what}: the kernel translated {va:#x}, expected {expected_va:#x}")
    t = re.fullmatch(rf"({HEX}) \((\d+) KiB\) (.+)", m[2])
    if t is None:
        run.fail(f"{what}: {va:#x} should be mapped, but the kernel says '{m[2]}'")
    pa, loaded = int(t[1], 16), physical_of(kernel, va)
    if pa != loaded:
        run.fail(f"{what}: {va:#x} translates to {pa:#x}, but the kernel was loaded at {loaded:#x}")
    if t[3] != perms:
        run.fail(f"{what}: {va:#x} is mapped '{t[3]}', expected '{perms}'")
    run.expect_proof(m[3], pa, f"translate {what}")


def check_fault_report(run, error, cr2, reason):
    run.expect(error, f"the decoded error code ({error})")
    m = run.expect(rf"^\s+CR2 ({HEX})", "the CR2 line")
    if cr2 is not None and int(m[1], 16) != cr2:
        run.fail(f"the report gives CR2 {m[1]}, expected {cr2:#x}")
    run.expect(r"walk of 0x[0-9a-f]{16} through root 0x[0-9a-f]{16}:", "the walk of CR2 in the report")
    run.expect(rf"^\s+reason: {reason}$", f"the reason '{reason}'")
    run.expect_outcome("failure")
    return int(m[1], 16)


@lab_test(1, "translate_text_data")
def test_translate_text_data(boot, kernel):
    run = boot(test="vm_translate")
    check_mapped(run, kernel, "text", address_of(kernel, "pagoda::kmain"), "r-x kernel")
    check_mapped(run, kernel, "data", address_of(kernel, "pagoda::(anonymous namespace)::g_selftest_data"),
                 "rw- kernel")
    run.expect_outcome("success")


@lab_test(1, "translate_unmapped")
def test_translate_unmapped(boot, arch):
    run = boot(test="vm_translate")
    top, shift = TOP_LEVEL[arch]
    va = UNMAPPED_BASE + (proof(run.token, TRANSLATE_TAG) % UNMAPPED_PAGES) * PAGE
    m = translation(run, "unmapped")
    if int(m[1], 16) != va:
        run.fail(f"the unmapped probe is {m[1]}, expected {va:#x} (derived from the token)")
    want = f"stopped: {top} entry {(va >> shift) & 511} not present"
    if m[2] != want:
        run.fail(f"the walk of {va:#x} says '{m[2]}', expected '{want}': nothing maps this part of "
                 "the lower half, so the walk must stop at the top level")
    run.expect_proof(m[3], 0, "translate unmapped")
    run.expect_outcome("success")


@lab_test(1, "write_text_faults")
def test_write_text_faults(boot, kernel, arch):
    run = boot(test="vm_write_text")
    kmain = address_of(kernel, "pagoda::kmain")
    check_fault_report(run, WRITE_ERROR[arch], kmain, "write to read-only page")
    run.expect(r"^\s+-> page 0x[0-9a-f]{16} \(4 KiB\), r-x kernel$", "the walk ending at the text page, r-x")


@lab_test(1, "nx_stack")
def test_nx_stack(boot, kernel, arch):
    run = boot(test="vm_exec_stack")
    cr2 = check_fault_report(run, FETCH_ERROR[arch], None, "execute of NX page")
    lo, hi = address_of(kernel, "boot_stack_bottom"), address_of(kernel, "boot_stack_top")
    if not lo <= cr2 < hi:
        run.fail(f"CR2 {cr2:#x} is not on the kernel stack [{lo:#x}, {hi:#x})")


@lab_test(1, "nx_data")
def test_nx_data(boot, kernel, arch):
    run = boot(test="vm_exec_data")
    code = address_of(kernel, "pagoda::(anonymous namespace)::g_data_code")
    check_fault_report(run, FETCH_ERROR[arch], code, "execute of NX page")


@lab_test(1, "null_faults")
def test_null_faults(boot, arch):
    run = boot(test="vm_null")
    check_fault_report(run, NULL_ERROR[arch], 0, rf"({LEVEL_NAMES[arch]}) entry 0 not present")


@lab_test(1, "frames_return")
def test_frames_return(boot, arch):
    run = boot(test="vm_frames")
    m = run.expect(rf"^frames: (\d+) pages at ({HEX}): free before (\d+) during (\d+) after (\d+) "
                   r"proof=([0-9a-f]{16})$", "the 'frames: ...' line")
    pages, base, before, during, after = int(m[1]), int(m[2], 16), int(m[3]), int(m[4]), int(m[5])
    run.expect_proof(m[6], during, "frames line")
    if pages != FRAME_TEST_PAGES:
        run.fail(f"the test mapped {pages} pages, expected {FRAME_TEST_PAGES}")
    if before - during < pages + 3:
        run.fail(f"mapping {pages} pages used only {before - during} frames: the pages themselves "
                 "and at least one table per level below the root must come from the allocator")
    if after != before:
        run.fail(f"free frames: {before} before, {after} after mapping and unmapping {pages} pages: "
                 f"{before - after} frames leaked (page tables not freed when empty?)")
    top, shift = TOP_LEVEL[arch]
    want = f"{top} entry {(base >> shift) & 511} not present"
    m = run.expect(r"^frames: after unmapping, the walk of the first page stops: (.*)$", "the walk after unmapping")
    if m[1] != want:
        run.fail(f"after unmapping everything, the walk stops at '{m[1]}', expected '{want}': "
                 "empty tables must be freed all the way up to the root")
    run.expect_outcome("success")


@lab_test(1, "tables_verified")
def test_tables_verified(boot, kernel, arch):
    """Walks the live tables from outside; the kernel's own output plays no part."""
    text = address_of(kernel, "pagoda::kmain")
    data = address_of(kernel, "pagoda::(anonymous namespace)::g_selftest_data")
    stack = address_of(kernel, "boot_stack_top") - 8
    problems = []

    def check(guest):
        w = guest.walk(text)
        if not w.mapped:
            problems.append(f"kernel text {text:#x} is not mapped ({w.stop_reason})")
        elif w.perms.write or not w.perms.execute:
            problems.append(f"kernel text {text:#x} is mapped {w.perms.rwx()}, must be r-x")
        for what, va in (("kernel data", data), ("the kernel stack", stack)):
            w = guest.walk(va)
            if not w.mapped:
                problems.append(f"{what} {va:#x} is not mapped ({w.stop_reason})")
            elif w.perms.execute or not w.perms.write:
                problems.append(f"{what} {va:#x} is mapped {w.perms.rwx()}, must be rw- (no execute)")
        w = guest.walk(0)
        if w.mapped:
            problems.append(f"page 0 is mapped (to {w.pa:#x}): null pointers would not fault")
        if not guest.regs["efer"] & (1 << 11):
            problems.append("EFER.NXE is off: no-execute bits are not enforced")
        if not guest.regs["cr0"] & (1 << 16):
            problems.append("CR0.WP is off: the kernel can write to read-only pages")

    run = boot(test="vm_inspect", inspect=check)
    if problems:
        run.fail("the grader walked the live page tables (CR3 from QEMU, tables from guest RAM):\n  "
                 + "\n  ".join(problems))
