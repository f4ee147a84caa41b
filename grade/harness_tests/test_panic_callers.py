"""A kernel panic's headline names where it was raised and who called it (causes.panic_callers),
from the backtrace the kernel prints after its PANIC line (kernel/core/panic.cpp), each return
address symbolized: the caller is where a bad value came from (a free of a frame that is not
RAM names the teardown that passed it)."""
from types import SimpleNamespace

from pagoda_grade.causes import panic_callers

NAMES = {0x100: "pagoda::panic<char const*> kernel/core/panic.hpp:20",
         0x200: "pagoda::FrameAllocator::free kernel/mm/phys/frame_allocator.cpp:98",
         0x300: "pagoda::vm::put_user_frame kernel/mm/frames.cpp:95",
         0x400: "pagoda::ConsistencyBatch::flush kernel/mm/pt/consistency_batch.hpp:170",
         0x500: "pagoda::proc::free_user_pages kernel/proc/process.cpp:420",
         0x600: "pagoda::proc::release kernel/proc/process.cpp:48"}


def run_of(lines):
    # symbol_of is asked about the call, one byte before each return address
    return SimpleNamespace(lines=lines, symbol_of=lambda address: NAMES.get(address))


PANIC = ["proc 1 (hello): reaped: exited with code 0",
         "PANIC: frame allocator: cannot free frame 0x0: the frame is not RAM this allocator manages",
         "backtrace:"]


def test_the_panicking_function_and_its_callers_are_named():
    frames = ["  #%d %#018x" % (i, a + 1) for i, a in enumerate((0x100, 0x200, 0x300, 0x400, 0x500, 0x600))]
    said = panic_callers(run_of(PANIC + frames + ["after"]))
    assert said == ("in pagoda::FrameAllocator::free, called from pagoda::vm::put_user_frame <- "
                    "pagoda::ConsistencyBatch::flush <- pagoda::proc::free_user_pages")


def test_unknown_frames_are_skipped_and_no_backtrace_says_nothing():
    frames = ["  #0 0x0000000000000901", "  #1 %#018x" % 0x201, "  #2 %#018x" % 0x301]
    assert panic_callers(run_of(PANIC + frames)) == "in pagoda::FrameAllocator::free, called from pagoda::vm::put_user_frame"
    assert panic_callers(run_of(PANIC)) is None
    assert panic_callers(run_of(["  #0 %#018x" % 0x201])) is None   # a backtrace with no PANIC before it
