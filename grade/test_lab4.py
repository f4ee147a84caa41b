"""Lab 4: temporary mappings and safe user copies, witnessed from outside the kernel.

The grader boots with more RAM than the kernel's window (GRADER_MEMORY), so frames above the
window exist; it walks the process roots in guest RAM itself to see where a program's pages
really are, reads QEMU's exception log to see that the user copies really faulted on the
addresses it chose at run time and were recovered through the fix-up table it reads from the
kernel's ELF file, and trusts no line the kernel prints without such a witness."""
import re

from pagoda_grade import lab_test
from pagoda_grade.processes import (kernel_faults, parse_reaped, recovered_by_fixup, user_page_frames, user_runs,
                                    user_symbol)
from pagoda_grade.proof import proof
from pagoda_grade.symbols import fact, user_fixups
from pagoda_grade.witness import ARCHES, PAGE, pick_in
from test_lab3 import GRADER_MEMORY, HELLO_TAG, Watch, collatz_steps, syscall_number, syscall_stops

EFAULT = -14
BADPTR_KINDS = ["null", "kernel", "noncanonical", "unmapped", "straddling", "readonly"]


def window_end(kernel):
    """The first physical address above the kernel's window (facts exported by the kernel)."""
    return fact(kernel, "window_phys_base") + fact(kernel, "window_size")


def hello_line(token, arch):
    n = 1 + proof(token, HELLO_TAG) % 1_000_000
    steps = collatz_steps(n)
    return f"hello: from user space on {arch}: collatz({n}) takes {steps} steps proof={proof(token, steps):016x}\n"


def hello_write(guest, watch, want_roots_not, limit=60):
    """Stops at write calls until one whose buffer (read by the grader through the caller's root)
    starts with 'hello:' from a root not in @p want_roots_not; what the grader saw then."""
    number = syscall_number("Write")
    for _ in range(limit):
        snap = syscall_stops(guest, watch, {number})
        root = snap.lower_root  # the process's own root (x86_64: CR3; AArch64: TTBR0)
        if root in want_roots_not:
            continue
        _, buf, length = (snap.register(r) for r in watch.proc["syscall_args"][:3])
        data = snap.read_virt(buf, min(length, 4096), root)
        if not data.startswith(b"hello:"):
            continue
        runs = snap.dump(root)
        return dict(root=root, data=data, frames=sorted(user_page_frames(runs, watch.layout)),
                    pages=sum((r.va_end - r.va_start) // PAGE for r in user_runs(runs, watch.layout)))
    raise AssertionError(f"no write of hello's line in {limit} system calls")


def low_frames(w, kernel):
    """A sentence about the frames of the root in @p w that lie inside the window, or ''."""
    end = window_end(kernel)
    low = [f for f in w["frames"] if f < end]
    if not w["frames"]:
        return "the grader found no user page in its root"
    if low:
        return (f"{len(low)} of its {len(w['frames'])} user pages are in frames below {end:#x}, inside the kernel's "
                f"window (first: {low[0]:#x}): user memory must come from above the window (allocate high frames "
                "and write them through temporary mappings)")
    return ""


# ---- a program above the window ---------------------------------------------------------------

@lab_test(4, "high_frames")
def test_high_frames(boot, kernel, arch):
    token = boot.fresh_token()
    want = hello_line(token, arch)
    watch = Watch(kernel, arch)

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        return hello_write(guest, watch, set())

    run = boot(args={"run": "hello"}, token=token, witness=script, memory=GRADER_MEMORY)
    w = watch.require(run)
    if w["data"].decode(errors="replace") != want:
        watch.fail(run, f"hello's write buffer, read by the grader through its root, holds {w['data'][:120]!r}, "
                        f"expected {want!r}")
    problem = low_frames(w, kernel)
    if problem:
        watch.fail(run, f"hello ran, but {problem}")
    run.expect(re.escape(want.rstrip("\n")) + "$", "hello's line on the console")
    if parse_reaped(run).get(1) != "exited with code 0":
        watch.fail(run, "missing: 'proc 1 (hello): reaped: exited with code 0'")
    run.expect_outcome("success")


# ---- loading into a root that is not live -----------------------------------------------------

@lab_test(4, "spawn_while_running")
def test_spawn_while_running(boot, kernel, arch):
    token = boot.fresh_token()
    want = hello_line(token, arch)
    count = pick_in(token, "spawns", 1, 3)
    watch = Watch(kernel, arch)

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        parent_roots = set(watch.roots)  # the kernel's and the spawner's: the child's is made later
        return hello_write(guest, watch, parent_roots)

    run = boot(args={"run": f"spawner:hello:{count}"}, token=token, witness=script, memory=GRADER_MEMORY)
    w = watch.require(run)
    if w["data"].decode(errors="replace") != want:
        watch.fail(run, f"the spawned hello's write buffer, read by the grader through the child's root "
                        f"{w['root']:#x}, holds {w['data'][:120]!r}, expected {want!r}: the child was not loaded "
                        "correctly into its root (written through a mapping of another root?)")
    problem = low_frames(w, kernel)
    if problem:
        watch.fail(run, f"the spawned hello ran, but {problem}")
    run.expect(rf"^spawner: {count} of {count} started proof={proof(token, count):016x}$", "the spawner's summary")
    reaped = parse_reaped(run)
    if sum(1 for how in reaped.values() if how == "exited with code 0") != count + 1:
        watch.fail(run, f"expected the spawner and its {count} children to exit with 0; reaped: {reaped}")
    run.expect_outcome("success")


# ---- bad user pointers ------------------------------------------------------------------------

@lab_test(4, "bad_pointers")
def test_bad_pointers(boot, kernel, arch):
    token = boot.fresh_token()
    layout_window = fact(kernel, "window_base")
    kernel_address = layout_window + pick_in(token, "badptr kernel", 0, (1 << 20) - 1) * PAGE
    unmapped = (1 << 36) + pick_in(token, "badptr unmapped", 0, (1 << 24) - 1) * PAGE  # far from every segment
    readonly = user_symbol(kernel, arch, "badptr", "(anonymous namespace)::kReadOnly").address
    end = user_symbol(kernel, arch, "badptr", "_end").address
    straddle_page = (end + PAGE - 1) // PAGE * PAGE
    watch = Watch(kernel, arch)

    def script(guest):
        watch.before(guest)
        watch.started_check(guest)
        return True

    run = boot(args={"run": f"badptr:{kernel_address:#x}:{unmapped:#x}"}, token=token, witness=script,
               memory=GRADER_MEMORY)
    watch.require(run)
    if run.search(r"^PANIC"):
        watch.fail(run, "a bad user pointer made the kernel panic")
    faults = kernel_faults(kernel, run)
    if faults:
        watch.fail(run, f"a bad user pointer made the kernel fault: {faults[0].describe(run.symbol_of)} (a user copy "
                        "whose instruction is not in the fix-up table, or an access outside the copies)")
    tag = 0
    efaults = 0
    for kind in BADPTR_KINDS:
        tag += 1
        ops = [("read (write)", 0), ("read (spawn)", 1), ("write (proc_info)", 2)] if kind != "readonly" else \
            [("write (proc_info)", 2)]
        for op, salt in ops:
            got = proof(token, (EFAULT & (2**64 - 1)) ^ (tag << 8) ^ salt)
            run.expect(rf"^badptr: {kind} {re.escape(op)} -> {EFAULT} proof={got:016x}$",
                       f"EFAULT for a {kind} pointer ({op})")
            efaults += 1
    run.expect(rf"^badptr: {efaults} EFAULTs proof={proof(token, efaults):016x}$", "badptr's summary")
    # The witness: the copies really ran and faulted on the addresses the grader chose, and were
    # recovered (instruction in the fix-up table read from the ELF file, address in the user half).
    fixed = [f for f in run.log.faults if recovered_by_fixup(kernel, f)]
    if not user_fixups(kernel):
        watch.fail(run, "the kernel has no fix-up table (section pagoda_user_fixups)")
    expected = {"null": lambda a: a < PAGE, "unmapped": lambda a: unmapped <= a < unmapped + PAGE,
                "straddling": lambda a: a == straddle_page, "readonly": lambda a: readonly <= a < readonly + 64}
    missing = [k for k, hit in expected.items() if not any(hit(f.address) for f in fixed)]
    if missing:
        watch.fail(run, f"QEMU's log shows no recovered user-copy fault for the {', '.join(missing)} pointer(s): "
                        "the kernel did not really copy (a kernel that prints EFAULT without trying scores nothing)")
    privilege = ARCHES[arch].kernel_privilege
    for f in run.log.faults:
        if f.privilege == privilege and f.address is not None and kernel_address <= f.address < kernel_address + PAGE:
            watch.fail(run, f"the kernel touched the kernel-half address {kernel_address:#x} a user passed it: a kernel "
                            "pointer must be refused before any copy")
    run.expect(r"^run: temp-map slots live: 0;", "no temp-map slot left live after the run")
    if parse_reaped(run).get(1) != "exited with code 0":
        watch.fail(run, "missing: 'proc 1 (badptr): reaped: exited with code 0'")
    run.expect_outcome("success")
