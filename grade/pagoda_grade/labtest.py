"""A lab test in a few lines: its token and inputs, the boot with the grader's watches, the stops
it takes as typed events, and its checks, each failing with the cause the watch knows first.

    t = LabTest(boot, kernel, arch)                   # a self-test (labs 0-2, lab 4's)
    w = t.selftest("vm_print", script, args={...})    # script(guest) -> its result, or the failure
    t = ProcTest(boot, kernel, arch)                  # the token, a Watch (or VmaWatch, ...)
    n = t.pick("children", 3, 8)                      # an input chosen from the token
    def script(started):                              # runs after the run's first stops
        call = t.call("Write", where=lambda c: c.root != started.root)   # a typed Call
        return call.written()
    data = t.start(["hello", "spin:100"], script)     # boots; the script's result (or the cause)
    t.check(problem)                                  # fails with it, the watch's cause first
    t.exited(1, "hello"); t.success()

Events are typed: a Call is a system call's entry (its ABI name, number, root, arguments and
return address), a Return its return to user mode in the root that made it (its signed result).
A test asks for the next event it checks (call(), calls(), returned(), says()), never loops over
tags. Where a test's outcome is decided: docs/grader.md, "Where a test is decided"."""
import re
from dataclasses import dataclass

from pagoda_pt import contract
from .outcomes import Checks
from .processes import parse_reaped, written
from .proof import proof
from .symbols import address_of, fact
from .witness import PAGE, pick_in, return_address
from .watch import GRADER_MEMORY, Watch, syscall_name, syscall_number


def holds(problem):
    """In a witness script: fails with @p problem (a check's finding) unless it is empty."""
    if problem:
        raise AssertionError(problem)


def signed(value):
    """A 64-bit register as a signed number."""
    return value - (1 << 64) if value >> 63 else value


@dataclass
class Call:
    """A system call's entry, where the grader stopped: @p snap there, its @p number and ABI
    @p name, the @p root it came from (the process's: CR3, TTBR0), its six @p args and the user
    address it returns to (@p back)."""
    snap: object
    name: str
    number: int
    root: int
    args: tuple
    back: int
    proc: dict

    def written(self, most=PAGE):
        """The buffer of a write() call, read through the caller's root (never the console)."""
        return written(self.snap, self.proc, self.root, most=most)


@dataclass
class Return:
    """Where a followed call is back: a Call in user mode, in the root that made it (@p why is the
    Call, or what the test gave Trace.follow()), or a kernel function where it returns to its
    caller (Trace.follow_function()); @p result, the result register there, signed."""
    why: object
    snap: object
    result: int


@dataclass
class Death:
    """A process's end (exit_current) or exec, where the grader stopped: @p moment, what
    lifecycle.Deaths recorded there."""
    snap: object
    moment: object


@dataclass
class At:
    """A stop at one of the kernel functions a Trace was asked to stop at (@p address)."""
    snap: object
    address: int


class Trace:
    """Every stop of a test that follows processes, as one stream of typed events: a Call at each
    system call's entry, a Return where a call or kernel function the test follows is back, a
    Death at each exit and exec (with @p deaths_too; recorded in @p deaths, a lifecycle.Deaths,
    either way; a stop the deaths take that the test asked for too is its event as well), an At at
    each of the addresses in @p at and in transient (the test changes it as it goes). The test matches on the types: `match ev: case Call(name="Fork"): ...`."""

    def __init__(self, t, deaths=None, at=(), deaths_too=False):
        self.t, self.deaths, self.deaths_too = t, deaths, deaths_too
        self.at = {self._address(a) for a in at}
        self.transient = set()
        self.pending = {}   # (return address, root; None: any root) -> why

    def _address(self, where):
        return where if isinstance(where, int) else address_of(self.t.kernel, where)

    def follow(self, call, why=None):
        """A Return where @p call is back in user mode, in its root (its why: @p why, else the Call)."""
        self.pending[(call.back, call.root)] = call if why is None else why

    def follow_function(self, snap, why, any_root=False):
        """A Return where the kernel function entered at @p snap returns, in the same root (or in
        whatever root the CPU holds then: @p any_root, for a function that may change it)."""
        self.pending[(return_address(snap), None if any_root else snap.lower_root)] = why

    def events(self, limit):
        """The next events, at most @p limit of them (deaths not counted); AssertionError after."""
        entry = self._address(self.t.proc["syscall_entry"])
        for _ in range(limit):
            while True:
                deaths = self.deaths.addresses() if self.deaths is not None else []   # (they change as it goes)
                extra = self.at | {self._address(a) for a in self.transient}
                snap = self.t.guest.stop_at_any([entry, *deaths, *extra, *sorted({pc for pc, _ in self.pending})])
                if self.deaths is None or not self.deaths.take(snap):
                    break
                if self.deaths_too and snap.pc in (self.deaths.exit_at, self.deaths.exec_at):
                    yield Death(snap, self.deaths.moments[-1])
                if snap.pc in extra or (snap.pc, snap.lower_root) in self.pending or (snap.pc, None) in self.pending:
                    break   # (a stop the deaths took that the test asked for too, fork_process's, is the test's)
            if snap.pc in extra:
                yield At(snap, snap.pc)
            elif snap.pc != entry:
                key = (snap.pc, snap.lower_root) if (snap.pc, snap.lower_root) in self.pending else (snap.pc, None)
                if key in self.pending:
                    yield Return(self.pending.pop(key), snap, signed(snap.register(self.t.proc["syscall_result"])))
            else:
                yield self.t.call_at(snap)
        raise AssertionError(f"the grader followed {limit} stops without seeing the end it waited for")


class LabTest(Checks):
    """One lab test: its token (the inputs derive from it), its boots, its checks."""

    def __init__(self, boot, kernel, arch, memory="128M", token=None):
        self.booter, self.kernel, self.arch, self.memory = boot, kernel, arch, memory
        self.token = token or boot.fresh_token()   # (@p token: another boot of a test that has one)
        self.guest = self.run = None

    def pick(self, tag, lo, hi):
        """An input in [lo, hi] derived from the token (witness.pick_in)."""
        return pick_in(self.token, tag, lo, hi)

    def mask(self, salt, bits):
        """@p bits bits derived from the token (of proof(token, @p salt)): which pages a program writes."""
        return proof(self.token, salt) & ((1 << bits) - 1)

    def selftest(self, test, script=None, require=True, **boot_args):
        """Boots self-test @p test with this token; @p script(guest) looks at it while it runs. Returns
        the script's result (the Run without a script, or with @p require False), or fails naming why
        the guest never got there."""
        def witness(guest):
            self.guest = guest
            return script(guest)
        boot_args.setdefault("memory", self.memory)
        self.run = self.booter(test=test, token=self.token, witness=witness if script else None, **boot_args)
        return self.run.require_witness() if script and require else self.run

    def stop(self, test, prefix, name, tries=1):
        """The self-test's checkpoint @p name (its tag: the fact <prefix>_<name>_stop), within @p tries."""
        for _ in range(tries):
            snap = self.guest.stop_at(contract.CHECKPOINT)
            if snap.argument(0) == fact(self.kernel, f"{prefix}_{name}_stop"):
                return snap
        raise AssertionError(f"the {test} self-test stopped at checkpoint {snap.argument(0):#x}, not at its {name} stop")

    def fail(self, message, cause=None):
        self.run.fail(message, cause=cause)

    def expect(self, pattern, what):
        return self.run.expect(pattern, what)

    def success(self):
        self.run.expect_outcome("success")


class ProcTest(LabTest):
    """One lab test that runs user programs (labs 3 and later): see the module's docstring."""

    def __init__(self, boot, kernel, arch, watch=Watch, memory=GRADER_MEMORY, token=None):
        super().__init__(boot, kernel, arch, memory, token)
        self.watch = watch(kernel, arch)
        self.proc = self.watch.proc
        self.names = {}

    def number(self, name):
        """System call @p name's number (the grader's kernel/lib/abi.hpp)."""
        if name not in self.names:
            self.names[name] = syscall_number(name)
        return self.names[name]

    # ---- the boot ----------------------------------------------------------------------------

    def start(self, spec, script=None, setup=None, **boot_args):
        """boot(), then the script's result (witness())."""
        self.boot(spec, script, setup, **boot_args)
        return self.witness()

    def witness(self):
        """The script's result (True without one), or the failure with the watch's cause of why the
        guest never got there."""
        return self.watch.require(self.run)

    def boot(self, spec, script=None, setup=None, explain=True, **boot_args):
        """Boots the run of @p spec (run=: a str, or a list of programs) with the watch: its first
        stops (before, then the started stop; @p setup(guest) between them), then
        @p script(the started stop's Snapshot) while the guest runs; the Run. What the script fails
        with comes after the cause the watch knows (Watch.explained), unless @p explain is False."""
        def witness(guest):
            self.guest = guest
            self.before = self.watch.before(guest)   # (the Snapshot at the run's 'before' checkpoint)
            if setup is not None:
                setup(guest)
            started = self.watch.started_stop(guest)
            try:
                result = script(started) if script is not None else True
                if self.watch.first_write is not None:
                    self.watch.first_write.finish(guest)
                return result
            except AssertionError as e:
                if not explain:
                    raise
                explained = AssertionError(self.watch.explained(guest, str(e)))
                explained.stop = getattr(e, "stop", None)   # (where it was seen: the replay line stops there)
                raise explained from None

        run = spec if isinstance(spec, str) else ",".join(spec)
        self.run = self.booter(args={"run": run, **boot_args.pop("args", {})}, token=self.token, witness=witness,
                               memory=boot_args.pop("memory", self.memory), **boot_args)
        return self.run

    # ---- events --------------------------------------------------------------------------------

    def calls(self, *names, limit=40):
        """Each system call named @p names (or numbered; all, without them) among the next @p limit entries."""
        wanted = {n if isinstance(n, int) else self.number(n) for n in names}
        for _ in range(limit):
            snap = self.guest.stop_at(self.proc["syscall_entry"])
            if not wanted or snap.register(self.proc["syscall_number"]) in wanted:
                yield self.call_at(snap)

    def call_at(self, snap):
        """The Call whose entry the guest is stopped at (@p snap)."""
        number = snap.register(self.proc["syscall_number"])
        return Call(snap, syscall_name(number), number, snap.lower_root,
                    tuple(snap.register(r) for r in self.proc["syscall_args"]),
                    snap.register(self.proc["syscall_return_pc"]), self.proc)

    def call(self, *names, where=None, limit=40, missing=None):
        """The next Call named @p names for which @p where(call) holds, within @p limit entries;
        AssertionError (@p missing, or the numbers asked for) when none comes."""
        for c in self.calls(*names, limit=limit):
            if where is None or where(c):
                return c
        numbers = sorted(n if isinstance(n, int) else self.number(n) for n in names)
        raise AssertionError(missing or f"no system call numbered {numbers} in {limit} calls")

    def returned(self, call, limit=64):
        """The Return of @p call: the stop at its return address in user mode, in its root."""
        for _ in range(limit):
            back = self.guest.stop_at(call.back)
            if back.lower_root == call.root:
                return Return(call, back, signed(back.register(self.proc["syscall_result"])))
        raise AssertionError(f"the system call made from root {call.root:#x} never returned to {call.back:#x}")

    def says(self, pattern, what, looks=8):
        """(the stop, the match) at the first of the program's next @p looks write() calls whose
        text matches @p pattern: it says where it is about to act, and the grader looks there."""
        for c in self.calls("Write", limit=40 * looks):
            m = re.match(pattern, c.written(200).decode(errors="replace"))
            if m:
                return c.snap, m
        raise AssertionError(f"vmas never said {what}")

    # ---- checks ------------------------------------------------------------------------------

    def fail(self, message, cause=None):
        """Fails the test: the watch's cause of the machine's end first (Watch.fail), then @p message;
        with @p cause, that cause first (what the test itself found)."""
        if cause is not None:
            self.run.fail(message, cause=cause)
        self.watch.fail(self.run, message)

    def exited(self, pid, program):
        """Process @p pid (running @p program) was reaped having exited with code 0."""
        if parse_reaped(self.run).get(pid) != "exited with code 0":
            self.fail(f"missing: 'proc {pid} ({program}): reaped: exited with code 0'")

    def all_exited(self, count, who):
        """Exactly @p count processes (@p who, in words) were reaped, each having exited with 0."""
        reaped = parse_reaped(self.run)
        if sorted(reaped.values()) != ["exited with code 0"] * count:
            self.fail(f"expected {who} to exit with 0; reaped: {reaped}")
