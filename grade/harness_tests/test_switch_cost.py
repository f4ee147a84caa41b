"""`./pagoda bench check` (`bench switch` before lab 3) reads what the kernel's vm_switch_cost self-test prints (no timing is
asserted here: numbers belong in the benchmark's report)."""
from pagoda import bench
from pagoda_core import build


def test_the_switch_benchmark_understands_the_self_test():
    kernel = build.build_kernel("x86_64")
    ranges, pages, with_check, without = bench.switch_costs(kernel, "x86_64", ticks=5)
    assert ranges >= 8 and pages >= ranges     # stack, code, trap entry, IDT, GDT, TSS, ISTs, text
    assert with_check > 0 and without > 0


def test_the_syscall_and_switch_benchmarks_understand_their_programs():
    """`bench syscall` and `bench switch` read nullcall's and pingpong's lines under -icount."""
    kernel = build.build_kernel("x86_64")
    call = bench.null_syscall(kernel, "x86_64", 2000)
    per_yield = bench.yield_cost(kernel, "x86_64", 500)
    assert call > 10                # syscall, entry, dispatch, sysret: dozens of instructions
    assert per_yield > call         # a yield is a system call and a switch
