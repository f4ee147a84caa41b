"""Checks the tests of several labs share (on top of witness.py): the whole-map check at an
instant the grader picks, and the architecture facts of the fault tests."""
import re

from pagoda import faultlog

from .witness import compare_map, expected_kernel_map, pick_in

# How each architecture raises the page faults these tests provoke: expect_fault()'s vector,
# error and error_mask for a read of an unmapped page, a write to a read-only page and an
# instruction fetch from a no-execute page. x86_64: #PF (vector 14) and its error code.
# AArch64: QEMU's exception 4 (Data Abort) or 3 (Prefetch Abort) and the syndrome, ESR: class
# (EC 0x25 data abort / 0x21 instruction abort, same EL), WnR and the fault status type
# (translation or permission fault); its level depends on the tables, so it is masked out.
PAGE_FAULT = {
    "x86_64": dict(read=dict(vector=14, error=0x0), write_protect=dict(vector=14, error=0x3),
                   fetch=dict(vector=14, error=0x11)),
    "aarch64": dict(read=dict(vector=4, error=0x9600_0004, error_mask=faultlog.ESR_FAULT_KIND_MASK),
                    write_protect=dict(vector=4, error=0x9600_004C, error_mask=faultlog.ESR_FAULT_KIND_MASK),
                    fetch=dict(vector=3, error=0x8600_000C, error_mask=faultlog.ESR_FAULT_KIND_MASK)),
}
# The paging controls that make permissions real, read from outside: (register, bit, what).
PAGING_CONTROLS = {"x86_64": (("efer", 11, "EFER.NXE is off: no-execute bits are not enforced"),
                              ("cr0", 16, "CR0.WP is off: the kernel can write to read-only pages")),
                   "aarch64": (("sctlr_el1", 0, "SCTLR_EL1.M is off: the MMU does not translate"),
                               ("sctlr_el1", 19, "SCTLR_EL1.WXN is off: writable pages are executable"))}
# Guest RAM of the boots that check maps: more than the window, so RAM above it exists.
GRADER_RAM = 128 * 1024 * 1024


def stop_words(reason):
    """('PML4', 96) from a walk's 'PML4 entry 96 not present' (kernel or grader wording; the
    grader's AArch64 walker says 'L0 entry 299 invalid (translation fault)')."""
    m = re.search(r"(\w+) entry (\d+) (?:not present|invalid)", reason or "")
    return (m[1], int(m[2])) if m else None


def check_whole_map(boot, kernel, arch, token, extra=None):
    """Boots the kernel to idle, stops it at an instant the grader picks, and compares the live
    map with the whole expected map; returns (run, problems)."""
    def script(guest):
        snap = guest.stop_at_line(r"^idle:", delay=pick_in(token, "instant", 0, 200) / 1000)
        problems = compare_map(snap, expected_kernel_map(kernel, arch, GRADER_RAM))
        for register, bit, message in PAGING_CONTROLS[arch]:
            if not snap.registers[register] >> bit & 1:
                problems.append(message)
        if extra is not None:
            problems += extra(snap)
        guest.end()
        return problems

    run = boot(token=token, memory=f"{GRADER_RAM >> 20}M", witness=script)
    return run, run.require_witness()
