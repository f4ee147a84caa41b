"""The frame allocator seen from outside (lab 1): its `used` and `ever` bitmaps read from guest
RAM, the frames they mark free, and what the grader can say of next fit, a limit, the limit's edge
and check_free() from them. docs/grader.md, "Lab 1"."""
from .processes import FRAME_ALLOCATOR, count_used, frame_bitmap
from .symbols import address_of, fact, physical_of
from .vmchecks import GRADER_RAM
from .bootram import usable_ram
from .witness import PAGE, image_physical, kernel_image_regions, pick_in

FIT_FREED = 128             # the frames the next-fit self-test gives back first (kernel/mm/vm_selftest.cpp)
REFUSED = (1 << 64) - 1     # what the self-test notes for a refused allocation (not a frame's address)
# check_free()'s answers, by the names of the facts the kernel exports their values as
FREE_CHECKS = ("ok", "misaligned", "not_managed", "never_allocated", "double_free")


def allocator_bits(snap, kernel):
    """(used, ever, words): the frame allocator's `used` and `ever` bitmaps as ints (one bit per
    frame), read from guest RAM where the allocator object (found by its symbol) points."""
    used_va, words = frame_bitmap(snap, kernel)
    at = physical_of(kernel, address_of(kernel, FRAME_ALLOCATOR))
    ever_va = int.from_bytes(snap.read_phys(at + fact(kernel, "frame_allocator_ever_offset"), 8), "little")
    return count_used(snap, used_va, words)[1], count_used(snap, ever_va, words)[1], words


def lowest_free(used, words, count):
    """The @p count lowest frames (addresses) the `used` bitmap @p used marks free."""
    free = ~used & ((1 << (words * 64)) - 1)
    out = []
    while free and len(out) < count:
        low = free & -free
        out.append((low.bit_length() - 1) * PAGE)
        free ^= low
    return out


WORD = 64 * PAGE    # the memory one word of the allocator's bitmaps covers (64 frames)


def first_free_after(used, words, frame):
    """The first frame after @p frame (an address) that the `used` bitmap @p used marks free, or None."""
    f = frame // PAGE + 1
    end = words * 64
    while f < end and used >> f & 1:
        f += 1
    return f * PAGE if f < end else None


def free_below(used, limit):
    """How many frames below @p limit (an address) the `used` bitmap @p used marks free."""
    below = (1 << (limit // PAGE)) - 1
    return bin(~used & below).count("1")


def wrap_problem(limit, last, free, got):
    """None, or what is wrong with one allocate_below(@p limit) that must wrap around: the grader
    read in the allocator's bitmap that no frame is free between @p last (the last frame it handed
    out, where next fit goes on) and the limit, and @p free frames are free below the limit, all
    of them below @p last. @p got: what the call returned (REFUSED for a refusal)."""
    said = (f"allocate_below({limit:#x}), called when no frame between the last one it handed out ({last:#x}) and the "
            f"limit was free but {free} below it were (the grader read the allocator's bitmap in guest RAM)")
    if got == REFUSED:
        return (f"{said}, refused: next fit never wraps around: when nothing is free from where it last found a frame "
                "up to the limit, the search must go on from word 0")
    if got >= limit:
        return f"{said}, handed out {got:#x}, at or above the limit"
    return None


def edge_word_problem(limit, free_below_limit, got):
    """A sentence when the free frames below @p limit that the edge's calls never handed out (@p got:
    what they returned) all lie in the word of the bitmap @p limit falls in: a search that stops
    before that word (the words up to the limit counted rounded down); None otherwise."""
    missed = [f for f in free_below_limit if f not in got]
    if missed and all(f // WORD == limit // WORD for f in missed):
        return (f"the free frames below the limit in the limit's own word of the bitmap "
                f"({', '.join(f'{f:#x}' for f in missed)}) were never handed out: the search stops before the word "
                "the limit falls in (count the words up to the limit rounded up, and mask that word's bits at and "
                "above the limit)")
    return None


def unmarked_frames(frames, ever):
    """The frames of @p frames (addresses the grader saw allocate_below() hand out; REFUSED skipped)
    that the `ever` bitmap @p ever does not mark."""
    return [f for f in frames if f != REFUSED and not ever >> (f // PAGE) & 1]


def free_check_plan(token, kernel, arch, got, used, ever, words):
    """[(address, expected answer, what it is)]: the addresses the grader asks check_free() about,
    each answer known from what the grader saw (the frames the test holds and gave back, read
    from guest RAM) and from the allocator's bitmaps; in an order the token picks."""
    held = [f for f in got[FIT_FREED:] if used >> (f // PAGE) & 1]
    back = [f for f in got[:FIT_FREED] if not used >> (f // PAGE) & 1 and ever >> (f // PAGE) & 1]
    ram = [(a, b) for a, b in usable_ram(kernel, arch, GRADER_RAM)]
    img_lo, img_hi = image_physical(kernel)
    never = []
    # (the bitmaps as bytes: a shift of the whole int per frame is slow where they are long, as on
    # AArch64, whose RAM starts at 1 GiB)
    seen = (used | ever).to_bytes(max(words * 8, ((used | ever).bit_length() + 7) // 8), "little")
    for a, b in ram:
        for f in range(a // PAGE, min(b, words * 64 * PAGE) // PAGE):
            if not seen[f >> 3] >> (f & 7) & 1 and not img_lo <= f * PAGE < img_hi:
                never.append(f * PAGE)
    plan = []
    if held:
        plan.append((held[pick_in(token, "check held", 0, len(held) - 1)], "ok", "a frame the test holds"))
        frame = held[pick_in(token, "check odd", 0, len(held) - 1)]
        plan.append((frame + pick_in(token, "check offset", 1, PAGE - 1), "misaligned",
                     "an address inside a frame the test holds, not its start"))
    for k in range(min(2, len(back))):
        plan.append((back[pick_in(token, f"check back {k}", 0, len(back) - 1)], "double_free",
                     "a frame the test was handed and gave back (free again: a second free is a double free)"))
    if never:
        plan.append((never[pick_in(token, "check never", 0, len(never) - 1)], "never_allocated",
                     "a free frame of RAM the allocator never handed out"))
    text = next(r for r in kernel_image_regions(kernel) if r.perms == "r-x")
    plan.append((text.pa + pick_in(token, "check image", 0, text.size // PAGE - 1) * PAGE, "not_managed",
                 "a frame of the kernel's text (reserved: never the allocator's)"))
    plan.append((words * 64 * PAGE + pick_in(token, "check beyond", 0, 1 << 20) * PAGE, "not_managed",
                 "a frame beyond the allocator's bitmaps"))
    order = sorted(range(len(plan)), key=lambda i: pick_in(token, f"check order {i}", 0, 1 << 30))
    return [plan[i] for i in order]


def refusal_problem(limit, wanted, got, free):
    """What is wrong when allocate_below(@p limit), asked for @p wanted frames, refused after
    handing out @p got, while the grader had read in the allocator's bitmap that the frames
    @p free (the lowest ones, up to FIT_FREED) lay free below the limit."""
    said = (f"allocate_below({limit:#x}) refused after {len(got)} of {wanted} frames, while at least {len(free)} frames "
            "below the limit were free (the grader read the allocator's bitmap in guest RAM as it delivered the limit)")
    if len(free) < wanted:
        return f"the test's limit {limit:#x} had only {len(free)} free frames below it, not the {wanted} it asked for"
    word = edge_word_problem(limit, free, got)
    return f"{word}\n{said}" if word else f"{said}: a free frame below the limit must be handed out"


def edge_problem(limit, free_below, got, limit_seen):
    """None, or what is wrong with the k + 1 calls of allocate_below(@p limit) at the limit's edge
    (@p got, what each returned; REFUSED for a refusal): the grader read in the allocator's
    bitmap that exactly the k frames @p free_below are free below the limit, and the frame at the
    limit is free too. The k calls must hand out those k frames, the last one must be refused:
    the limit is not below itself."""
    k = len(free_below)
    said = (f"allocate_below({limit:#x}), called {k + 1} times with {k} free frame(s) below the limit and the frame at "
            "the limit free too (the grader read the allocator's bitmap in guest RAM)")
    if limit_seen != limit or len(got) != k + 1:
        return f"the limit's edge: the test did not make {k + 1} calls of allocate_below({limit:#x}) (the grader's limit)"
    if got[k] == limit:
        return (f"{said}, handed out {limit:#x}, the frame at the limit itself: the limit is exclusive, only frames "
                "below it may be handed out (a frame count that includes the limit's own frame)")
    if got[k] != REFUSED:
        return (f"{said}, handed out {got[k]:#x} on the last call, when no free frame was left below the limit: it must "
                "be refused (Error::NoMemory)")
    if sorted(got[:k]) != sorted(free_below):
        shown = ", ".join("refused" if f == REFUSED else f"{f:#x}" for f in got[:k])
        word = edge_word_problem(limit, free_below, got[:k])
        return ((f"{word}\n" if word else "") +
                f"{said}, handed out [{shown}] on the first {k} calls, not the free frames below the limit "
                f"[{', '.join(f'{f:#x}' for f in free_below)}]")
    return None


def free_check_problems(kernel, plan, answers):
    """What check_free() answered wrongly for the grader's @p plan ([(address, expected, what)])."""
    names = {fact(kernel, f"free_check_{n}"): n for n in FREE_CHECKS}
    if len(answers) != len(plan):
        return [f"the test answered {len(answers)} of the grader's {len(plan)} check_free() questions"]
    problems = []
    for (address, want, what), got in zip(plan, answers):
        said = names.get(got, f"{got:#x} (no FreeCheck)")
        if said == want:
            continue
        why = {"double_free": "a double free is accepted as if the frame were in use (the `ever` bitmap tells a "
                              "frame freed twice from one never allocated)",
               "never_allocated": "a frame never handed out must not be freed (the `ever` bitmap says it never was)",
               "misaligned": "only the start of a frame can be freed",
               "not_managed": "a frame the allocator does not manage (reserved, a hole, beyond its bitmaps) is never "
                              "its to free",
               "ok": "a frame in use must be accepted"}[want]
        problems.append(f"check_free({address:#x}), {what}, answered {said}, not {want}: {why}")
    return problems
