"""Lab 4's GuardWatch (test_lab4.py) on the reference kernel's copy_frame self-test: where each
TempMap constructor returns, the CPU's roots are registered ones and a temp-map slot maps the
frame. Each check, broken once: a kernel root the grader is not told of, and the slots' entries
cleared by the grader for the look (put back after it)."""

from pagoda_grade.harness import Booter
from pagoda_grade.symbols import fact
from pagoda_grade.watch import GRADER_MEMORY
from pagoda_grade.witness import PAGE
from pagoda_grade.tempmaps import GuardWatch, temp_area


class ClearedSlots(GuardWatch):
    def ready(self, snap):
        area = temp_area(snap, self.kernel)
        at = [snap.translate(e & ~(PAGE - 1)) + e % PAGE for e in (s.entry for s in area.slots)]
        kept = [snap.read_phys(pa, 8) for pa in at]
        for pa in at:
            self.guest.write_phys(pa, bytes(8))
        super().ready(snap)
        for pa, data in zip(at, kept):
            self.guest.write_phys(pa, data)


def copy_frame_guards(kernel, tmp_path, watch=GuardWatch, told=lambda snap: {snap.root, snap.lower_root}):
    def stop(guest, name):
        snap = guest.stop_at("pagoda_grader_checkpoint")
        assert snap.argument(0) == fact(kernel, f"temp_copy_{name}_stop")
        return snap

    def script(guest):
        guards = watch(guest, kernel, told(stop(guest, "frames")))
        stop(guest, "copied")
        return guards.end()

    run = Booter(kernel, "x86_64", str(tmp_path), timeout=30)(test="copy_frame", memory=GRADER_MEMORY, witness=script)
    return run.require_witness()


def test_the_reference_maps_each_frame_in_a_slot_of_a_registered_root(reference_kernel, tmp_path):
    w = copy_frame_guards(reference_kernel, tmp_path)
    # (three copies, high->high, window->high, high->window: the reference takes a TempMap per frame)
    assert w == dict(guard_problem=None, guards=6), w


def test_a_root_nobody_registered_is_named(reference_kernel, tmp_path):
    w = copy_frame_guards(reference_kernel, tmp_path, told=lambda snap: set())
    assert "neither the kernel's" in (w["guard_problem"] or ""), w


def test_a_frame_in_no_slot_is_named(reference_kernel, tmp_path):
    w = copy_frame_guards(reference_kernel, tmp_path, watch=ClearedSlots)
    assert "no temp-map slot of the live root" in (w["guard_problem"] or ""), w
