"""Frames given back, witnessed by behaviour (labs 3, 5 and 6): a chain of processes, never more
than two alive, that together touch more frames than the guest has (user/programs/churn.cpp).
Each link touches P pages of its own and ends (exits, or in `exec` mode every other link execs
the next one); the guest's RAM is the grader's choice (MEMORY), so the chain reaches its last
link only if every frame a link gave back could be handed out again. A kernel that keeps them (a
leak its own counts and bitmap hide, a decoy bitmap: grade/harness_tests/fixtures/common/
leakdecoy.cpp) runs out, and a spawn or an exec fails on the way.

What is witnessed: the last link in user mode (a stop at churn's churn_last(), the grader's own
build), its arguments there (n, P) and its P pages in its root, each holding what it wrote
(guest RAM). The chain's lines only name where it broke.

The drains (labs 3, 5 and 6: LABS) witness the same in every run, however few frames it touches:
with drain=on the kernel's run (kernel/proc/run.cpp, outside the students' regions) takes every
frame the allocator will hand out just before the first process is made and again once every
process has ended, records each drain in a bitmap of its own, stamps the frames of the second and
gives them all back. given_back_problem() reads both bitmaps in the RAM the boot left (the
audit's Remains) and names the frames the first drain got and the second did not: a frame a
process held that never came back, whatever the allocator's own bitmap says."""
import re
import struct

from pagoda_core.qemu import memory_mib
from pagoda_pt import contract
from pagoda_pt.image import CensusError, kernel_image

from .processes import user_symbol
from .symbols import address_of, fact, reader
from .witness import PAGE

LABS = (3, 5, 6)   # the labs whose runs drain (conftest: Booter's drains)

MEMORY = "5M"
ENOMEM = 12
BROKE = re.compile(r"^churn: link (\d+) of (\d+): (spawn|exec) failed: (-?\d+) proof=")
OUT_OF_MEMORY = re.compile(r"^proc (\d+) \(churn\): killed: .*(out of memory|no memory)")


def spec(n, pages, exec_mode=False):
    """The run= item of a chain of @p n links touching @p pages pages each."""
    assert n * pages * PAGE // (2 if exec_mode else 1) > (memory_mib(MEMORY) << 20), "a chain that cannot run out"
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
    frames = (memory_mib(MEMORY) << 20) // PAGE
    return (f"frames are not given back when a process ends (or execs): {where}, although the links that had ended were freed first (spawn and fork reap them when they run out); the "
            f"links touch {pages} pages each, {n * pages} frames in all, more than the guest's {frames} (-m {MEMORY}, "
            "the grader's choice), so the chain lives on the frames the links before it gave back, and it ran out (the "
            "grader never stopped in its last link): the user pages of an ended process (or of the program an exec "
            "replaced) must be freed for good, to be handed out again"
            + (f" (the allocator's used bitmap, guest RAM, agrees: {after} frames used after the run, {before} before "
               "it)" if after != before else
               f"; yet the allocator's used bitmap (guest RAM) marks {after} frames used after the run, as many as "
               "before it: the frames it shows free are not the ones it hands out"))


def fnv1a(text):
    """64-bit FNV-1a of @p text (the key of a run's stamps: the kernel's drain_key())."""
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = (h ^ b) * 0x100000001B3 & (1 << 64) - 1
    return h


def frames_of(words, first):
    """The physical addresses of the frames whose bits are set in @p words (bit 0: frame @p first)."""
    out = []
    for w, word in enumerate(words):
        while word:
            low = word & -word
            out.append((first + w * 64 + low.bit_length() - 1) * PAGE)
            word ^= low
    return out


def mapped_frames(kernel, arch, ram, offset):
    """{frame: what it is} of the table frames of every root the kernel's registry lists and the
    user pages of its process roots, read in @p ram (a boot's Remains); {} when it cannot be read."""
    from pagoda_pt import roots, trees
    try:
        registry = roots.read_root_table(lambda va, n: ram.read_phys(va - offset, n),
                                         address_of(kernel, contract.ROOT_REGISTRY))
        out = {}
        for k in registry.roots:
            if k.kind == "process":
                out.update((p.pa, f"user page {p.va:#x} of {k.name}") for p in trees.user_pages(
                    arch, ram.read_phys, k.root, limit=1 << 16))
            out.update((t, f"a page table of {k.name}") for t in trees.table_frames(arch, ram.read_phys, k.root))
        return out
    except (roots.RegistryError, CensusError, ValueError):
        return {}


def given_back_problem(kernel, arch, ram, token):
    """What the drains of a boot's run (@p ram: the audit's Remains of its RAM, @p token its token)
    say is wrong, or None (also when the run never ended: nothing to compare). Every frame of the
    second drain must be RAM outside the kernel's text and data, distinct (a bitmap), and hold its
    stamp where the kernel wrote one (every frame the window reaches, and beyond it the frames the token
    samples), and be no table or user page of a root the registry lists; every frame of the first
    that the allocator's used bitmap shows free must be in the second."""
    img = kernel_image(reader(kernel))     # (pagoda_pt.image: the instructor's window facts)
    phase, first, words, bits, *_ = struct.unpack("<6Q", ram.read_phys(
        img.must_pa(address_of(kernel, contract.FRAME_DRAIN)), 48))
    if phase != 2 or not words:
        return None
    window_end = img.window[1] + img.window[2]
    try:
        data = ram.read_phys(img.must_pa(bits, "the drains' bitmaps"), 16 * words)
    except (ValueError, CensusError) as e:
        return f"the run's record of its frame drains ({contract.FRAME_DRAIN}) cannot be read in guest RAM: {e}"
    before = frames_of(struct.unpack(f"<{words}Q", data[:8 * words]), first)
    after = frames_of(struct.unpack(f"<{words}Q", data[8 * words:]), first)
    key, magic, sample = fnv1a(token), fact(kernel, "drain_magic"), fact(kernel, "drain_sample")
    sections = {s.name: s for s in img.sections}
    image = (sections[".text"].start - img.virt_offset, sections[".data/.bss"].end - img.virt_offset)
    mapped = mapped_frames(kernel, arch, ram, img.virt_offset)
    for f in after:
        if not ram.ram_base <= f < ram.ram_base + ram.ram_size or image[0] <= f < image[1]:
            what = "in the kernel's text or data" if image[0] <= f < image[1] else "not RAM"
            return (f"the frame allocator handed out frame {f:#x}, {what}, when the grader's drain took every frame "
                    "it would give once every process had ended: an allocator hands out free frames of RAM only")
        if f in mapped:
            return (f"the frame allocator handed out frame {f:#x}, {mapped[f]} (the root registry's, walked by the "
                    "grader), when the grader's drain took every frame it would give once every process had ended: "
                    "a frame still in use is not free")
        if f < window_end or (f // PAGE ^ key) % sample == 0:
            got = struct.unpack("<2Q", ram.read_phys(f, 16))
            if got != (magic, key ^ f):
                return (f"frame {f:#x}, which the frame allocator handed the grader's drain once every process had "
                        f"ended, does not hold what the drain wrote into it ({magic:#x}, {key ^ f:#x}; it holds "
                        f"{got[0]:#x}, {got[1]:#x}): the frame handed out is not the one written")
    # A frame the used bitmap shows in use is a leak the kernel owns up to: the tests' own counts in
    # that bitmap name it with its cause (exit_frees, lab 6's baseline). The drains fail a test for
    # the frames it calls free and never hands out.
    bitmaps = img.must_pa(address_of(kernel, contract.FRAME_BITMAPS))
    used_va, _, used_words = struct.unpack("<3Q", ram.read_phys(bitmaps, 24))
    used = int.from_bytes(ram.read_phys(img.must_pa(used_va), 8 * used_words), "little")
    lost = sorted(f for f in set(before) - set(after) if not used >> (f // PAGE) & 1)
    if not lost:
        return None
    from .audit import leak_classes
    classes = leak_classes(kernel, arch, ram.read_phys, lost)
    return (f"{len(lost)} frames that ended processes held were never given back"
            + (f" ({'; '.join(c.sentence() for c in classes[:2])})" if classes else "")
            + f", though the allocator's used bitmap (guest RAM) marks them free: the frame allocator handed out "
            f"{len(before)} frames just before the first process was made and {len(after)} once every process had "
            f"ended, and {', '.join(hex(f) for f in lost[:4])}{', ...' if len(lost) > 4 else ''} were not among the "
            "second (the grader's drains took every frame it would give, and the grader found them in guest RAM): "
            "frames a process held must go back to the allocator for good when it ends (or execs, or unmaps them), "
            "to be handed out again, and the bitmap must say what the allocator does")
