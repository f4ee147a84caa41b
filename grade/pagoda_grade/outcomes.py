"""How a boot under the grader ends and what its console says about it: the stop kinds, the
exception a witness script sees when the boot ends under it, a failure's verdict, and the kernel's
own lines (a panic, a kill, a lab skeleton reached) that name the cause of a boot that ended
before the grader could look.

The bottom of the grader: the boot loop (harness.py), the witnesses (witness.py) and the causes
(causes.py) all read these; it imports nothing of theirs.
"""
import re

# Guest text in a failure message: each line at most this long.
SHOWN_LINE_CHARS = 300

# Stop kinds (Run.outcome() gives them).
TIMEOUT = "timeout"
STORM = "exception storm"
LOG_LIMIT = "exception log limit"
OUTPUT_LIMIT = "output limit"
CHECKED = "stopped after a failed check"  # a witness script's check failed: the grader ended the boot
ENDED = "ended by the grader"              # a witness script had seen enough (Guest.end())

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# The serial lines a failure shows last.
TAIL_LINES = 40


def token_line(token):
    """The line that names a boot's token, and how to repeat the grader's choices with it."""
    return f"boot token {token} (PAGODA_GRADE_TOKEN={token} repeats the grader's choices)"


def escape_controls(text):
    """@p text with every control character but newline and tab shown as \\xNN, so that a guest
    cannot move the cursor, clear the screen or draw a fake score on the grader's terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def shown(line):
    """A guest line as a failure message shows it: escaped, and cut when very long."""
    if len(line) > SHOWN_LINE_CHARS:
        line = line[:SHOWN_LINE_CHARS] + f"... ({len(line) - SHOWN_LINE_CHARS} more characters)"
    return escape_controls(line)


PANIC_PREFIX = "PANIC: "
PANIC_LINE_MAX = 400


def panic_line(data):
    """The kernel's first "PANIC: ..." line in the serial bytes @p data (its message, without
    the prefix, cut at PANIC_LINE_MAX characters), or "". It names the cause of a boot that
    ended before the grader could look; the kernel saying it does not score anything."""
    text = data.decode(errors="replace") if isinstance(data, (bytes, bytearray)) else data
    for line in text.splitlines():
        at = line.find(PANIC_PREFIX)
        if at >= 0:
            message = line[at + len(PANIC_PREFIX):].strip()
            return message[:PANIC_LINE_MAX] + ("..." if len(message) > PANIC_LINE_MAX else "")
    return ""


# The kernel's line for a process it ended (kernel/proc/run.cpp user_fault): "proc PID (NAME):
# killed: HOW: ...".
KILL_LINE = re.compile(r"^proc \d+ \([^)]*\): killed: ")


def quoted_lines(data, *patterns, at_most=2):
    """The first @p at_most lines of the serial output @p data (bytes, text or a list of lines)
    that one of @p patterns matches (stripped), each cut at PANIC_LINE_MAX characters: how the
    grader quotes the kernel's own words (believed only as words: they score nothing, they name)."""
    if isinstance(data, (bytes, bytearray)):
        data = data.decode(errors="replace")
    lines = data.splitlines() if isinstance(data, str) else data
    found = []
    for line in lines:
        line = line.strip()
        if any(p.match(line) for p in patterns):
            found.append(line[:PANIC_LINE_MAX] + ("..." if len(line) > PANIC_LINE_MAX else ""))
            if len(found) == at_most:
                break
    return found


def kill_lines(data, at_most=2):
    """The first @p at_most "proc N (name): killed: ..." lines in the serial bytes @p data, each
    cut at PANIC_LINE_MAX characters. When a boot ends before the grader's stop, a killed
    process is the likeliest reason (a fork whose child faulted, a loader that recorded nothing),
    so the failure quotes them; as with panic_line, what the kernel says scores nothing."""
    return quoted_lines(data, KILL_LINE, at_most=at_most)


# The kernel's own reports of something wrong that it went on from (the process or the run ends,
# the kernel does not panic): a process it could not start (kernel/proc/run.cpp), a trap on a
# stack that is not the process's (kernel/proc/kernel_stack.cpp), a process record its pages
# disagree with, a user half it could not free, a fork, spawn or exec that failed for another
# reason than running out of something (kernel/proc/). Like a kill line, the likeliest
# reason a boot ended before the grader's stop; quoted, never believed for a score.
KERNEL_REPORT = re.compile(r"^(run: cannot start |TRAP FROM USER MODE |proc \d+ \([^)]*\): (VMA coverage broken|"
                           r"(exec: )?the (old )?user half was not freed|(fork|spawn|exec) failed: )|proc: kernel stack slot \d+ was given back)")


def findings(data, at_most=2):
    """The kernel's first @p at_most kill lines (KILL_LINE) and reports (KERNEL_REPORT) in the
    serial bytes @p data, in the order it printed them, each cut at PANIC_LINE_MAX characters:
    what a failure whose boot ended before the grader's stop puts first (never_reached_reason)."""
    return quoted_lines(data, KILL_LINE, KERNEL_REPORT, at_most=at_most)


# A lab skeleton's own words, wherever the kernel prints them (a panic, an error a caller
# prints, kernel/core/lab.cpp's "LAB TODO: ..."): every skeleton message names its lab, what to
# write and where, and ends with its handout: "lab 3: write f() in FILE (labs/03-name/README.md)".
SKELETON_MESSAGE = re.compile(r"\blab (\d+): (.+?\(labs/\d\d-[a-z0-9-]+/README\.md\))")


# How the kernel says a skeleton has a working stand-in (kernel/core/lab.cpp, lab_todo()): the
# kernel carried on without the feature, so the skeleton blocks nothing by itself.
STAND_IN = re.compile(r"\(meanwhile: ([^)]*)\)\s*$")


def _skeletons(lines, upto):
    """(lab, message, stand-in or None) of each skeleton of lab @p upto or earlier (None: any)
    that @p lines say the kernel reached, in order."""
    for line in lines:
        stand_in = STAND_IN.search(line)
        for m in SKELETON_MESSAGE.finditer(line):
            if upto is None or int(m[1]) <= upto:
                yield int(m[1]), m[2], stand_in[1] if stand_in else None


def skeleton_reached(lines, upto):
    """(lab, message) of the first skeleton of lab @p upto or earlier that the kernel says, in
    @p lines (the serial lines of a test's boots, in order), it reached and that stopped what it
    was asked for (no stand-in); None when none. A skeleton of a later lab is expected in a
    published tree (the later lab hands a working fallback) and is never the cause."""
    return next(((lab, message) for lab, message, stand_in in _skeletons(lines, upto) if stand_in is None), None)


def skeleton_headline(reason, lines, upto):
    """@p reason with, as its first line, the skeleton the kernel reached (skeleton_reached):
    the function the student still has to write comes before every symptom it caused. A
    skeleton the kernel ran a working stand-in for (share_pages() before copy-on-write: the eager
    copy) blocks no test by itself: it never takes line 1 from the test's own cause, it is line 2."""
    found = skeleton_reached(lines, upto)
    if found is not None:
        lab, message = found
        return f"lab {lab} is not written yet: the kernel reached the skeleton that says \"{message}\"\n" + reason
    found = next((s for s in _skeletons(lines, upto) if s[2] is not None), None)
    if found is None:
        return reason
    lab, message, stand_in = found
    first, _, rest = reason.partition("\n")
    note = (f"(the kernel also reached lab {lab}'s skeleton that says \"{message}\", and went on with its stand-in: "
            f"{stand_in}; a stand-in blocks nothing by itself: the line above is what this test saw)")
    return first + "\n" + note + ("\n" + rest if rest else "")


# How a witnessed boot's failure begins when the guest ended before the grader's next stop.
NEVER_REACHED = "the guest never reached "


def never_reached_reason(where, how, found):
    """The reason of a witnessed boot that ended before the grader's stop @p where (@p how: the
    kernel exited first, the deadline passed...): the kernel's findings (@p found: its kill lines
    and reports, findings()) first, the cause before the symptom, then the stop the grader never
    reached. Without findings, that stop alone (causes.headline() may still put a cause before
    it: a kernel fault, a panic, a watch's problem)."""
    never = f"{NEVER_REACHED}{where}: {how}"
    if not found:
        return never
    return "; ".join(found) + "\n" + never + (" (after the kernel's line above)" if len(found) == 1
                                             else " (after the kernel's lines above)")


def is_never_reached(reason):
    """True when @p reason is a never_reached_reason(): its first line, or its second after the
    kernel's findings, says the guest never reached the grader's stop."""
    return any(line.startswith(NEVER_REACHED) for line in (reason or "").splitlines()[:2])


def watch_note(problems, said, when="at its stops"):
    """The line that tells a failure's reader what the grader's watches also saw @p when (@p
    problems, Booter.watch_problems), or "" when there is none or @p said already says it."""
    rest = [p for p in problems if p.splitlines()[0] not in said]
    if not rest:
        return ""
    return f"the grader also saw, {when}: " + rest[0].splitlines()[0] + (
        f" (and {len(rest) - 1} more)" if len(rest) > 1 else "")


def finding_first(findings, how, shown=12):
    """A report of what the grader found wrong itself (@p findings: one sentence each, in the
    order it found them), headed by the first finding: the cause is line 1 of a failure, and
    @p how the grader found it ("the grader walked every root itself after the processes were
    made", no colon) is line 2, with the count of further findings; then up to @p shown - 1 of
    them, indented. The reader of a failure sees the cause before the context."""
    first, rest = findings[0], list(findings[1:shown])
    more = len(findings) - 1
    tail = f"; {more} more finding{'s' * (more > 1)}{':' if rest else ''}" if more else ""
    return "\n".join([first, f"({how}{tail})"] + [f"  {f}" for f in rest])


class Checks:
    """check() for whatever can fail(): a Run (harness.py), a lab test (labtest.py: its fail()
    puts its watch's cause first). Raising is all a check does; harness.decide judges."""

    def check(self, *problems):
        """Fails with the first of @p problems that is not empty (a sentence, or a false value)."""
        for problem in problems:
            if problem:
                self.fail(problem)


class GradeFailure(AssertionError):
    """A test's verdict, with everything a student needs to start debugging."""

    def __init__(self, message):
        super().__init__(escape_controls(message))


class CauseSeen(AssertionError):
    """Raised inside a witness script for a failure that is itself the cause, witnessed: the grade
    names it first, before whatever the machine did after it (the harness passes it to fail() as
    its cause)."""


class BootEnded(Exception):
    """Raised inside a witness script when the boot ended under it (the kernel exited, the
    deadline passed, or the grader stopped it); the Run says how."""


def note_lines(result):
    """A test result's notes (what the grader noticed about a test it did not fail for, such as a
    QEMU that cannot emulate a feature), one "note: ..." line each, as every output shows them."""
    return [f"note: {line}" for line in (result or {}).get("note", "").splitlines()]
