"""The VMA set inside the kernel, on the kernel heap (self-test `vma_heap`): a region cut in
the middle (chosen from this boot's token) leaves one more region, a protect across the hole is
refused, and destroying the set returns the heap to where it was."""
import pytest

from pagoda_core import build
from pagoda_grade.harness import Booter
from pagoda_grade.proof import proof

REGIONS = 40
VMA_TAG = 0x564D


@pytest.fixture(scope="module")
def kernel():
    return build.build_kernel()


def test_vma_set_on_the_kernel_heap(kernel, tmp_path):
    run = Booter(kernel, "x86_64", str(tmp_path), timeout=20)(test="vma_heap")
    run.expect_outcome("success")
    m = run.expect(r"^vma: (\d+) regions after the hole in region (\d+); protect across the hole refused$",
                   "the region count after the hole")
    assert int(m[1]) == REGIONS + 1
    assert int(m[2]) == 1 + proof(run.token, VMA_TAG) % (REGIONS - 2), "the hole was not chosen from this token"
    m = run.expect(r"^vma: heap objects before (\d+) during (\d+) after (\d+); bytes before (\d+) during (\d+) "
                   r"after (\d+) proof=([0-9a-f]+)$", "the heap balance")
    objects, bytes_ = [int(x) for x in m.groups()[0:3]], [int(x) for x in m.groups()[3:6]]
    assert objects[1] > objects[0] and bytes_[1] > bytes_[0], "the set took nothing from the heap"
    assert objects[2] == objects[0] and bytes_[2] == bytes_[0], "destroying the set did not give the heap back"
    run.expect_proof(m[7], REGIONS + 1, "the region count")
