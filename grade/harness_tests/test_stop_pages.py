"""Each function the grader stops at (contract.STOPS: the entries it breaks at and the callers whose
return addresses it breaks at) lies on pages no other code shares, in both reference kernels: QEMU
runs a code page holding a breakpoint one instruction at a time, hit or not, so code beside a stop
(lab 7's victim scan beside evict_frame) ran six times slower through every grade
(kernel/core/stop.hpp, arch/*/kernel.ld)."""
from pagoda_grade import symbols
from pagoda_grade.witness import PAGE
from pagoda_pt import contract


def crowded(kernel, arch):
    """The stops of @p arch's @p kernel that share a page with other code, one sentence each."""
    code = [s for s in symbols.symbol_table(kernel) if s.kind in "Tt" and s.size]
    problems = []
    for name in (n for n in contract.STOPS if n.arch in (None, arch)):
        stop = symbols.find(kernel, name)
        first, end = stop.address & -PAGE, (stop.address + max(stop.size, 1) + PAGE - 1) & -PAGE
        beside = sorted({symbols.base_name(s.name) for s in code if s.address != stop.address and s.address < end
                         and s.address + s.size > first})
        if beside:
            problems.append(f"{arch}: {name} shares its pages {first:#x}-{end:#x} with {', '.join(beside[:3])}"
                            + (f" and {len(beside) - 3} more" if len(beside) > 3 else ""))
    return problems


def test_every_stop_has_pages_of_its_own_in_both_reference_kernels(reference_kernel, aarch64_kernel):
    assert crowded(reference_kernel, "x86_64") + crowded(aarch64_kernel, "aarch64") == []


def test_a_stop_beside_other_code_is_named(reference_kernel, monkeypatch):
    # The kernel as it was before stop.hpp: evict_frame beside the code that follows it.
    table = symbols.symbol_table(reference_kernel)
    evict = symbols.find(reference_kernel, contract.EVICT_FRAME)
    neighbour = symbols.Symbol("pagoda::Swapper::choose_victim_scan", evict.address + evict.size, 64, "t")
    monkeypatch.setattr(symbols, "symbol_table", lambda kernel: table + (neighbour,))
    assert crowded(reference_kernel, "x86_64") == [
        f"x86_64: {contract.EVICT_FRAME} shares its pages {evict.address:#x}-"
        f"{(evict.address + evict.size + PAGE - 1) & -PAGE:#x} with pagoda::Swapper::choose_victim_scan"]
