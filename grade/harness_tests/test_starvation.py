"""preempt_user names a starved spinner (pagoda_grade/preempt.py: SpinProgress, starvation_problem): one whose
count stands still while the timer keeps interrupting spin's loop in user mode (QEMU's log) and
the other counts on. Counted in guest events, never in wall-clock time: a host that gives the
guest no CPU gives no verdict."""
import types

from pagoda_grade import preempt
from pagoda_grade.preempt import STARVE_TICKS, SpinProgress

TIMER, USER, KERNEL = 32, 3, 0
SPIN, ELSEWHERE = 0x401000, 0x402000
A, B = 0xA000, 0xB000


class Guest:
    def __init__(self):
        self.events = []

    def tick(self, n, pc=SPIN, privilege=USER, vector=TIMER):
        self.events += [types.SimpleNamespace(kind="interrupt", vector=vector, privilege=privilege, pc=pc)] * n

    def log_events(self):
        return self.events


SPIN_MAIN = types.SimpleNamespace(contains=lambda pc: pc == SPIN)
WATCH = types.SimpleNamespace(proc={"timer_vector": TIMER, "user_privilege": USER}, kernel="kernel.elf")


def verdicts(monkeypatch):
    seen = []
    monkeypatch.setattr(preempt, "starvation_problem",
                        lambda snap, watch, stuck, other, ticks, counts: seen.append((stuck, other, ticks)) or "starved")
    return seen


def test_two_spinners_counting_on_are_never_starved(monkeypatch):
    seen = verdicts(monkeypatch)
    p, g = SpinProgress([A, B]), Guest()
    for i in range(20):
        g.tick(STARVE_TICKS - 1)
        assert p.starved(g, WATCH, None, [i + 1, 2 * i + 1], SPIN_MAIN) is None
    assert seen == []


def test_a_spinner_still_for_the_tick_budget_is_named(monkeypatch):
    seen = verdicts(monkeypatch)
    p, g = SpinProgress([A, B]), Guest()
    assert p.starved(g, WATCH, None, [5, 5], SPIN_MAIN) is None
    g.tick(STARVE_TICKS - 1)
    assert p.starved(g, WATCH, None, [5, 9], SPIN_MAIN) is None
    g.tick(1)
    assert p.starved(g, WATCH, None, [5, 12], SPIN_MAIN) == "starved"
    assert seen == [(A, B, STARVE_TICKS)]


def test_only_timer_ticks_in_spins_loop_in_user_mode_count(monkeypatch):
    seen = verdicts(monkeypatch)
    p, g = SpinProgress([A, B]), Guest()
    p.starved(g, WATCH, None, [5, 5], SPIN_MAIN)
    g.tick(10 * STARVE_TICKS, privilege=KERNEL)
    g.tick(10 * STARVE_TICKS, pc=ELSEWHERE)
    g.tick(10 * STARVE_TICKS, vector=TIMER + 1)
    assert p.starved(g, WATCH, None, [5, 9], SPIN_MAIN) is None
    assert seen == []


def test_a_guest_given_no_cpu_is_not_starved(monkeypatch):
    seen = verdicts(monkeypatch)
    p, g = SpinProgress([A, B]), Guest()
    for _ in range(50):
        assert p.starved(g, WATCH, None, [5, 5], SPIN_MAIN) is None
    assert seen == []


def test_the_sentence_says_what_the_process_table_says(monkeypatch):
    from pagoda_grade import procaudit
    from pagoda_pt.procs import Proc as Rec
    facts = types.SimpleNamespace(state_name=lambda s: {1: "Ready", 3: "in state 3 (Sleeping)"}[s])
    recs = {1: Rec(0, 1, 0, 1, "spin", 0), 2: Rec(1, 2, 0, 2, "spin", 1)}
    monkeypatch.setattr(preempt, "process_roots", lambda snap, kernel: {A: "spin (pid 1)", B: "spin (pid 2)"})
    monkeypatch.setattr(procaudit.Facts, "of", classmethod(lambda cls, kernel: facts))
    monkeypatch.setattr(procaudit, "read_procs", lambda read, f: list(recs.values()))
    monkeypatch.setattr(procaudit, "read_current", lambda read, f, r: (recs[2], 0x1234))
    snap = types.SimpleNamespace(read_phys=None)
    ready = preempt.starvation_problem(snap, WATCH, A, B, 50, {A: 5, B: 900})
    assert ready.startswith("spin pid 1 (root 0xa000) never ran for 50 timer interrupts")
    assert "the CPU runs pid 2 (spin)" in ready and "Ready" in ready and "next_ready" in ready
    recs[1] = Rec(0, 1, 0, 3, "spin", 0)
    asleep = preempt.starvation_problem(snap, WATCH, A, B, 50, {A: 5, B: 900})
    assert "in state 3 (Sleeping)" in asleep and "back to Ready" in asleep
