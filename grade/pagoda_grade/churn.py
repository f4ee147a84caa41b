"""Frames given back, witnessed by behaviour (labs 3, 5 and 6): a chain of processes, never more
than two alive, that together touch more frames than the guest has (user/programs/churn.cpp).
Each link touches P pages of its own and ends (exits, or in `exec` mode every other link execs
the next one); the guest's RAM is the grader's choice (MEMORY), so the chain reaches its last
link only if every frame a link gave back could be handed out again. A kernel that keeps them (a
leak its own counts and bitmap hide, a decoy bitmap: grade/harness_tests/fixtures/common/
leakdecoy.cpp) runs out, and a spawn or an exec fails on the way.

What is witnessed: the last link in user mode (a stop at churn's churn_last(), the grader's own
build), its arguments there (n, P) and its P pages in its root, each holding what it wrote
(guest RAM). The chain's lines only name where it broke."""
import re

from .harness import memory_bytes
from .processes import user_symbol
from . import contract
from .symbols import address_of
from .witness import PAGE

MEMORY = "5M"
ENOMEM = 12
BROKE = re.compile(r"^churn: link (\d+) of (\d+): (spawn|exec) failed: (-?\d+) proof=")
OUT_OF_MEMORY = re.compile(r"^proc (\d+) \(churn\): killed: .*(out of memory|no memory)")


def spec(n, pages, exec_mode=False):
    """The run= item of a chain of @p n links touching @p pages pages each."""
    assert n * pages * PAGE // (2 if exec_mode else 1) > memory_bytes(MEMORY), "a chain that cannot run out"
    return f"churn:{n}:1:{pages}" + (":exec" if exec_mode else "")


def run_to_end(guest, watch):
    """Runs the guest (stopped after the run's 'started' checkpoint: test_lab3.Watch) until churn's
    last link calls churn_last() in user mode, then to the run's 'ended' checkpoint; (the Snapshot
    there, what the grader saw of the last link: dict(n, pages, touched), or None when the run
    ended without it)."""
    kernel, arch = watch.kernel, watch.arch
    last = user_symbol(kernel, arch, "churn", "churn_last").address
    snap = guest.stop_at_any([last, address_of(kernel, contract.CHECKPOINT)])
    if snap.pc != last:
        return snap, None   # (the only checkpoint after 'started' is 'ended')
    n, pages = snap.argument(0), snap.argument(1)
    base = user_symbol(kernel, arch, "churn", "(anonymous namespace)::g_pages").address
    touched = sum(1 for p in range(min(pages, 64)) if snap.walk(base + p * PAGE, snap.lower_root).mapped
                  and snap.read_virt(base + p * PAGE, 1, snap.lower_root)[0] == (1 + p + n) & 0xFF)
    return watch.checkpoint(guest, "ended"), dict(n=n, pages=pages, touched=touched)


def verdict(run, n, pages, last, before, after):
    """What is wrong with a chain of @p n links of @p pages pages from what the grader saw of its
    last link (@p last: run_to_end()'s) and the frames used before and after the run; None."""
    if last is None:
        return broken_chain(run, n, pages, before, after) or (
            f"the grader never stopped in the last link of churn's chain of {n} (churn_last, in user mode)")
    if (last["n"], last["pages"], last["touched"]) != (n, pages, pages):
        return (f"the last link of churn's chain called churn_last({last['n']}, {last['pages']}) with "
                f"{last['touched']} of its pages mapped and holding what it wrote (the grader's walk of its root): "
                f"expected ({n}, {pages}) and all {pages}")
    return None


def broken_chain(run, n, pages, before, after):
    """The sentence for a chain of @p n links of @p pages pages that never reached its last link
    because memory ran out (a spawn or an exec refused with ENOMEM, or a link killed with no frame
    for a page it touched: the kernel's lines, which only name where), with @p before and @p after
    the frames the allocator's bitmap marked used before and after the run; None for any other
    break."""
    m, killed = run.search(BROKE), run.search(OUT_OF_MEMORY)
    if m and int(m[4]) == -ENOMEM:
        where = f"link {m[1]} of churn's chain of {n} could not {m[3]} the next (-{ENOMEM}, ENOMEM)"
    elif killed:
        where = f"pid {killed[1]}, a link of churn's chain of {n}, was killed with no frame for a page it touched"
    else:
        return None
    frames = memory_bytes(MEMORY) // PAGE
    return (f"frames are not given back when a process ends (or execs): {where}, with at most two links alive; the "
            f"links touch {pages} pages each, {n * pages} frames in all, more than the guest's {frames} (-m {MEMORY}, "
            "the grader's choice), so the chain lives on the frames the links before it gave back, and it ran out (the "
            "grader never stopped in its last link): the user pages of an ended process (or of the program an exec "
            "replaced) must be freed for good, to be handed out again"
            + (f" (the allocator's used bitmap, guest RAM, agrees: {after} frames used after the run, {before} before "
               "it)" if after != before else
               f"; yet the allocator's used bitmap (guest RAM) marks {after} frames used after the run, as many as "
               "before it: the frames it shows free are not the ones it hands out"))
