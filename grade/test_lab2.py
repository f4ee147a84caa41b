"""Lab 2 — higher-half move: the grader's checks. Points and timeouts: labs/02-higher-half/lab.toml."""
from pagoda_grade import lab_test
from pagoda_grade.symbols import address_of, fact

# The layout (kernel/mm/layout.hpp) is read from the kernel's facts (fact(kernel, name));
# the probes mirror kernel/mm/vm_selftest.cpp.
LOW_PROBES = (0x0, 0x1000, 0x100000)
GRADER_RAM = "128M"  # more than the window, so that RAM above the window exists
TOP_LEVEL = {"x86_64": "PML4"}
HEX = r"0x[0-9a-f]+"


def half_entries(kernel):
    """How many top-level entries the kernel half has (256 on x86_64)."""
    return fact(kernel, "entries_per_table") - fact(kernel, "kernel_half_first_entry")


@lab_test(2, "runs_high")
def test_runs_high(boot, kernel):
    run = boot(test="vm_high")
    m = run.expect(rf"^high: rip ({HEX}) kmain ({HEX}) data ({HEX}) stack ({HEX}) proof=([0-9a-f]{{16}})$",
                   "the 'high: rip ...' line")
    rip, kmain, data, stack = (int(m[i], 16) for i in range(1, 5))
    run.expect_proof(m[5], rip, "high line")
    image_base = fact(kernel, "kernel_image_base")
    for what, value in (("RIP", rip), ("kmain", kmain), ("data", data), ("stack", stack)):
        if value < image_base:
            run.fail(f"{what} is {value:#x}, below the top 2 GiB ({image_base:#x}): the kernel "
                     "still runs in the low half")
    if kmain != address_of(kernel, "pagoda::kmain"):
        run.fail(f"kmain runs at {kmain:#x} but is linked at {address_of(kernel, 'pagoda::kmain'):#x}")
    run.expect_outcome("success")


@lab_test(2, "low_addresses_fault")
def test_low_addresses_fault(boot, arch):
    for address in LOW_PROBES:
        run = boot(test="vm_low", extra_cmdline=f"addr={address:#x}")
        run.expect(rf"^low: reading 0x0*{address:x}$", f"the kernel saying it reads {address:#x}")
        cr2 = run.expect(rf"^\s+CR2 ({HEX})", "the CR2 line of the fault report")
        if int(cr2[1], 16) != address:
            run.fail(f"the fault report gives CR2 {cr2[1]}, expected {address:#x}")
        run.expect(rf"^\s+reason: {TOP_LEVEL[arch]} entry 0 not present$",
                   f"the walk of {address:#x} stopping at the top level ('{TOP_LEVEL[arch]} entry 0 not "
                   "present'): after the move nothing may be mapped in the low half")
        run.expect_outcome("failure")


@lab_test(2, "window_conversions")
def test_window_conversions(boot, kernel):
    window_base, window_phys_base = fact(kernel, "window_base"), fact(kernel, "window_phys_base")
    run = boot(test="vm_window", memory=GRADER_RAM)
    size_kib = int(run.expect(rf"^window: (\d+) KiB of RAM at {HEX}$", "the window's size")[1])
    ram_kib = int(GRADER_RAM[:-1]) * 1024
    if size_kib >= ram_kib:
        run.fail(f"the window maps {size_kib} KiB but the machine has {ram_kib} KiB: it must be bounded")
    lines = [l for l in run.lines if l.startswith("window: pa ") and "-> va" in l]
    if len(lines) != 2:
        run.fail(f"expected 2 round-trip lines 'window: pa A -> va V -> pa A', got {len(lines)}")
    for line in lines:
        parts = line.split()
        pa, va, back, printed = int(parts[2], 16), int(parts[5], 16), int(parts[8], 16), parts[9][len("proof="):]
        if va != window_base + pa - window_phys_base:
            run.fail(f"pa {pa:#x} converts to va {va:#x}, expected {window_base + pa - window_phys_base:#x}")
        if back != pa:
            run.fail(f"va {va:#x} converts back to {back:#x}, not {pa:#x}")
        run.expect_proof(printed, va, "window round trip")
    above = size_kib * 1024
    run.expect(rf"^window: pa 0x0*{above:x} -> refused$", f"the conversion of {above:#x} (above the window) refused")
    run.expect(rf"^window: the walk of {HEX} stops: .* not present$", "RAM above the window unmapped")
    run.expect(rf"^PANIC: phys_to_virt: 0x0*{above:x} is outside", "phys_to_virt failing loudly above the window")
    run.expect_outcome("failure")


@lab_test(2, "heap_balanced")
def test_heap_balanced(boot):
    run = boot(test="heap_cycle")
    m = run.expect(r"^heap: before (\d+) objects (\d+) bytes; peak (\d+) objects (\d+) bytes; "
                   r"after (\d+) objects (\d+) bytes proof=([0-9a-f]{16})$", "the 'heap: ...' line")
    before, before_bytes, peak, peak_bytes, after, after_bytes = (int(m[i]) for i in range(1, 7))
    run.expect_proof(m[7], peak_bytes, "heap line")
    if peak < before + 3000:
        run.fail(f"the heap held only {peak} objects at its peak; the test allocates over 3000")
    if (after, after_bytes) != (before, before_bytes):
        run.fail(f"the heap held {before} objects ({before_bytes} bytes) before and {after} objects "
                 f"({after_bytes} bytes) after: delete does not give everything back")
    run.expect_outcome("success")


@lab_test(2, "kernel_half_prepared")
def test_kernel_half_prepared(boot, kernel):
    run = boot(test="vm_high")
    m = run.expect(r"^high: top-level entries present: (\d+) of (\d+) in the lower half, (\d+) of (\d+) in "
                   r"the kernel half proof=([0-9a-f]{16})$", "the top-level entry counts")
    low, low_total, high, high_total = (int(m[i]) for i in range(1, 5))
    run.expect_proof(m[5], high * 1000 + low, "top-level line")
    entries = half_entries(kernel)
    if high_total != entries or high != high_total:
        run.fail(f"{high} of {high_total} kernel-half top-level entries are present; all "
                 f"{entries} must point to a table allocated at boot, so that every process "
                 "root shares them")
    if low != 0:
        run.fail(f"{low} lower-half top-level entries are present in the kernel's root: the identity "
                 "map must be gone")
    run.expect_outcome("success")


@lab_test(2, "tables_verified_high")
def test_tables_verified_high(boot, kernel):
    """Walks the live tables from outside; the kernel's own output plays no part."""
    problems = []
    half_base, first, entries = (fact(kernel, "kernel_half_base"), fact(kernel, "kernel_half_first_entry"),
                                 half_entries(kernel))
    window_end = fact(kernel, "window_base") + fact(kernel, "window_size")

    def check(guest):
        low = [r for r in guest.dump() if r.va_start < half_base]
        if low:
            r = low[0]
            problems.append(f"{len(low)} range(s) mapped in the low half, the first "
                            f"[{r.va_start:#x}, {r.va_end:#x}) -> {r.pa_start:#x}")
        top = guest.top_level_entries()
        missing = [i for i in range(first, first + entries) if not top[i] & 1]
        if missing:
            problems.append(f"{len(missing)} kernel-half top-level entries are not present "
                            f"(the first: entry {missing[0]})")
        kmain = address_of(kernel, "pagoda::kmain")
        w = guest.walk(kmain)
        if not w.mapped or w.perms.write or not w.perms.execute:
            problems.append(f"kmain at {kmain:#x}: {w.perms.rwx() if w.mapped else w.stop_reason}, must be r-x")
        above = guest.walk(window_end)
        if above.mapped:
            problems.append(f"RAM above the window is mapped at {window_end:#x}")

    run = boot(test="vm_inspect", memory=GRADER_RAM, inspect=check)
    if problems:
        run.fail("the grader walked the live page tables (CR3 from QEMU, tables from guest RAM):\n  "
                 + "\n  ".join(problems))
