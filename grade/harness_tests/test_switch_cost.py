"""`./pagoda bench switch` reads what the kernel's vm_switch_cost self-test prints (no timing is
asserted here: numbers belong in the benchmark's report)."""
from pagoda import bench, build


def test_the_switch_benchmark_understands_the_self_test():
    kernel = build.build_kernel("x86_64")
    ranges, pages, with_check, without = bench.switch_costs(kernel, "x86_64", ticks=5)
    assert ranges >= 8 and pages >= ranges     # stack, code, trap entry, IDT, GDT, TSS, ISTs, text
    assert with_check > 0 and without > 0
