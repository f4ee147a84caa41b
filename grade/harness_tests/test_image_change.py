"""symbols.image_change(): the kernel's code and read-only data in guest RAM, as a boot ended,
against the ELF the grader booted (issue 51: a region that patches kernel text or read-only data
through the physical window is seen, and named by the function it changed)."""
import pytest

from pagoda_grade import symbols


def ram_of(kernel):
    """{physical address: bytearray} of every read-only section, as the loader placed it."""
    return {pa: bytearray(data) for _, _, pa, data in symbols.read_only_image(kernel)}


def reader(ram):
    def read_phys(pa, size):
        for base, data in ram.items():
            if base <= pa and pa + size <= base + len(data):
                return bytes(data[pa - base:pa - base + size])
        raise ValueError(f"{pa:#x} is not in the fake RAM")
    return read_phys


@pytest.mark.parametrize("which", ["reference_kernel", "aarch64_kernel"])
def test_a_patched_function_is_named(which, request):
    kernel = request.getfixturevalue(which)
    names = [name for name, *_ in symbols.read_only_image(kernel)]
    assert ".text" in names and ".rodata" in names and not any(n.startswith(".boot") for n in names)
    ram = ram_of(kernel)
    assert symbols.image_change(kernel, reader(ram)) is None
    # Two bytes of timer_tick's code changed, as a region writing through the window would.
    tick = symbols.find(kernel, "pagoda::proc::timer_tick")
    pa = symbols.physical_of(kernel, tick.address)
    base = max(b for b in ram if b <= pa)
    ram[base][pa - base + 4] ^= 0xff
    ram[base][pa - base + 5] ^= 0x01
    said = symbols.image_change(kernel, reader(ram))
    assert said.startswith("the kernel's .text in guest RAM is not the one built: 2 bytes differ")
    assert f"{tick.address + 4:#x} (in pagoda::proc::timer_tick)" in said
