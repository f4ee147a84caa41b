"""A frame TempFill filled and nobody took (lab 4's test calls) is freed when every process has
ended: `tmfill keep` fills one and exits without starting its reader. The grader counts the
frames in use from the allocator's bitmap in guest RAM before the first process and after the
last one, as the lab tests' baselines do."""
from pagoda_grade.harness import Booter
from pagoda_grade.watch import GRADER_MEMORY, Watch
from pagoda_grade.forks import baseline


def test_a_filled_frame_nobody_took_is_freed_at_the_end(reference_kernel, tmp_path):
    watch = Watch(reference_kernel, "x86_64")

    def script(guest):
        watch.before(guest)
        return baseline(watch, guest)

    run = Booter(reference_kernel, "x86_64", str(tmp_path), timeout=30)(
        memory=GRADER_MEMORY, args={"run": "tmfill:keep"}, witness=script)
    w = run.require_witness()
    run.expect(r"^tmfill: pid 1 temp_fill -> 0$", "the fill")
    run.expect(r"^run: 1 frame\(s\) filled by temp_fill and never taken: freed$", "the kernel's note of the free")
    assert w["after"] == w["before"], f"frames in use: {w['before']} before, {w['after']} after"
