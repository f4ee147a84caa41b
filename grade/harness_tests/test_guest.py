"""The witness library's Guest against the real kernel: each way of handing the kernel an input
the grader picked at run time arrives, snapshots read the live machine, and a stop the guest
never reaches is reported as that."""
import pytest

from pagoda_grade.harness import Booter, GradeFailure
from pagoda_grade.symbols import address_of
from pagoda_grade.witness import pick_in


def test_a_line_typed_after_boot_arrives(reference_kernel, tmp_path):
    word = f"grader-{pick_in('t', 'word', 0, 10**9)}"

    def script(guest):
        guest.stop_at("pagoda::run_selftest")   # booted, about to read the console
        guest.send_line(word)

    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=15)(test="echo_line", witness=script)
    run.expect(rf"^echo: {word}$", "the line the grader typed, echoed")
    run.expect_outcome("success")


def test_values_delivered_into_guest_ram_arrive(reference_kernel, tmp_path):
    probes = [address_of(reference_kernel, "pagoda::kmain"), 0x0000_2345_6789_0000]

    def script(guest):
        snap = guest.stop_at("pagoda_grader_stop")
        guest.deliver(probes)
        return snap.root

    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=15)(test="vm_translate", witness=script)
    assert run.require_witness() != 0
    for va in probes:
        run.expect(rf"^translate: 0x0*{va:x} -> ", f"the translation of the delivered {va:#x}")


def test_a_snapshot_at_an_instant_reads_the_live_machine(reference_kernel, tmp_path):
    def script(guest):
        # The instant is 0.3 s into the idle loop, not 0.3 s after reset: on a loaded machine
        # the boot alone can take longer, and a stop then finds the kernel still on the boot
        # stub's tables (its text rwx there) or not yet paging.
        guest.stop_at_line(r"^idle:")
        snap = guest.stop_after(0.3)
        rip = address_of(reference_kernel, "pagoda::kmain")
        kmain = snap.walk(rip)
        guest.end()
        return snap.pc, snap.root, kmain.mapped, kmain.perms.rwx(), snap.read_virt(rip, 16)

    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=15)(witness=script)   # idles
    pc, root, mapped, perms, code = run.require_witness()
    assert pc >= 0xFFFF_8000_0000_0000 and root != 0
    assert mapped and perms == "r-x"
    with open(reference_kernel, "rb") as f:
        assert code in f.read()          # the grader's own translation reaches kmain's bytes
    assert run.outcome() == "ended by the grader"


def test_aarch64_typed_line_delivered_values_and_snapshot(aarch64_kernel, tmp_path):
    """The same Guest on AArch64: a line typed on the PL011 arrives, values delivered into RAM
    arrive, and a snapshot walks both roots (TTBR0 for the lower half, TTBR1 for the kernel's)."""
    word = f"grader-{pick_in('a', 'word', 0, 10**9)}"

    def typed(guest):
        guest.stop_at("pagoda::run_selftest")
        guest.send_line(word)

    run = Booter(aarch64_kernel, "aarch64", str(tmp_path / "echo"), timeout=15)(test="echo_line", witness=typed)
    run.expect(rf"^echo: {word}$", "the line the grader typed, echoed")
    run.expect_outcome("success")

    probes = [address_of(aarch64_kernel, "pagoda::kmain"), 0x0000_2345_6789_0000]

    def delivered(guest):
        snap = guest.stop_at("pagoda_grader_stop")
        guest.deliver(probes)
        return snap.root, snap.lower_root, snap.walk(probes[0]), snap.walk(probes[1])

    run = Booter(aarch64_kernel, "aarch64", str(tmp_path / "translate"), timeout=15)(test="vm_translate",
                                                                                       witness=delivered)
    upper, lower, kmain, low = run.require_witness()
    assert upper != lower and 0 not in (upper, lower)
    assert kmain.mapped and kmain.perms.rwx() == "r-x"
    assert not low.mapped and "L0 entry" in low.stop_reason
    for va in probes:
        run.expect(rf"^translate: 0x0*{va:x} -> ", f"the translation of the delivered {va:#x}")


def test_a_stop_the_guest_never_reaches_is_named(reference_kernel, tmp_path):
    def script(guest):
        guest.stop_at("pagoda_grader_checkpoint")   # test=shutdown never calls it

    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=15)(test="shutdown", witness=script)
    assert run.witness is None
    with pytest.raises(GradeFailure) as e:
        run.require_witness()
    assert "the guest never reached pagoda_grader_checkpoint: the kernel exited first" in str(e.value)


def test_a_stop_never_reached_quotes_the_process_the_kernel_killed(reference_kernel, tmp_path):
    # run=probe:read:0 is killed at its first load; the stop the script waits for never comes.
    def script(guest):
        guest.stop_at("pagoda::run_selftest")

    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=15)(extra_cmdline="run=probe:read:0",
                                                                         witness=script)
    with pytest.raises(GradeFailure) as e:
        run.require_witness()
    lines = str(e.value).splitlines()
    # The kernel's kill line first (the cause), then the stop the grader never reached.
    assert lines[0].startswith("proc 1 (probe): killed: ")
    assert lines[1].startswith("the guest never reached pagoda::run_selftest: the kernel exited first")


def test_a_side_stop_is_taken_on_the_way_to_the_stop_asked_for(reference_kernel, tmp_path):
    # run=probe:read:0 is killed at its first load, between the run's 'before' and 'ended'
    # checkpoints: the side stop at the kill is taken on the way to 'ended', its callback and the
    # stop hooks see the process's root still live, and the stop asked for still comes.
    from pagoda_grade.symbols import fact
    kill = address_of(reference_kernel, "pagoda::proc::user_fault")
    ended = fact(reference_kernel, "run_checkpoint_ended")

    def script(guest):
        hooked, called = [], []
        guest.stop_hooks.append(lambda snap: hooked.append(snap.pc))
        guest.side_stop("pagoda::proc::user_fault", lambda snap: called.append((snap.pc, snap.lower_root)))
        for _ in range(8):
            snap = guest.stop_at("pagoda_grader_checkpoint")
            if snap.argument(0) == ended:
                return hooked, called, snap.lower_root
        raise AssertionError("no 'ended' checkpoint")

    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=15)(extra_cmdline="run=probe:read:0",
                                                                         witness=script)
    hooked, called, root_at_end = run.require_witness()
    assert [pc for pc, _ in called] == [kill]
    assert kill in hooked
    assert called[0][1] != root_at_end   # the process's root, live as it was killed
    run.expect(r"^proc 1 \(probe\): killed: ", "the kill")


def test_a_failed_check_in_the_script_fails_with_the_boot_context(reference_kernel, tmp_path):
    def script(guest):
        guest.stop_at("pagoda::run_selftest")
        raise AssertionError("the grader did not like what it saw")

    with pytest.raises(GradeFailure) as e:
        Booter(reference_kernel, "x86_64", str(tmp_path), timeout=15)(test="hang", witness=script)
    message = str(e.value)
    assert message.startswith("the grader did not like what it saw")
    assert "did not finish in time" not in message and "selftest hang: start" not in message
    assert "last " in message   # the serial tail follows


# ---- a single step QEMU reports without moving (QEMU 10) --------------------------------------

class _Reply:
    exited = False


class _SteppyClient:
    """A gdbstub that, like QEMU 10 now and then, reports the first single step off a breakpoint
    without having executed anything (the same PC); a continue stops at the next breakpoint."""

    def __init__(self, pc, stuck_steps):
        self.pc, self.stuck, self.armed, self.conts, self.running = pc, stuck_steps, set(), 0, False

    def step(self):
        if self.stuck:
            self.stuck -= 1
        else:
            self.pc += 4
        self.running = True

    def cont(self):
        self.conts += 1
        self.pc = min(self.armed)
        self.running = True

    def wait_stop(self, timeout=None):
        self.running = False
        return _Reply()

    def read_register(self, name):
        return self.pc if name in ("rip", "pc") else 0

    def read_registers(self, names):
        return [self.read_register(n) for n in names]

    def breakpoints(self, remove=(), add=(), resume=None):
        self.armed = (self.armed - set(remove)) | set(add)
        if resume:
            self.step() if resume == "s" else self.cont()


def _steppy_guest(client):
    from pagoda_grade.witness import ARCHES, MACHINES, Guest
    guest = object.__new__(Guest)
    guest.arch, guest.model, guest.machine, guest.client = "x86_64", ARCHES["x86_64"], MACHINES["x86_64"], client
    budget = type("B", (), {"left": lambda self: 60.0})()
    guest.session = type("S", (), {"budget": budget, "check": lambda self: None})()
    guest.waiting_for, guest._stops, guest.stop_hooks, guest.side_stops, guest.marks = None, 0, [], {}, {}
    guest._stopped_at, guest._armed = client.pc, set()
    return guest


@pytest.mark.parametrize("stuck", [0, 1, 3])
def test_a_step_that_did_not_move_is_not_a_second_arrival(stuck):
    """Stopped at the system-call entry, the grader asks for the next stop there. A step QEMU
    reports at the same PC is stepped again; the answer is the next real arrival (one continue),
    never the same stop twice (the double-counted exit of wide_fork on QEMU 10)."""
    entry = 0xffffffff80229000
    client = _SteppyClient(entry, stuck)
    guest = _steppy_guest(client)
    snap = guest.stop_at_any([entry])
    assert snap.pc == entry and client.conts == 1
    client = _SteppyClient(entry, stuck)
    guest = _steppy_guest(client)
    assert guest.stop_at(entry).pc == entry and client.conts == 1


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_trap_stacks_found_from_outside_and_registers_put_back(arch, reference_kernel, aarch64_kernel, tmp_path):
    """At hello's switch (its stack set, its root loaded), Guest.user_trap_stacks() finds every
    place a trap from user mode takes its stack without a symbol (the TSS through TR; the entries
    run from the stop): each is the value the reference kernel keeps in its own variable (read
    here by name, as only a test of the grader may), and the registers are as they were, and so
    is the guest's record of the stop it is at (lost, the next stop there would be taken for this
    one: lab 3's separate_roots scored 0/3 when landing() lost it)."""
    kernel = reference_kernel if arch == "x86_64" else aarch64_kernel
    own = {"x86_64": ("pagoda::x86::(anonymous namespace)::g_tss", 4), "aarch64": ("aarch64_user_trap_sp", 0)}[arch]

    def script(guest):
        snap = guest.stop_at(guest.model.proc["switch"])
        names = guest.model.proc["syscall_entry_registers"] + (guest.model.pc, guest.model.sp)
        before = guest.client.read_registers(names)
        found = guest.user_trap_stacks(snap)
        kept = int.from_bytes(snap.read_virt(address_of(kernel, own[0]) + own[1], 8), "little")
        return found, kept, before == guest.client.read_registers(names) and guest._stopped_at == snap.pc

    run = Booter(kernel, arch, str(tmp_path), timeout=30)(args={"run": "hello"}, witness=script)
    found, kept, same = run.require_witness()
    assert kept >> 12 and [v for _, v in found] == [kept] * len(found), (found, hex(kept))
    assert same


def test_a_vcpu_run_alone_within_keeps_the_breakpoints(reference_kernel, tmp_path):
    """run_alone() with within: a vCPU that reaches none of its addresses in time is stopped where
    it is, and the breakpoint it was let run to is still in QEMU afterwards (a `?` packet would have
    made QEMU's gdbstub drop every breakpoint the grader had set): removing it is answered OK."""
    never = address_of(reference_kernel, "pagoda::kmain")   # (run once, at boot)

    def script(guest):
        guest.stop_at("pagoda::run_selftest")   # booted; echo_line then waits for a line never typed
        reply = guest.run_alone(guest.client.request("qC")[2:], [never], within=0.5)
        guest.client.remove_breakpoint(never)   # (RspError when QEMU no longer holds it)
        guest._armed.discard(never)
        pc = guest.client.read_register(guest.model.pc)
        guest.end()
        return reply.exited, pc

    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=30)(test="echo_line", witness=script)
    exited, pc = run.require_witness()
    assert not exited and pc != never
