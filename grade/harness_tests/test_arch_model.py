"""The grader's arch objects (witness.ARCHES): one per ISA, the only place the grader's modules
learn an ISA's registers, roots and labels. Their facts agree with each other and, where the
kernel exports the same fact, with the kernel."""
import pytest

from pagoda_grade.symbols import fact
from pagoda_grade.witness import ARCHES


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_each_model_reads_the_registers_it_names(arch):
    model = ARCHES[arch]
    registers = {name for name, _ in model.root_masks}
    assert {model.lower_root, model.upper_root} <= registers <= set(model.translation)
    assert model.one_root == (len(registers) == 1)
    assert model.link_register is None or model.link_register not in model.arguments[:1]
    roots = model.roots({name: (0x1234_5000 | 0xFFF) for name in model.translation})
    assert set(roots) == registers and all(r & 0xFFF != 0xFFF for r in roots.values())


def test_the_x86_root_mask_is_the_kernels(reference_kernel):
    """CR3's table address is masked as the kernel masks an entry's (its exported address_mask)."""
    assert dict(ARCHES["x86_64"].root_masks)["cr3"] == fact(reference_kernel, "address_mask")
