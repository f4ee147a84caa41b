"""Lab 8: two CPUs and TLB shootdown, witnessed from outside the kernel (labs/08-smp/lab.toml).
Every boot runs two vCPUs and a swap disk, and the self-test smp_remote_evict (kernel/proc/
remote_remap_selftest.cpp): spin A pinned on CPU 1 counts in one page; CPU 0 evicts it through
lab 7's swapper; later it evicts the top stack page of spin B, which never ran, unmaps A's page in a
batch of 17 pages (a shootdown of "all"), then in batches of 4 and of 40, and evicts it again while spin C runs on CPU
1. The grader stops at the self-test's checkpoints (1: before A's eviction; 2 and 3: five and ten
ticks after it; 4 and 5: around B's; 6: before the unmap, 7 and 8 after it; 9 to 11 and 12 to 14: the same with 4 and 40 pages; 15 to 17: C's), at the
disk write and at the release of a user frame, finds the roots in the process registry, walks
them in guest RAM and reads QEMU's log of each CPU's faults and interrupts; the kernel's lines are
never believed. cpus_own_state also stops at run_selftest (both CPUs online) and reads each vCPU's
control registers (gdbstub) and TR (QEMU's monitor) for what each CPU must own; on AArch64 it
witnesses each CPU's trap stack in a boot of its own (el0_trap_stacks). Other tests boot self-tests
of their own (Smp's test): lazy_idle (with a page table freed while CPU 1 idles: x86_64),
clean_remote, cow_evict, per_cpu_temp_maps, two_initiators, asid_reuse, kernel_half
(smp_kernel_remap: a kernel-half page moved while CPU 1 writes through it) and panic_stops_both
(smp_panic_stop: CPU 0 panics while CPU 1 waits with interrupts off)."""
import random
import re
import time

from pagoda_grade import lab_test
from pagoda_grade.labtest import LabTest
from pagoda_grade.outcomes import BootEnded, CauseSeen
from pagoda_grade.processes import Layout, registry, user_symbol
from pagoda_grade.swap import Format, image_path, image_slot
from pagoda_grade.symbols import address_of, fact, function_at
from pagoda_grade.witness import ARCHES, PAGE, page_faults_at
from pagoda_pt import contract
from pagoda_pt.isa import cpus_of

IPI = 0xF0          # x86_64's one inter-processor interrupt (arch/x86_64/traps.hpp kIpiVector)
SLOTS = 64


class Smp(LabTest):
    """One boot of smp_remote_evict, stopped where a test asks (stage())."""

    def __init__(self, boot, kernel, arch, test="smp_remote_evict"):
        super().__init__(boot, kernel, arch)
        self.test = test
        self.count = user_symbol(kernel, arch, "spin", "spin_count").address
        self.page = self.count & ~(PAGE - 1)

    def start(self, script, to_end=True, **args):
        """Boots the self-test with @p script as its witness (and the self-test's @p args); with
        @p to_end, the self-test must then succeed (else the script ends the boot where it has
        seen enough)."""
        def witness(guest):
            try:
                return script(guest)
            except AssertionError:
                # (smp_remote_evict's tests trust the pins: a broken one is named first, if still stopped there)
                if self.test == "smp_remote_evict" and not (guest.session.ended or guest.client.running):
                    self.b_never_ran(guest.snapshot(hooks=False))
                raise
        self.selftest(self.test, witness, cpus=2, swap=SLOTS * PAGE,
                      args={"count": self.count, "userframes": 64, **args})
        if to_end:
            self.success()

    def cpus(self):
        """Each vCPU now (isa.Cpu: its mode and its lower root), from the gdbstub."""
        cpus = cpus_of(self.arch, self.guest.cpu_readings())
        assert len(cpus) == 2, f"the gdbstub gave the registers of {len(cpus)} vCPUs, not 2"
        return cpus

    def stage(self, n):
        """The checkpoint of stage @p n, past the earlier ones: (its Snapshot, the number of log
        events by then)."""
        while (snap := self.guest.stop_at(contract.CHECKPOINT)).argument(0) < n:
            pass
        assert snap.argument(0) == n, f"the self-test stopped at its stage {snap.argument(0)}, not {n}"
        return snap, len(self.guest.log_events())

    def counts_on(self, n, root, frame, count, why):
        """At stage @p n, the second look: spin's page still maps @p frame and its count there passed
        @p count; otherwise the failure, ending in @p why."""
        frame2, c2 = self.counted(self.stage(n)[0], root)
        assert frame2 == frame and c2 > count, (
            f"spin's count page maps frame {frame:#x} then {frame2 or 0:#x}, its count there {count} then {c2}: {why}")

    def spins(self, snap, n=2):
        """The roots of spin A (pinned on CPU 1) and spin B (and C, @p n 3; None: however many), in
        pid order (the registry)."""
        roots = sorted((k.id, k.root) for k in registry(snap, self.kernel).roots
                       if k.kind == "process" and re.match(r"spin\b", k.name))
        assert n is None or len(roots) == n, f"the process registry lists {len(roots)} spin roots, not {n}"
        return [r for _, r in roots]

    def counted(self, snap, root):
        """(the frame spin's count page maps to in @p root, the count there), or (None, None)."""
        w = snap.walk(self.count, root)
        if not w.mapped:
            return None, None
        return w.pa & ~(PAGE - 1), int.from_bytes(snap.read_phys(w.pa, 8), "little")

    def ipis(self, since, until=None):
        """The x86_64 shootdown interrupts in QEMU's log after event @p since (and before event
        @p until)."""
        return [e for e in self.guest.log_events()[since:until] if e.vector == IPI]

    def first_eviction_reached_cpu1(self):
        """Stages 1 and 2 (A's first eviction): fails unless it reached CPU 1 (reached_cpu1): the
        space's mask has CPU 1 where A runs."""
        _, first = self.stage(1)
        self.stage(2)
        self.reached_cpu1(first)

    def unmapped(self, n=6):
        """Stage @p n: (spin A's root, the frame its count page maps, the log's length), before CPU
        0 unmaps that page, the last of a batch (stage 6: of 17 pages, 9: of 4, 12: of 40)."""
        snap, mark = self.stage(n)
        a, _ = self.spins(snap)
        frame, _ = self.counted(snap, a)
        assert frame is not None, f"spin's count page {self.page:#x} is not mapped before the unmap"
        return a, frame, mark

    def b_never_ran(self, snap):
        """Fails unless spin B, pinned to CPU 0, never ran by @p snap: its count page unmapped or 0
        (guest RAM), and (x86_64) no interrupt or fault taken in its root (QEMU's log, CR3). CPU 0
        runs the self-test and never schedules, so only CPU 1 could have run it. (Before B exists,
        nothing to see.)"""
        roots = self.spins(snap, None)
        if len(roots) < 2:
            return
        _, count = self.counted(snap, roots[1])
        taken = sum(1 for e in self.guest.log_events() if e.root == roots[1])
        assert not count and not taken, (
            f"spin B, pinned to CPU 0, has run ({f'counted to {count}' if count else 'not counted yet'}, its count "
            f"page in guest RAM; {taken} interrupt(s) or fault(s) taken in its root, QEMU's log), yet CPU 0 runs only "
            "the self-test and never schedules: CPU 1 ran a process pinned to another CPU (the pick ignores "
            "affinity: a CPU picks only the Ready processes that run on it)")

    def reached_cpu1(self, since):
        """Fails unless A's eviction (after log event @p since) reached CPU 1: x86_64, an IPI there;
        AArch64 (a broadcast TLBI, no IPI), spin's next access to the page faulted on CPU 1."""
        if self.arch == "x86_64":
            sent = self.ipis(since)
            assert sent, (
                "CPU 0 evicted a page of spin, which runs on CPU 1, and CPU 1 took no shootdown interrupt (QEMU's "
                "log): the invalidation never left CPU 0 (local invalidation only, or CPU 1 not in the space's mask)")
            # (CPU 1's events: those delivered through its TSS, the dump's TR)
            later = [e for e in self.guest.log_events()[sent[0].index + 1:]
                     if e.task == sent[0].task and e.vector >= 32]
            assert later, (
                "after its shootdown interrupt CPU 1 took no interrupt at all, not even its timer's, for five ticks "
                "of CPU 0 (QEMU's log): the handler never ended the interrupt (no end-of-interrupt: the LAPIC keeps "
                "the IPI's vector in service and holds back every vector of its priority or below)")
        else:
            faults = [e for e in page_faults_at(self.guest, self.page, since) if e.cpu == 1]
            assert faults, (f"CPU 0 evicted page {self.page:#x} of spin, which runs on CPU 1, and CPU 1 took no page "
                            "fault at it (QEMU's log): its TLB kept the translation (TLBI VAE1 is this CPU's alone: "
                            "local invalidation only, or CPU 1 not in the space's mask)")


@lab_test(8, "remote_eviction")
def test_remote_eviction(boot, kernel, arch):
    t = Smp(boot, kernel, arch)

    def script(guest):
        snap, mark = t.stage(1)
        a, _ = t.spins(snap)
        frame0, c0 = t.counted(snap, a)
        assert frame0 is not None, f"spin (on CPU 1) counts at {t.count:#x}, yet its root does not map that page"
        snap, _ = t.stage(2)
        frame1, c1 = t.counted(snap, a)
        faults = page_faults_at(guest, t.page, mark)
        on_cpu1 = [e for e in faults if e.cpu in (None, 1)]
        assert frame1 is not None and faults, (
            f"CPU 0 evicted page {t.page:#x} of spin, which runs on CPU 1; 5 ticks later the page is still out "
            f"({'no' if not faults else len(faults)} page fault at it in QEMU's log): spin's accesses never faulted, "
            "so CPU 1 still translates the page to the evicted frame (a stale TLB entry: the invalidation reached "
            "CPU 0 alone; a user space's invalidations must reach every CPU in its mask, local invalidation only)")
        assert on_cpu1, f"the page faults at {t.page:#x} after the eviction were not taken on CPU 1 (spin's CPU)"
        t.reached_cpu1(mark)
        assert c1 >= c0, (f"spin's count came back as {c1}, less than the {c0} it had before the eviction: the page "
                          "did not come back with its bytes")
        t.counts_on(3, a, frame1, c1, "spin does not count in the frame its entry names (CPU 1 uses a stale "
                    "translation)")
        return True
    t.start(script)


@lab_test(8, "acks_before_write")
def test_acks_before_write(boot, kernel, arch):
    t = Smp(boot, kernel, arch)

    def script(guest):
        snap, mark = t.stage(1)
        a, _ = t.spins(snap)
        frame0, _ = t.counted(snap, a)
        snap = guest.stop_at(contract.DISK_WRITE)
        frame = snap.argument(2 if arch == "x86_64" else 1)   # (x86_64: past the hidden Result pointer)
        assert frame == frame0, (f"the first disk write after the eviction of spin's page {t.page:#x} (frame "
                                 f"{frame0:#x}) writes frame {frame:#x}")
        w = snap.walk(t.count, a)
        assert not w.mapped, (f"spin's page {t.page:#x} still maps frame {w.pa & ~(PAGE - 1):#x} in its root when "
                              f"frame {frame:#x} goes to the disk")
        if arch == "x86_64":
            assert t.ipis(mark), (
                f"frame {frame:#x} of spin, which runs on CPU 1, went to the disk before CPU 1 took any shootdown "
                "interrupt since the eviction began (QEMU's log): frames released before the acks (the "
                "invalidations must reach CPU 1, and be acknowledged, before the frame is written or given away)")
        t.stage(2)
        t.reached_cpu1(mark)
        return True
    t.start(script)


@lab_test(8, "targeted")
def test_targeted(boot, kernel, arch):
    t = Smp(boot, kernel, arch)

    def script(guest):
        t.first_eviction_reached_cpu1()
        t.stage(3)
        _, mark = t.stage(4)
        t.stage(5)
        if arch == "x86_64":
            sent = t.ipis(mark)
            assert not sent, (
                f"the eviction of a page of spin B, which never ran on any CPU, sent CPU 1 {len(sent)} shootdown "
                "interrupt(s) (QEMU's log): a shootdown goes to the CPUs in the space's mask only, not to every CPU")
        return True
    t.start(script)


@lab_test(8, "switched_away")
def test_switched_away(boot, kernel, arch):
    t = Smp(boot, kernel, arch)

    def script(guest):
        t.first_eviction_reached_cpu1()
        snap, _ = t.stage(5)
        a, _ = t.spins(snap)
        _, mark = t.stage(15)
        _, after = t.stage(16)
        if arch == "x86_64":
            sent = t.ipis(mark, after)
            assert not sent, (
                f"spin A's page was evicted while spin C ran on CPU 1 in A's place, and CPU 1 was sent {len(sent)} "
                "shootdown interrupt(s) (QEMU's log): loading C's root dropped A's translations there (a CR3 write), "
                "so CPU 1 must have left A's mask (the mask never cleared on a real switch)")
        snap, _ = t.stage(17)
        frame, _ = t.counted(snap, a)
        faults = [e for e in page_faults_at(guest, t.page, mark) if e.cpu in (None, 1)]
        assert frame is not None and faults, (
            f"spin A's page {t.page:#x} was evicted while spin C ran on CPU 1 in A's place; after A had turns again "
            "the page is still out, with no page fault at it on CPU 1 (QEMU's log): A used a translation CPU 1 kept "
            "from before the switch")
        return True
    t.start(script)


@lab_test(8, "many_pages")
def test_many_pages(boot, kernel, arch):
    t = Smp(boot, kernel, arch)

    def script(guest):
        for first, pages, why in ((6, 17, "past the 16 one request carries: a shootdown of every translation; the "
                                           "\"all\" request flushed nothing"),
                                  (9, 4, "a request that lists them: the target dropped not every listed page"),
                                  (12, 40, "past the 32 a batch lists: the batch flushes the whole space, and the "
                                           "other CPUs must too")):
            a, old, _ = t.unmapped(first)
            (frame1, c1), (frame2, c2) = [t.counted(t.stage(n)[0], a) for n in (first + 1, first + 2)]
            assert frame1 is not None and frame2 == frame1 and c2 > c1, (
                f"CPU 0 unmapped spin's count page {t.page:#x} (frame {old:#x}), the last of a batch of {pages} pages "
                f"({why}), and spin, on CPU 1, does not count in a page of its own (its entry names {frame1 or 0:#x} "
                f"then {frame2 or 0:#x}, the count there {c1} then {c2}): CPU 1 kept the old translation")
        return True
    t.start(script)


@lab_test(8, "freed_after_acks")
def test_freed_after_acks(boot, kernel, arch):
    t = Smp(boot, kernel, arch)

    def script(guest):
        a, old, mark = t.unmapped()
        snap = guest.stop_at(contract.PUT_USER_FRAME)
        assert snap.argument(0) == old, (f"the first user frame given back after the unmap of spin's page "
                                         f"{t.page:#x} is {snap.argument(0):#x}, not its frame {old:#x}")
        frame, _ = t.counted(snap, a)
        assert frame is None, (f"spin's page {t.page:#x} still maps frame {frame:#x} when frame {old:#x} is given "
                               "back to the allocator")
        if arch == "x86_64":
            assert t.ipis(mark), (
                f"frame {old:#x}, which spin on CPU 1 was counting in, went back to the allocator before CPU 1 took "
                "any shootdown interrupt since the unmap began (QEMU's log): frames released before the acks "
                "(tlb_.finish() must come before the held frames are released)")
        return True
    t.start(script)


@lab_test(8, "kernel_half")
def test_kernel_half(boot, kernel, arch):
    t = Smp(boot, kernel, arch, "smp_kernel_remap")
    w1, w2 = (t.mask(salt, 62) | 1 << 62 for salt in (0x81, 0x82))   # (never 0, never each other's)
    word = lambda snap, frame: int.from_bytes(snap.read_phys(frame, 8), "little")

    page = fact(kernel, "smp_remap_page")   # (the instructor's: the last page below the device area)

    def script(guest):
        snap, _ = t.stage(1)
        assert snap.argument(1) == page, (f"the self-test says it maps kernel page {snap.argument(1):#x} for CPU 1 to "
                                          f"write through, not {page:#x} (the last page below the device area)")
        walk = snap.walk(page)
        assert walk.mapped, (
            f"the kernel half maps nothing at {page:#x}, the page the self-test mapped for CPU 1 to write through")
        first = walk.pa & ~(PAGE - 1)
        assert word(snap, first) == w1, (
            f"CPU 1 wrote {w1:#x} at kernel page {page:#x}, yet frame {first:#x}, which the kernel half maps there "
            f"(walked), holds {word(snap, first):#x}")
        snap, _ = t.stage(2)
        walk = snap.walk(page)
        second = walk.pa & ~(PAGE - 1) if walk.mapped else None
        assert second not in (None, first), (
            f"the self-test mapped kernel page {page:#x} to another frame, yet it maps "
            f"{'nothing' if second is None else f'{second:#x} still'}")
        if word(snap, second) != w2:
            where = ("went to the old frame" if word(snap, first) == w2 else "reached neither frame")
            raise AssertionError(
                f"CPU 0 moved kernel page {page:#x} from frame {first:#x} to {second:#x} while CPU 1 ran spin, and "
                f"CPU 1's next write there {where} (guest RAM): CPU 1 kept the old translation. A change of the "
                "kernel half reaches every online CPU, whatever the masks say (invalidate_page asks for it "
                "everywhere, and finish() sends such a list to all of them)")
        return True
    t.start(script, first=w1, second=w2)


@lab_test(8, "lazy_idle")
def test_lazy_idle(boot, kernel, arch):
    t = Smp(boot, kernel, arch, "smp_lazy_idle")

    def script(guest):
        snap, mark = t.stage(1)
        (a,) = t.spins(snap, 1)
        cpu1 = t.cpus()[1]
        assert not cpu1.user and cpu1.root == a, (
            f"spin, pinned on CPU 1, sleeps and CPU 1 idles in root {cpu1.root:#x}, not spin's {a:#x} (the gdbstub's "
            f"{ARCHES[arch].lower_root_label} of CPU 1): the switch to the idle loop loaded another root (no "
            "lazy TLB: idle keeps the last user root loaded, and its TLB)")
        snap, after = t.stage(2)
        mask, missed = snap.argument(1), snap.argument(2)
        cpu1 = t.cpus()[1]
        assert cpu1.root == a, "CPU 1 left spin's root while it idled and CPU 0 evicted spin's page"
        if arch == "x86_64" and not cpu1.user:
            sent = t.ipis(mark, after)
            assert not sent, (
                f"CPU 0 evicted page {t.page:#x} of spin while spin slept and CPU 1 idled in spin's root, and CPU 1 "
                f"was sent {len(sent)} shootdown interrupt(s) (QEMU's log): a lazy CPU is left out of a user page's "
                "shootdown and marked instead (TlbSync::finish(): it catches up when it switches back in)")
        snap, _ = t.stage(3)
        frame1, c1 = t.counted(snap, a)
        faults = [e for e in page_faults_at(guest, t.page, after) if e.cpu in (None, 1)]
        if frame1 is None or not faults:
            # (the kernel's words at stage 2 only choose the cause named: the failure is already seen)
            why = ("mask cleared when idle: CPU 1 left spin's mask while it idled in spin's root, so no shootdown "
                   "reached it or told it what it missed" if mask >> 1 & 1 == 0 else
                   "lazy CPU spared but not marked: the shootdown left CPU 1 out while it idled and never marked it "
                   "in the space's missed CPUs (TlbSync::finish()), so its switch back in had nothing to catch up on"
                   if arch == "x86_64" and missed >> 1 & 1 == 0 else
                   "lazy switch-in without catch-up: the switch back into the root CPU 1 kept while idle must drop "
                   "what the shootdowns it was spared would have")
            raise AssertionError(
                f"CPU 0 evicted page {t.page:#x} of spin while spin slept and CPU 1 idled in spin's root; spin woke on "
                f"CPU 1 and its page is {'still out' if frame1 is None else 'in'} with {len(faults)} page fault(s) "
                f"at it on CPU 1 (QEMU's log): CPU 1 kept the old translation across its idle time ({why})")
        t.counts_on(4, a, frame1, c1, "spin, back on CPU 1 after its sleep, does not count in the frame its entry "
                    "names (a stale translation)")
        if arch == "x86_64":
            lazy_table_freed(t, a, far)
        return True
    # (the grader's page, where spin has no tables: a 512 GiB slot of its own, below spin's stack)
    far = random.randrange(1, 64) << 39 | random.randrange(512) << 30 | random.randrange(512) << 21 | \
        random.randrange(512) << 12
    t.start(script, far=far)


def lazy_table_freed(t, a, far):
    """lazy_idle's stages 5 and 6 (x86_64): CPU 0 unmaps its page at @p far from spin's root @p a,
    the only page under the tables the map made, while CPU 1 idles in @p a: the unmap frees those
    tables, and CPU 1 must take a shootdown interrupt before they go (QEMU's log)."""
    snap, mark = t.stage(5)
    before = snap.walk(far, a)
    cpu1 = t.cpus()[1]
    assert before.mapped and not cpu1.user and cpu1.root == a, (
        f"at the self-test's stage 5 page {far:#x} of spin is {'' if before.mapped else 'not '}mapped and CPU 1 "
        f"{'runs user code' if cpu1.user else 'idles'} in root {cpu1.root:#x} (spin's: {a:#x}): the self-test "
        "did not set up the unmap of a table while CPU 1 idled in spin's root")
    snap, after = t.stage(6)
    gone = snap.walk(far, a)
    assert not gone.mapped and len(gone.levels) < len(before.levels), (
        f"CPU 0 unmapped page {far:#x}, the only page under its leaf table in spin's root, and the walk of it "
        f"{'still maps it' if gone.mapped else 'still reaches its leaf table'} (guest RAM): an unmap frees the "
        "tables it left empty (lab 1, Cursor::unmap())")
    assert t.ipis(mark, after), (
        f"lazy CPU spared when a table goes: CPU 0 unmapped page {far:#x} of spin, the only page under its page "
        "tables, and freed those tables while CPU 1 idled in spin's root, yet sent CPU 1 no shootdown interrupt "
        "(QEMU's log) before they went. A CPU that holds a root may walk its tables at any moment, and keep the "
        "walk in its caches: a batch that gives back a table tells the lazy CPUs of the mask too "
        "(TlbSync::finish(), freeing_table())")


def trap_stacks(t):
    """x86_64: [(CPU n's TSS, the stack top there)] for each CPU, read where the hardware looks:
    the TSS its TR names (QEMU's `info registers -a`) and TSS.RSP0 in it."""
    where, offset = ARCHES[t.arch].proc["cpu_trap_stack"]
    places = t.guest.segment_bases(where)
    return [(p, int.from_bytes(t.guest.client.read_memory(p + offset, 8), "little")) for p in places]


def el0_trap_stacks(t, layout):
    """AArch64: [the stack pointer CPU n's code moves to when it traps from EL0], witnessed in a
    boot of its own with a spin pinned on each CPU: the first CPU to enter a vector for an
    exception from EL0 (VBAR_EL1 of each vCPU, at the ISA's offsets) is held there while the other
    runs alone (the gdbstub's vCont) until it enters one too; then each is stepped alone until its
    SP has moved into a kernel stack. No symbol of the kernel's is believed."""
    where, offsets = ARCHES[t.arch].proc["cpu_trap_stack"]
    sps = {}

    def witness(guest):
        t.guest = guest
        client = guest.client
        ids = client.threads()
        guest.stop_at(contract.CHECKPOINT)   # (the run's first: both CPUs online, their vectors set)
        entries = {v + o for (v,) in client.each_thread([where]) for o in offsets}
        first = guest.run_alone("-1", entries, what="a trap from EL0").values.get("thread")   # (every vCPU runs)
        assert first in ids and len(ids) == 2, f"the gdbstub's threads are {ids}, the stop is {first}'s"
        other = ids[1 - ids.index(first)]
        reply = guest.run_alone(other, entries, what=f"CPU {ids.index(other)}'s trap from EL0, running spin alone "
                                f"while CPU {ids.index(first)} was held in its vector")
        assert reply.values.get("thread") == other, f"the gdbstub stopped thread {reply.values.get('thread')}, not {other}"
        for n, tid in enumerate(ids):
            client.request(f"Hg{tid}")
            sp0, moved = client.read_register("sp"), []

            def landed(pc, sp):
                moved.append(sp != sp0)
                return any(moved) and layout.slot_of(sp - 1) is not None
            sps[n] = guest.step_alone(tid, landed, 32)[2]
        guest.end()
        return True
    run = t.booter(args={"run": "spin@0:0x10000000000,spin@1:0x10000000000"}, token=t.token, witness=witness,
                   memory=t.memory, cpus=2)
    run.require_witness()
    return [sps[0], sps[1]]


@lab_test(8, "cpus_own_state")
def test_cpus_own_state(boot, kernel, arch):
    t = Smp(boot, kernel, arch)
    proc = ARCHES[arch].proc
    layout = Layout.of(kernel)

    def script(guest):
        guest.stop_at(contract.RUN_SELFTEST)   # (both CPUs online, CPU 1 idle)
        start = len(guest.log_events())
        names = [r for r, _, _ in proc["cpu_protections"]]
        cpu0, cpu1 = guest.client.each_thread(names)
        for i, (register, bit, name) in enumerate(proc["cpu_protections"]):
            want, got = cpu0[i] >> bit & 1, cpu1[i] >> bit & 1
            assert got == want, (
                f"CPU 1 runs with {name} {'set' if got else 'clear'}, CPU 0 with it {'set' if want else 'clear'} "
                f"({register.upper()} of each vCPU, the gdbstub): the second CPU without its protections (each "
                "CPU has its own control registers: take_own_state() must give CPU 1 the boot CPU's)")
        places = None
        if arch == "x86_64":
            (place0, _), (place1, _) = trap_stacks(t)
            places = (place0, place1)
            assert place0 != place1, (
                f"both CPUs take their traps from user mode through the same TSS (their TR), {place0:#x}: one trap "
                "stack for both CPUs (a trap on one lands on the kernel stack of the process running on the other)")
        try:
            t.stage(1)
        except BootEnded:
            no_timer_on_cpu1(t, places, start, None, "from the self-test's start to the end of the boot")
            raise
        if arch == "x86_64":
            (_, top0), (_, top1) = trap_stacks(t)
            slot = layout.slot_of(top1 - 1)
            assert slot is not None and layout.stack(slot)[1] == top1, (
                f"CPU 1, running spin, would take a trap from user mode on {top1:#x}, not the top of a kernel stack "
                f"(TSS.RSP0 of its TSS at {place1:#x}): its own trap stack was never set")
            assert top0 != top1, (f"both CPUs would take a trap from user mode on {top1:#x}: one trap stack for "
                                  "both CPUs")
        _, until = t.stage(2)
        no_timer_on_cpu1(t, places, start, until, "from the self-test's start to five ticks of CPU 0 after the "
                         "eviction")
        guest.end()   # (the shootdowns are the other tests')
        return True
    t.start(script, to_end=False)
    if arch == "aarch64":
        sp0, sp1 = el0_trap_stacks(t, layout)
        slot = layout.slot_of(sp1 - 1)
        assert slot is not None and layout.slot_of(sp0 - 1) != slot, (
            f"CPU 1 traps from EL0 with SP {sp1:#x}, CPU 0 with {sp0:#x} (each CPU held at its vector entry and "
            "stepped alone, the gdbstub): "
            + ("one trap stack for both CPUs (a trap on one lands on the kernel stack of the process running on the "
               "other: each CPU loads SP_EL1 from its own slot, TPIDRRO_EL0)" if slot is not None else
               "CPU 1's own trap stack was never set (SP_EL1 is not moved into a kernel stack)"))


def no_timer_on_cpu1(t, places, since, until, when):
    """Fails unless CPU 1 took at least two timer interrupts between log events @p since and
    @p until (@p when says when): x86_64, the timer's vector delivered through each CPU's TSS
    (@p places, the dump's TR); AArch64, IRQs on each CPU (the log names no interrupt number: an
    IPI counts too, and a panic sends CPU 1 one)."""
    vector = ARCHES[t.arch].proc["timer_vector"]
    events = [e for e in t.guest.log_events()[since:until] if e.vector == vector and e.kind == "interrupt"]
    took = [sum(1 for e in events if (e.task == places[n] if t.arch == "x86_64" else e.cpu == n)) for n in (0, 1)]
    assert took[1] >= 2, (f"CPU 1 took {took[1]} interrupt(s) at the timer's vector ({vector:#x}), CPU 0 {took[0]}, "
                          f"{when} (QEMU's log): no timer on CPU 1 (each CPU has its own timer, started on it: "
                          "take_own_state())")


@lab_test(8, "clean_remote")
def test_clean_remote(boot, kernel, arch):
    t = Smp(boot, kernel, arch, "smp_clean_remote")
    fmt = Format(kernel, arch)

    def script(guest):
        (a,) = t.spins(t.stage(1)[0], 1)
        frame, c2 = t.counted(t.stage(2)[0], a)
        assert frame is not None, f"spin's count page {t.page:#x} is not mapped after its write-back (evict keep)"
        snap, _ = t.stage(3)
        frame3, c3 = t.counted(snap, a)
        entry = snap.walk(t.count, a).levels[-1].raw
        assert frame3 == frame and c3 > c2, (f"spin's count page maps frame {frame:#x} then {frame3 or 0:#x}, its "
                                             f"count there {c2} then {c3}: spin, on CPU 1, stopped counting")
        assert fmt.dirty(entry), (
            f"cleaning without remote invalidation: CPU 0 wrote spin's page {t.page:#x} back and marked it clean while "
            f"spin wrote it on CPU 1; spin wrote on (its count {c2} then {c3}) and its entry {entry:#x} still says "
            "clean (guest RAM): CPU 1 kept writing through a translation cached as writable and dirty, so the "
            "next eviction would skip the write (the cleaning must reach every CPU of the mapper's space)")
        snap, _ = t.stage(4)
        entry = snap.walk(t.count, a).levels[-1].raw
        assert fmt.is_swap(entry), f"spin's page {t.page:#x} is {entry:#x} after its eviction, not a swap entry"
        slot = fmt.slot(entry)
        on_disk = int.from_bytes(image_slot(image_path(guest), slot)[t.count - t.page:][:8], "little")
        assert on_disk >= c3, (
            f"cleaning without remote invalidation: spin's page {t.page:#x}, written on CPU 1 after its write-back "
            f"(count {c3}), was evicted and slot {slot} of the disk image holds count {on_disk}: the later writes "
            "never reached the disk")
        t.stage(5)
        return True
    t.start(script)


@lab_test(8, "cow_evict")
def test_cow_evict(boot, kernel, arch):
    t = Smp(boot, kernel, arch, "smp_cow_evict")
    text = user_symbol(kernel, arch, "spin", "main").address
    code = text & ~(PAGE - 1)

    def script(guest):
        snap, mark = t.stage(1)
        roots = t.spins(snap)
        running = t.cpus()[1].root
        assert running in roots, f"CPU 1 runs root {running:#x}, neither spin's nor its child's"
        shared = {snap.walk(code, r).pa for r in roots}
        assert len(shared) == 1 and None not in shared, (
            f"spin and its child map their code page {code:#x} to {sorted(x or 0 for x in shared)}, not one shared "
            "frame (fork shares it copy-on-write)")
        before = snap.read_phys(shared.pop(), PAGE)
        snap, _ = t.stage(2)
        _, c2 = t.counted(snap, running)
        snap, _ = t.stage(3)
        _, c3 = t.counted(snap, running)
        faults = [e for e in page_faults_at(guest, code, mark) if e.cpu in (None, 1)]
        assert faults or c3 == c2, (
            f"COW eviction reaching the first mapper only: CPU 0 evicted the code page {code:#x} that spin and its "
            f"child share while {'spin' if running == roots[0] else 'its child'} ran on CPU 1, and it counted on "
            f"({c2} then {c3}) for two ticks of CPU 1 with no page fault at that page there (QEMU's log): CPU 1 "
            "ran it from the evicted frame (the eviction's shootdown must reach the CPUs of every space the "
            "reverse map gives, not of the first mapper, nor of the evictor's space)")
        snap, _ = t.stage(4)
        faults = [e for e in page_faults_at(guest, code, mark) if e.cpu in (None, 1)]
        for r in roots:
            w = snap.walk(code, r)
            who = "spin" if r == roots[0] else "its child"
            assert w.mapped, (f"{who}'s code page {code:#x} is still out after both had turns on CPU 1 again "
                              f"({len(faults)} page fault(s) at it on CPU 1, QEMU's log)")
            got = snap.read_phys(w.pa & ~(PAGE - 1), PAGE)
            assert got == before, (f"{who}'s code page {code:#x} came back in frame {w.pa & ~(PAGE - 1):#x} "
                                   "without the bytes it had before the eviction")
        assert len(faults) >= 2, (f"{len(faults)} page fault(s) at the code page {code:#x} on CPU 1 after its "
                                  "eviction (QEMU's log): each mapper's next access must fault it back")
        return True
    t.start(script, text=text)


@lab_test(8, "per_cpu_temp_maps")
def test_per_cpu_temp_maps(boot, kernel, arch):
    t = LabTest(boot, kernel, arch)
    marks = [t.pick(f"temp_map_mark{n}", 1 << 32, (1 << 63) - 1) for n in (0, 1)]
    base, per = fact(kernel, "temp_map_base"), fact(kernel, "temp_map_slots")

    def script(guest):
        guest.stop_at(contract.RUN_SELFTEST)   # (quiet: then the checkpoint, in the self-test's code)
        snap = guest.stop_at(contract.CHECKPOINT)
        early = ("CPU 0's request to CPU 1 (a Call, to map a frame of its own) returned before CPU 1 did it: {}: the "
                 "request must wait for CPU 1's ack (cpu_request(): send, await the ack, then read the value and "
                 "unlock)")
        assert snap.argument(0) != 2, early.format("CPU 0 reached its stage 2, after the request, first")
        assert snap.argument(0) == 1, f"the self-test stopped at its stage {snap.argument(0)}, not 1 (CPU 1's map)"
        held = [[], []]   # [the slots (CPU 0's first, then CPU 1's) that map the frame holding mark n]
        for slot in range(2 * per):
            w = snap.walk(base + slot * PAGE)
            if w.mapped and (word := int.from_bytes(snap.read_phys(w.pa & ~(PAGE - 1), 8), "little")) in marks:
                held[marks.index(word)].append(slot)
        slots = f"(the slots from {base:#x}, walked in the live root: CPU 0's {per} first, then CPU 1's)"
        assert held[0] or not held[1] or min(held[1]) < per, early.format(
            f"at CPU 1's stage 1, inside the request, CPU 1's slot {held[1][0]} maps its frame and no slot maps CPU "
            f"0's any more {slots}: CPU 0 already let go of the mapping it held around the request")
        assert any(s < per for s in held[0]), (
            f"CPU 1 took a temporary mapping while CPU 0's was live, and no slot of CPU 0 maps CPU 0's frame any "
            f"more {slots}: CPU 1 wrote CPU 0's slot: temporary-mapping slots not per CPU")
        assert held[1] and all(s >= per for s in held[1]), (
            f"CPU 1 took a temporary mapping while CPU 0's was live, in slot {(held[1] or ['none'])[0]} {slots}, "
            "not one of its own: temporary-mapping slots not per CPU (each CPU takes its own area's slots, with no "
            "lock: TempMapArea::here())")
        return True
    t.selftest("smp_temp_maps", script, cpus=2, args={"a": marks[0], "b": marks[1]})
    t.success()


@lab_test(8, "per_cpu_pick")
def test_per_cpu_pick(boot, kernel, arch):
    t = Smp(boot, kernel, arch)

    def script(guest):
        t.b_never_ran(t.stage(5)[0])
        snap, _ = t.stage(17)
        t.b_never_ran(snap)
        _, count = t.counted(snap, t.spins(snap, 3)[2])
        assert count, (
            "spin C, pinned to CPU 1 with spin A, never counted (its count page in guest RAM), though CPU 1 ran it and "
            "then A again: C's turns never reached user mode, or its context was lost in the switch")
        return True
    t.start(script)


# ---- two initiators (the shootdown's mailbox) ------------------------------------------------------

SHOOTDOWN_PAGES = 16    # what one request carries (kernel/core/shootdown.hpp kShootdownPages)
DROPS = (contract.INVALIDATE_ALL_LOCAL, contract.INVALIDATE_PAGE_LOCAL)
ACK_STEPS = 1000        # (CPU 1 alone, acknowledged, reaches its stage 3 in a few hundred instructions)
DEADLOCK_SECONDS = 30   # (the self-test's two requests take well under a second of a busy host)
DEADLOCK_BOOTS = 20     # ... and at least this many times what the boot to the self-test's first stage took


@lab_test(8, "two_initiators")
def test_two_initiators(boot, kernel, arch):
    t = LabTest(boot, kernel, arch)
    mark = t.pick("two_initiators_mark", 1 << 32, (1 << 63) - 1)
    cpu1 = contract.TWO_INITIATORS_CPU1

    def script(guest):
        started = time.monotonic()
        guest.stop_at(contract.RUN_SELFTEST)   # (quiet: then the checkpoint, in the self-test's code)
        snap = guest.stop_at(contract.CHECKPOINT)
        # A deadlock is a wait that outlasts what this host needs for far more guest work than the
        # two requests are: the boot measures the host's speed now.
        patience = max(DEADLOCK_SECONDS, DEADLOCK_BOOTS * (time.monotonic() - started))
        slot = snap.argument(1)
        w = snap.walk(slot)
        assert snap.argument(0) == 1 and w.mapped, f"the self-test's first stage maps no slot ({slot:#x})"
        base, per = fact(kernel, "temp_map_base"), fact(kernel, "temp_map_slots")   # (the instructor's)
        assert base <= slot < base + per * PAGE, (
            f"the self-test's slot {slot:#x} is not one of CPU 0's temporary-mapping slots [{base:#x}, "
            f"{base + per * PAGE:#x})")
        old = w.pa & ~(PAGE - 1)
        ids = guest.client.threads()
        at = address_of(kernel, contract.CHECKPOINT)
        stops = {at: "stage", address_of(kernel, cpu1): "cpu1", **{address_of(kernel, d): "drop" for d in DROPS}}
        runs, held = 0, False
        early = ("ack before invalidation: CPU 1's shootdown of CPU 0 returned (its stage 3) before CPU 0 dropped any "
                 "translation ({}): the target acknowledged before it invalidated")

        def pcs():
            return [pc for (pc,) in guest.client.each_thread([guest.model.pc])]
        while (name := stops.get((snap := guest.stop_at_any(list(stops), within=patience)).pc)) != "stage" \
                or snap.argument(0) == 3:
            assert name != "stage" or held, early.format("the grader's stops at arch::invalidate_*_local")
            if name == "cpu1":
                runs += 1
                assert runs == 1, (
                    "a request served twice: CPU 1 ran CPU 0's one request (a Call) again while it waited inside it "
                    "for CPU 0's ack (a request must be marked taken before it is done: doing it may wait, and serve "
                    "this CPU's mailbox again)")
            elif name == "drop" and not held and pcs()[0] == snap.pc:   # ('?' would clear QEMU's breakpoints)
                held = True   # CPU 0 serves CPU 1's request: held before it drops a translation, CPU 1 runs alone
                assert not guest.step_alone(ids[1], lambda pc, sp: pc == at, ACK_STEPS)[0], \
                    early.format("CPU 0 held at its first, CPU 1 stepped alone")
            elif name is None:
                break
        assert name == "stage", (
            f"two initiators deadlock: CPU 0 waits for CPU 1's ack of its request while CPU 1, doing it, started a "
            f"shootdown toward CPU 0 and waits for CPU 0's ack; neither went on in {patience:.0f} s (the "
            f"self-test's next stage never came{'' if runs else '; CPU 1 never even started'}): a CPU that waits "
            "with interrupts off (for an ack, for a mailbox's lock) must serve its own mailbox meanwhile")
        assert runs, ("ack before invalidation: CPU 0's request to CPU 1 (a Call) was acknowledged before CPU 1 did "
                      "it (the self-test's next stage came first): an ack says the request is done")
        w = snap.walk(slot)
        new = w.pa & ~(PAGE - 1) if w.mapped else None
        assert snap.argument(0) == 2 and new not in (None, old), (
            f"the self-test's second stage finds slot {slot:#x} mapping {new or 0:#x}, not a frame other than {old:#x}")
        words = [int.from_bytes(snap.read_phys(f, 8), "little") for f in (old, new)]
        assert words[1] == mark and words[0] != mark, (
            f"CPU 0 wrote {mark:#x} through slot {slot:#x} after CPU 1's shootdown of it (the last of "
            f"{SHOOTDOWN_PAGES + 1} pages, past the {SHOOTDOWN_PAGES} a request carries: every translation) was "
            f"acknowledged, and it reached the old frame {old:#x}, not {new:#x} (guest RAM: {words[0]:#x}, "
            f"{words[1]:#x}): CPU 0 kept its translation: the \"all\" request flushed nothing on the CPU that "
            "served it while waiting (or the ack came before the invalidation)")
        return True
    t.selftest("smp_two_initiators", script, cpus=2, args={"mark": mark})


# ---- panic_stops_both: a panic stops the other CPU, even one waiting with interrupts off -------

@lab_test(8, "panic_stops_both")
def test_panic_stops_both(boot, kernel, arch):
    """smp_panic_stop: CPU 0 panics while CPU 1 waits for its ack with interrupts off. Stopped at
    the end of the panic's report, CPU 1 must be where a stop leaves a CPU (cpu_stop_here(), or
    halted in the wait_for_interrupt() it calls), with its interrupts off (the gdbstub)."""
    t = LabTest(boot, kernel, arch)
    reg, bit, enabled_when_set = ARCHES[arch].proc["irq_flag"]
    stopped = {function_at(kernel, address_of(kernel, n)).name for n in (contract.CPU_STOP_HERE,
                                                                      contract.WAIT_FOR_INTERRUPT)}

    def script(guest):
        guest.stop_at(contract.PANIC_END)
        (pc, flags), = guest.client.each_thread([guest.model.pc, reg])[1:2]
        where = function_at(kernel, pc)
        masked = bool(flags >> bit & 1) != enabled_when_set
        if where is None or where.name not in stopped or not masked:   # (named before the panic it is in)
            raise CauseSeen(
                f"the panic did not stop CPU 1: CPU 0 panicked while CPU 1 waited for CPU 0's ack with interrupts "
                f"off, and when CPU 0's report ended CPU 1 was still at {pc:#x} ({where.name if where else 'no function'}"
                f", interrupts {'off' if masked else 'on'}; the gdbstub), not stopped: a CPU that waits with interrupts "
                "off cannot take the panic's stop IPI, so every turn of such a wait must look for a stop (wait_turn() "
                "does: await_ack() and lock_mailbox() wait through it)")
        return True
    t.selftest("smp_panic_stop", script, cpus=2)
    t.expect(rf"^PANIC: smp_panic_stop: CPU 0 panics while CPU 1 waits for its ack, token {t.token}$",
             "the self-test's panic, on CPU 0")
    t.run.expect_outcome("failure")   # (a panic ends the run with the failure status)


# ---- asid_reuse (issue 53 item 3: an ASID given back and handed to a new space, across CPUs) ----

@lab_test(8, "asid_reuse")
def test_asid_reuse(boot, kernel, arch):
    t = Smp(boot, kernel, arch, "smp_asid_reuse")
    mark = t.pick("asid_reuse_mark", 1 << 32, (1 << 39) - 1)   # (below the 2^40 spin counts to)
    stop = user_symbol(kernel, arch, "spin", "spin_stop").address
    lower = ARCHES[arch].lower_root

    def cpu1_root():
        """(the root in CPU 1's lower-root register, the ASID there: AArch64's TTBR0_EL1[63:48])."""
        value = t.guest.client.each_thread([lower])[1][0]
        return t.cpus()[1].root, value >> 48 if arch == "aarch64" else None

    def word(snap, frame):
        return int.from_bytes(snap.read_phys(frame + t.count - t.page, 8), "little")

    def script(guest):
        snap, _ = t.stage(1)
        (r,) = t.spins(snap, 1)
        frame, _ = t.counted(snap, r)
        assert frame is not None, f"spin R (on CPU 1) counts at {t.count:#x}, yet its root does not map that page"
        root, asid = cpu1_root()
        assert root == r, f"CPU 1 runs root {root:#x}, not spin R's {r:#x}, while R counts pinned there"
        snap, reaped = t.stage(2)
        assert word(snap, frame) == mark and not snap.walk(t.count, r).mapped, (
            f"at the self-test's stage 2 R's kept count frame {frame:#x} does not hold the grader's mark {mark}, or "
            f"R's root maps its count page {t.page:#x} again")
        try:
            guest.stop_at(contract.CREATE_PROCESS)   # (N's: R reaped and its space ended, the churn made and dropped)
            root, seen = cpu1_root()[0], f"still holds {r:#x} (the gdbstub, as the next process is made)"
        except (AssertionError, BootEnded):
            # (x86_64: the freed root's kernel half is gone, and CPU 1's next access there kills the machine)
            fault = next((e for e in guest.log_events()[reaped:] if e.root == r and e.vector < 32), None)
            if fault is None:
                raise
            root, seen = r, (f"was still {r:#x} when CPU 1 took {fault.mnemonic} at {fault.pc:#x} in the kernel after R "
                             "was reaped (QEMU's log)")
        if root == r:
            raise CauseSeen(
                f"a dead space's root is still loaded on CPU 1: spin R ended there and CPU 1 idled with R's root {r:#x} "
                f"still loaded (lazy TLB); CPU 0 then reaped R and R's space ended, freeing its tables, yet CPU 1's "
                f"{ARCHES[arch].lower_root_label} {seen}: a CPU that idles lazily in a root must load the kernel's "
                "before that root's tables go (~AddressSpace asks it with a LeaveSpace request; leave_lazy() loads the "
                "kernel's root there)")   # (named before the death it led to: the kernel's fault in a freed root)
        snap, _ = t.stage(3)
        (n,) = t.spins(snap, 1)
        root, reused = cpu1_root()
        after, (own, count) = word(snap, frame), t.counted(snap, n)
        assert root == n, f"CPU 1 runs root {root:#x}, not the new spin N's {n:#x}, while N is pinned there"
        if after != mark or own is None or not count:
            raise AssertionError(
                f"spin R ran on CPU 1 with ASID {asid} and ended (CPU 0 reaped it); the new spin N, "
                f"{'given the same ASID' if reused == asid else f'with ASID {reused}'}, runs on CPU 1, and its count "
                f"page {t.page:#x} is {'unmapped' if own is None else f'frame {own:#x} at {count}'} while R's dead frame "
                f"{frame:#x} went from the mark {mark} to {after} (guest RAM): N counted through R's translation, "
                f"which CPU 1 kept: CPU 1 loaded the ASID again without flushing its own TLB since R ran there (with "
                f"two CPUs an ASID is given back only at a rollover of the generation, after {churn} spaces here, and "
                "each CPU flushes its own TLB at its first switch into the new generation; CPU 0 switched first)")
        return True
    # (AArch64: 255 user ASIDs; R takes the lowest, the churn the 254 others, then every 255 a
    # rollover. x86_64 has none: no churn, and N simply follows R on CPU 1.)
    asids = fact(kernel, "user_asids")
    churn = max(0, asids - 1 + asids * t.pick("asid_reuse_rollovers", 0, 1))
    t.selftest("smp_asid_reuse", script, cpus=2, args={"count": t.count, "stop": stop, "mark": mark,
                                                        "churn": churn})
    t.success()
