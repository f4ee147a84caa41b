"""Checks the tests of several labs share (on top of witness.py): the whole-map check at an
instant the grader picks, and the architecture facts of the fault tests."""
import re

from .witness import compare_map, expected_kernel_map, pick_in

# How each architecture raises the page faults these tests provoke (vector, error code).
PAGE_FAULT = {"x86_64": dict(vector=14, read=0x0, write_protect=0x3, fetch=0x11)}
# The paging controls that make permissions real, read from outside: (register, bit, what).
PAGING_CONTROLS = {"x86_64": (("efer", 11, "EFER.NXE is off: no-execute bits are not enforced"),
                              ("cr0", 16, "CR0.WP is off: the kernel can write to read-only pages"))}
# Guest RAM of the boots that check maps: more than the window, so RAM above it exists.
GRADER_RAM = 128 * 1024 * 1024


def stop_words(reason):
    """('PML4', 96) from a walk's 'PML4 entry 96 not present' (kernel or grader wording)."""
    m = re.search(r"(\w+) entry (\d+) not present", reason or "")
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
