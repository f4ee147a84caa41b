"""The kernel's copies to and from user memory, seen from outside (lab 4 on): which copy routine
faulted where (QEMU's log against the fix-up table read from the ELF file), a new process's
arguments written through the live root, the edges of the user half, and copies into a space that
is not live, each named from what the grader read. docs/grader.md, "Lab 4"."""
import struct

from pagoda_pt.verdicts import arguments_through_live_root

from .processes import recovered_by_fixup
from .proof import proof
from .symbols import fact, function_at, user_fixups
from .tempmaps import WORDS, pattern, pattern_page
from .witness import ARCHES, PAGE

EFAULT = -14
ENAMETOOLONG, ENOENT = -36, -2
MAX_NAME = 31            # abi::kMaxProgramName: spawn's buffer holds MAX_NAME + 1 bytes
PROC_INFO_SIZE = 72      # sizeof(abi::ProcInfo)
# The twin of the space_copy self-test's source (kernel/proc/proc_selftest.cpp): byte i is byte i % 8 of
# proof(token, SPACE_COPY_TAG + i // 8).
SPACE_COPY_TAG = 0x53430000


COPY_ROUTINES = ("user_copy", "user_string_copy")   # arch/<isa>/user_copy.S: <isa>_user_copy, ...


def in_string_copy(kernel, pc):
    """True when @p pc lies in the arch's string copy routine (<isa>_user_string_copy)."""
    s = function_at(kernel, pc)
    return bool(s) and s.name.endswith("user_string_copy")


def in_copy_routine(kernel, pc):
    """True when @p pc lies in one of the arch's user-copy routines (arch/<isa>/user_copy.S)."""
    s = function_at(kernel, pc)
    return bool(s) and s.name.endswith(COPY_ROUTINES)


def loader_write_problem(run, kernel, watch):
    """A sentence when QEMU's log shows the kernel touching the top page of the user stack (where a
    new process's arguments go) through its user address while the root that was live does not
    map it: the loader wrote a process that is not live through the live root (seed 003's mistake)
    instead of through its own tables and a temporary mapping of the frame. None otherwise.
    A copy that faulted with the CPU's guard still up (causes.copy_guard_cause) comes first: its
    fault on the argument page is the process's own buffer, refused by SMAP or PAN."""
    from .causes import copy_guard_cause   # (the headline's module, loaded when a lab-4 test looks)
    guard = copy_guard_cause(run)
    if guard:
        return guard
    top = fact(kernel, "user_stack_top")
    privilege = ARCHES[run.arch].kernel_privilege
    events = run.log.events
    for n, f in enumerate(events):
        if f.kind != "exception" or f.privilege != privilege or f.address is None \
                or not top - PAGE <= f.address < top:
            continue
        ran = any(e.privilege != privilege for e in events[:n])
        if f.root is not None and watch is not None and f.root in watch.roots:
            live = watch.roots[f.root]
        elif not ran:
            live = "the kernel root (no process had run yet)"
        else:
            live = f"root {f.root:#x}" if f.root is not None else "another process's root"
        where = run.symbol_of(f.pc) or f"{f.pc:#x}"
        if recovered_by_fixup(kernel, f):
            return arguments_through_live_root(where, f.address, live, "QEMU's log")
        return (f"the kernel wrote a new process's arguments through their user address {f.address:#x} (the argument "
                f"page at the top of the user stack) while {live} was live: a kernel fault at {where} (QEMU's log). "
                "The page is mapped in the new process's root, which is not live while it is loaded; the live root "
                "translates the address (to nothing here, or to another process's stack): write a space that is not "
                "live through its own tables and a temporary mapping of each frame (copy_to_space()), never through "
                "its user addresses")
    return None


QEMU_LOG = "QEMU's log"


def copy_fault_problem(run, kernel, f, kernel_address):
    """The sentence for @p f, a kernel fault that no fix-up recovered, in the bad-pointer test."""
    where = run.symbol_of(f.pc) or f"{f.pc:#x}"
    user_end = fact(kernel, "user_end")
    copying = in_copy_routine(kernel, f.pc)
    first = f"the first kernel fault: {f.describe(run.symbol_of)}"
    if f.address is not None and kernel_address <= f.address < kernel_address + PAGE:
        return (f"the kernel touched the kernel-half address {kernel_address:#x} that badptr passed it ({where}, "
                f"{QEMU_LOG}): a pointer outside the user half must be refused before any copy (a kernel pointer "
                f"copied on a user's behalf reads or writes the kernel)\n{first}")
    if copying and (f.address is None or f.address >= user_end):
        return (f"a user copy ({where}) was given a pointer outside the user half and faulted on it: the copies must "
                f"refuse a kernel or non-canonical pointer before copying\n{first}")
    if copying and f.pc not in user_fixups(kernel):
        return (f"a user copy faulted on user address {f.address:#x} at {where}, and no fix-up took it: that "
                "instruction is not in the fix-up table (section pagoda_user_fixups, read from the kernel's ELF file): "
                f"every instruction of a copy that may fault on a user address needs its entry\n{first}")
    return (f"a bad user pointer made the kernel fault: {f.describe(run.symbol_of)} (a user copy whose instruction is "
            "not in the fix-up table, or an access outside the copies)")


def fail_on_cause(run, watch, cause):
    """Fails with @p cause, the lab's own evidence of the slip, as the headline, and the grader's
    reading of the machine's death (explain_death: the first kernel fault against the roots) after
    it. The evidence comes first: it knows the lab (whose arguments, which copy, which table),
    where the reading of a kernel fault knows only the fault."""
    from .causes import explain_death   # (a failure's wording, loaded for one)
    why = explain_death(run, watch.inspector, watch.layout, watch.roots) if watch is not None else None
    lines = cause.split("\n")
    if why and len(lines) > 1 and why.startswith(lines[-1]):   # the same fault, said once
        cause = "\n".join(lines[:-1])
    run.fail(why or cause, cause=cause)


def check_loader_writes(run, kernel, watch):
    """Fails the test first with loader_write_problem(), when there is one."""
    problem = loader_write_problem(run, kernel, watch)
    if problem:
        fail_on_cause(run, watch, problem)


def copy_problem(source, target, seeds, after_source, after_target):
    """None, or what copy_frame(@p target, @p source) did wrong: before it the grader filled the
    source with pattern_page(seeds[0]) and the target with pattern_page(seeds[1]); after it, it
    read @p after_source and @p after_target from guest RAM. The target must hold the source's
    bytes, and the source keep them."""
    was_source, was_target = pattern_page(seeds[0]), pattern_page(seeds[1])
    call = (f"copy_frame({target:#x}, {source:#x}) (the grader filled the source and the target with values of its "
            "own, then read both frames from guest RAM after the call)")
    if after_target == was_source and after_source == was_source:
        return None
    if after_source == was_target and after_target == was_target:
        return (f"{call} copied the wrong way: the source now holds the target's old bytes, and the target kept them: "
                "copy_frame(to, from) copies from its second argument into its first")
    if after_target == was_target:
        return (f"{call} left the target holding its old bytes: nothing was copied into it (the copy went from a "
                "mapping of the source to itself or to another frame: the target's temporary mapping must be the "
                "copy's destination)")
    if after_source != was_source:
        return f"{call} changed the source frame: a copy only reads its source"
    word = next(i for i in range(WORDS) if after_target[8 * i:8 * i + 8] != was_source[8 * i:8 * i + 8])
    got = struct.unpack_from("<Q", after_target, 8 * word)[0]
    return (f"{call}: the target's word {word} holds {got:#018x}, not the source's {pattern(seeds[0], word):#018x}: the "
            "copy did not copy every byte of the source page")


def edge_cases(top, length, over, short, cut, end_page):
    """(case, tag, result due, what the call is) of user/programs/edges.cpp, in its order."""
    return [
        ("at_top", 1, length, f"write(1, {top - length:#x}, {length}): a buffer whose last byte is the user half's "
                              f"last ({top - 1:#x})"),
        ("over_top", 2, EFAULT, f"write(1, {top - length:#x}, {length + over}): a range that starts in the user half "
                                f"and runs {over} bytes past its top {top:#x}"),
        ("read_over", 9, EFAULT, f"read(0, {top - length:#x}, {length + min(over, 64)}): a buffer that starts in the "
                                 f"user half and runs {min(over, 64)} bytes past its top {top:#x}"),
        ("info_over", 3, EFAULT, f"proc_info({top - length:#x}, {PROC_INFO_SIZE}): a record that runs "
                                 f"{PROC_INFO_SIZE - length} bytes past the user half's top {top:#x}"),
        ("info_at_top", 4, PROC_INFO_SIZE, f"proc_info({top - PROC_INFO_SIZE:#x}, {PROC_INFO_SIZE}): a record whose "
                                           f"last byte is the user half's last"),
        ("name_max", 5, ENAMETOOLONG, f"spawn() of a name of exactly {MAX_NAME + 1} bytes (the kernel's buffer, "
                                      f"kMaxProgramName + 1) with no NUL, ending at the user half's top {top:#x}"),
        ("name_fits", 6, ENOENT, f"spawn() of a name of {MAX_NAME} bytes and its NUL, ending at the user half's top "
                                 f"{top:#x} (no program has that name)"),
        ("name_short", 7, EFAULT, f"spawn() of a name of {short} bytes with no NUL, ending at the user half's top "
                                  f"{top:#x}: it runs off the user half before the kernel's buffer is full"),
        ("name_cut", 8, EFAULT, f"spawn() of a name of {cut} bytes with no NUL, ending at the last byte of edges' last "
                                f"mapped page ({end_page - 1:#x}; the page after it is not mapped)"),
    ]


def edge_fault_problem(run, f, case, what, top, short):
    """The sentence for @p f, a kernel fault no fix-up recovered, during edges' @p case."""
    where = run.symbol_of(f.pc) or f"{f.pc:#x}"
    past = f.address is not None and f.address >= top
    head = f"{case}: {what}: the kernel faulted at {f.address:#x} in {where} ({QEMU_LOG})" if f.address is not None \
        else f"{case}: {what}: the kernel faulted in {where} ({QEMU_LOG})"
    if case.startswith(("over_top", "read_over", "info_over")) and past:
        return (f"{head}, {f.address - top} byte(s) past the user half's top {top:#x}: the copy checked less than "
                "the whole range (its first byte only?); a range must lie in the user half, end included, before "
                "any byte of it is copied")
    if case == "name_max" and past:
        return (f"{head}: the string copy read byte {MAX_NAME + 1} of a name whose first {MAX_NAME + 1} bytes held no "
                "NUL, one byte past its limit (the buffer's size): a string copy of at most max bytes must stop "
                "after byte max - 1 (ENAMETOOLONG), never read byte max")
    if case == "name_short" and past:
        return (f"{head}: the string copy read past the user half's top: with {short} bytes left it "
                "must stop at the top (the room is what is left of the user half when that is less than the "
                "buffer), and say EFAULT")
    return f"{head}: the first kernel fault: {f.describe(run.symbol_of)}"


def space_copy_source(token, size):
    return b"".join(proof(token, SPACE_COPY_TAG + i).to_bytes(8, "little") for i in range(-(-size // 8)))[:size]


def misplaced_chunk(copies, source, have, at):
    """((offset, size) of a copy, its chunk's start and length, the page it was meant for) when the
    byte at @p at of @p have (every frame's bytes after the copies) lies in a chunk of one of
    @p copies that was meant for another page, written at the same offset in the page, and the
    bytes there are that chunk's; None otherwise."""
    page = at // PAGE
    for offset, size in copies:
        start = offset
        while start < offset + size:
            end = min((start // PAGE + 1) * PAGE, offset + size)
            meant, n = start // PAGE, end - start
            where = page * PAGE + start % PAGE
            if meant != page and where <= at < where + n and \
                    have[where:where + n] == source[start - offset:start - offset + n]:
                return (offset, size), start, n, meant
            start = end
    return None


def space_copy_problem(base, frames, copies, source, fills, got):
    """None, or the first copy whose bytes are wrong: @p copies [(offset from base, size)] in the
    order made, @p fills each frame's bytes before them, @p got each frame's bytes after them."""
    want = bytearray(b"".join(fills))
    for offset, size in copies:
        want[offset:offset + size] = source[:size]
    have = b"".join(got)
    if have == bytes(want):
        return None
    at = next(i for i in range(len(want)) if have[i] != want[i])
    page, within = divmod(at, PAGE)
    for offset, size in reversed(copies):
        if offset <= at < offset + size:
            break
    else:
        offset, size = copies[-1]
    cut = [b for b in range(offset // PAGE * PAGE + PAGE, offset + size, PAGE)]
    crossing = (f"it starts {offset % PAGE} bytes into page {offset // PAGE} and crosses "
                f"{len(cut)} page boundar{'y' if len(cut) == 1 else 'ies'} (at {', '.join(hex(base + b) for b in cut)})")
    misplaced = misplaced_chunk(copies, source, have, at)
    if misplaced:
        (c_offset, c_size), start, n, meant = misplaced
        c_cut = [b for b in range(c_offset // PAGE * PAGE + PAGE, c_offset + c_size, PAGE)]
        return (f"copy_to_space({base + c_offset:#x}, {c_size} bytes) into a space that is not live: it starts "
                f"{c_offset % PAGE} bytes into page {c_offset // PAGE} and crosses {len(c_cut)} page "
                f"boundar{'y' if len(c_cut) == 1 else 'ies'}; its chunk for page {meant} ({n} bytes from "
                f"{base + start:#x}) landed in page {page}'s frame {frames[page]:#x}, at its own offset in the page "
                "(the grader filled the frames and read them back from guest RAM): each chunk's frame must be looked "
                "up in the space's tables at the chunk's own address, not at the range's first page")
    if offset <= at < offset + size:
        stale = have[at:at + 8] == bytes(want[at:at + 8]) or have[at] == bytes(b"".join(fills))[at]
        how = "still holds what the grader put there: the chunk for that page was not written" if stale else \
            "holds another byte than the source's: the chunk for that page was written at the wrong offset"
        return (f"copy_to_space({base + offset:#x}, {size} bytes) into a space that is not live: {crossing}; byte "
                f"{at - offset} of the copy, at {base + at:#x} (page {page}, frame {frames[page]:#x}, offset {within}), "
                f"{how} (the grader filled the frames and read them back from guest RAM): each chunk must start at the "
                "address's offset in its page and end at that page's end")
    return (f"copy_to_space({base + offset:#x}, {size} bytes) into a space that is not live: {crossing}; it changed "
            f"{base + at:#x} (page {page}, frame {frames[page]:#x}, offset {within}), outside every copy's range (the "
            "grader filled the frames and read them back from guest RAM): a chunk ran past its page's end")


def readonly_copy_problem(ro, o4, n4, w, fill):
    """None, or what is wrong with space_copy's copy of @p n4 bytes to @p ro + @p o4, a read-only
    user page of the space (the grader's walk of its root says so, or the test did not set it up):
    the copy must be refused and the page's frame (filled with @p fill by the grader) unchanged."""
    if not (w["ro_mapped"] and w["ro_user"] and not w["ro_write"] and w["ro_pa"] == w["ro_frame"]):
        how = (f"maps it to {w['ro_pa']:#x}, {'user' if w['ro_user'] else 'NOT user'}, "
               f"{'WRITABLE' if w['ro_write'] else 'read-only'}" if w["ro_mapped"] else "does not map it")
        return (f"space_copy's space (root {w['root']:#x}) should map {ro:#x} read-only and user to frame "
                f"{w['ro_frame']:#x}; the grader's walk {how}")
    where = f"copy_to_space({ro + o4:#x}, {n4} bytes)"
    if w["ro_got"] != fill:
        at = next(i for i in range(PAGE) if w["ro_got"][i] != fill[i])
        return (f"copy_to_space wrote into {ro + at:#x} (frame {w['ro_frame']:#x}), a read-only user page of the target "
                f"space: a copy into a process's memory must refuse a page it may not write (walk.perms.write), as the "
                f"process itself could not write there ({where}; the grader filled the frame and read it back from "
                f"guest RAM{'; the call even returned success' if w['ro_result'] == 0 else ''})")
    if w["ro_result"] == 0:
        return (f"{where} into a read-only user page of a space that is not live returned success, though it wrote "
                "nothing (the frame is as the grader filled it): a copy into a page the process may not write must be "
                "refused")
    return None


def badptr_result_problem(run, kind, op, result, seen, refused, kernel_address, last):
    """What badptr's @p op on its @p kind pointer got wrong when it returned @p result, not EFAULT:
    @p seen, the copy faults QEMU's log shows recovered for that pointer by the routine the op
    uses; @p refused, {routine: a pointer whose faulting copy came back EFAULT}; @p last, the size
    of the last_byte record. None when the grader can say no more than the missing EFAULT line."""
    string = op == "read (spawn)"   # the name: the string copy (the others: the byte copy)
    call = op.split()[-1].strip('()')
    at = f"{run.symbol_of(seen[0].pc) or hex(seen[0].pc)} on {seen[0].address:#x}" if seen else ""
    if seen and string:
        return (f"the string copy for the {kind} pointer faulted and resumed at its fix-up ({QEMU_LOG}: at {at}), yet "
                f"spawn() returned {result}, not EFAULT ({EFAULT}): the string copy's fix-up must return -1 (reading "
                "faulted), not the length read so far, which copy_string_from_user() takes for a string")
    routine = "string" if string else "bytes"
    if seen and result >= 0 and kind == "last_byte":
        # (the straddling record before it, cut short part-way by the same page, came back EFAULT)
        return (f"proc_info() of a {last}-byte record whose last byte alone lies on an unmapped page faulted there "
                f"({QEMU_LOG}: at {run.symbol_of(seen[-1].pc) or hex(seen[-1].pc)} on {seen[-1].address:#x}) and "
                f"resumed at its fix-up, yet returned {result}, not EFAULT ({EFAULT}): the fix-up path must make the "
                "copy return the 1 byte it did not copy, not 0 (a byte count taken down before the store that "
                "faulted?)")
    if seen and result >= 0 and routine in refused:
        # The same routine's fix-up made another copy EFAULT: it returns the bytes left, and the
        # caller of this copy did not refuse them.
        helper = "copy_to_user()" if op.startswith("write") else "copy_from_user()"
        resumed = (f"the copy for the {kind} pointer faulted and resumed at its fix-up ({QEMU_LOG}: at {at}), yet "
                   f"{call}() returned {result}, not EFAULT ({EFAULT}), while the same routine's copy for the "
                   f"{refused[routine]} pointer came back EFAULT: its fix-up returns the bytes left")
        if kind == "straddling":
            return (f"{resumed}; this copy faulted part-way, after some bytes: {helper} took a copy cut short for "
                    "success: it must refuse any copy with bytes left, not only one that copied nothing")
        return f"{resumed}, and {helper} ignored them: a copy with bytes left must fail (EFAULT)"
    if seen:
        return (f"the copy for the {kind} pointer faulted and resumed at its fix-up ({QEMU_LOG}: at {at}), yet {call}() "
                f"returned {result}, not EFAULT ({EFAULT}): the fix-up path must make the copy return what it did not "
                "copy (the copy reported success after a fault)")
    if kind == "kernel":
        return (f"{call}() with the kernel-half address {kernel_address:#x} returned {result}, not EFAULT: the kernel "
                "copied kernel memory for a user (a pointer outside the user half must be refused before any copy)")
    return None
