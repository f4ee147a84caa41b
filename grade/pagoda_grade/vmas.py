"""The record the kernel keeps of each process's user half (lab 5: its VMAs, its heap), read from
guest RAM, and what it says about a program's ELF file.

The kernel exports the layout of its process table and of one VMA as facts
(kernel/proc/process.cpp: process_stride, regions_vmas_data, vma_start, ...); the table itself
is the symbol pagoda::proc::g_processes. The grader reads (pagoda_pt/vmas.py) the table, each
process's sorted VMA array and its length through its own walk of the live root: what the
kernel holds, not what it prints. Lab 5's tests use it to name a cause from evidence (a loader
that recorded no stack, an mprotect that changed the record but not the page, ...); nothing here
trusts the kernel's lines."""
from pagoda_pt.vmas import (GROWS_DOWN, KIND_ANONYMOUS, KIND_IMAGE, KIND_STACK, MAX_VMAS, PROT_EXEC, PROT_READ,
                            PROT_WRITE, Layout, Record, Vma, decode_vma)
from pagoda_pt.vmas import read_records as _read_records
from pagoda_grade.contract import PROCESS_TABLE
from pagoda_grade.symbols import address_of, fact
from pagoda_grade.witness import PAGE

__all__ = ["GROWS_DOWN", "KIND_ANONYMOUS", "KIND_IMAGE", "KIND_STACK", "MAX_VMAS", "PROT_EXEC", "PROT_READ",
           "PROT_WRITE", "Record", "Vma", "decode_vma", "PAGE", "read_records", "vma_fields", "segment_prot",
           "prot_text", "page_down", "page_up", "heap_problems", "loader_problems", "PF_X", "PF_W", "PF_R"]
TABLE = PROCESS_TABLE
PF_X, PF_W, PF_R = 1, 2, 4
_layouts = {}


def layout_of(kernel):
    if kernel not in _layouts:
        _layouts[kernel] = Layout(lambda name: fact(kernel, name), address_of(kernel, TABLE))
    return _layouts[kernel]


def vma_fields(kernel):
    """{field: offset} of one VMA in the kernel's memory, from its facts."""
    return layout_of(kernel).fields


def read_records(snap, kernel):
    """{pid: Record} of every process slot in use whose record exists, read from guest RAM
    through the grader's walk of the live root at @p snap (pagoda_pt.vmas.read_records)."""
    return _read_records(snap.read_virt, layout_of(kernel))


def segment_prot(s):
    return (PROT_READ if s.flags & PF_R else 0) | (PROT_WRITE if s.flags & PF_W else 0) | \
        (PROT_EXEC if s.flags & PF_X else 0)


def prot_text(prot):
    return ("r" if prot & PROT_READ else "-") + ("w" if prot & PROT_WRITE else "-") + ("x" if prot & PROT_EXEC else "-")


def page_down(va):
    return va // PAGE * PAGE


def page_up(va):
    return (va + PAGE - 1) // PAGE * PAGE


def heap_problems(record, segments):
    """What is wrong with the heap @p record (read before the process ran) starts with, against its
    ELF file's load @p segments: it starts at the page after the image's last segment, empty
    (break = start). Sentences naming the loader's cause, or []."""
    if not segments or record.problem:
        return []
    who = f"{record.name} (pid {record.pid})"
    end = max(page_up(s.vaddr + s.memsz) for s in segments)
    start, brk = record.heap_start, record.brk
    if start % PAGE:
        return [f"the heap's start {start:#x} in the record of {who} (read from guest RAM before it ran) is not page "
                f"aligned: the loader must start the heap at the page after the image's last segment ({end:#x}), "
                "or the heap's first page is shared with the image and sbrk/brk round it wrongly"]
    if start < end:
        return [f"the heap's start {start:#x} in the record of {who} (read from guest RAM before it ran) lies inside "
                f"the image, whose last load segment ends at {end:#x}: the loader must start the heap at the page "
                "after the image's last segment, or the heap's region overlaps the image's and sbrk is refused"]
    if brk != start:
        return [f"the heap's break {brk:#x} in the record of {who} (read from guest RAM before it ran) is not its "
                f"start {start:#x}: a program starts with an empty heap (break = start)"]
    return []


def loader_problems(record, segments, stack_top, stack_pages):
    """What @p record (read before the process ran) lacks against its ELF file's load
    @p segments and the stack the loader must record ([stack_top - stack_pages pages,
    stack_top), grows down), each a sentence naming the cause, first the most telling."""
    if record.problem:
        return [f"{record.name} (pid {record.pid}): {record.problem}"]
    who = f"{record.name} (pid {record.pid})"
    if not record.vmas:
        return [f"the VMA list of {who}, read from guest RAM before it ran, is empty: the loader recorded no VMA "
                "(each load segment, the stack): a fault finds no region, and fork copies nothing"]
    problems = []
    order = [v for a, v in zip(record.vmas, record.vmas[1:]) if v.start < a.end]
    if order:
        problems.append(f"the VMA list of {who} is not sorted and disjoint: {order[0]} overlaps or precedes the "
                        "region before it")
    for v in record.vmas:
        spans = [s for s in segments if v.start < page_up(s.vaddr + s.memsz) and page_down(s.vaddr) < v.end]
        if len({segment_prot(s) for s in spans}) > 1:
            shown = ", ".join(f"[{page_down(s.vaddr):#x}, {page_up(s.vaddr + s.memsz):#x}) "
                              f"{prot_text(segment_prot(s))}" for s in spans)
            problems.append(f"the VMA {v} of {who} spans load segments of different permissions ({shown}): "
                            "regions with different permissions merged into one")
    for n, s in enumerate(segments):
        start, end, prot = page_down(s.vaddr), page_up(s.vaddr + s.memsz), segment_prot(s)
        file_end = page_up(s.vaddr + s.filesz)
        what = f"load segment {n} [{start:#x}, {end:#x}) {prot_text(prot)} of the ELF file"
        holes = [va for va in range(start, end, PAGE) if record.find(va) is None]
        if holes:
            if holes[0] >= file_end and s.memsz > s.filesz and not any(va < file_end for va in holes):
                problems.append(f"{what}: no VMA covers its bss pages [{holes[0]:#x}, {end:#x}) past its file bytes "
                                f"(file size {s.filesz:#x}, memory size {s.memsz:#x}): the loader recorded the file "
                                "size, not the memory size")
            elif len(holes) == (end - start) // PAGE:
                problems.append(f"{what}: no VMA covers it (the VMA list of {who}: {record.describe()})")
            else:
                problems.append(f"{what}: no VMA covers its pages from {holes[0]:#x} ({len(holes)} page(s))")
            continue
        for v in record.around(start, end):
            if v.prot != prot:
                others = [t for t in segments if t is not s and segment_prot(t) != v.prot
                          and v.start < page_up(t.vaddr + t.memsz) and page_down(t.vaddr) < v.end]
                merged = " and spans another segment: regions with different permissions merged" if others else ""
                problems.append(f"{what}: the VMA over it is {v}: permissions {v.rwx()}, the segment's are "
                                f"{prot_text(prot)}{merged}")
                break
            if v.kind != KIND_IMAGE:
                problems.append(f"{what}: the VMA over it is {v}, not an image region (its pages come from the file)")
                break
            first = max(v.start, start)
            want_offset = s.offset - (s.vaddr - start) + (first - start) if s.filesz else None
            if want_offset is not None and v.offset + (first - v.start) != want_offset:
                problems.append(f"{what}: the VMA over it is {v}, whose page {first:#x} comes from file offset "
                                f"{v.offset + first - v.start:#x}; the ELF file has it at {want_offset:#x}")
                break
            want_file = max(0, min(s.vaddr + s.filesz, v.end) - first) if s.filesz else 0
            have_file = max(0, min(v.file_size - (first - v.start), v.end - first))
            if have_file != want_file:
                problems.append(f"{what}: the VMA over it is {v}, which takes {have_file:#x} bytes from the file at "
                                f"{first:#x}; the segment has {want_file:#x} there (the rest of its memory reads as "
                                "zeros)")
                break
    stack = [v for v in record.vmas if v.end == stack_top]
    bottom = stack_top - stack_pages * PAGE
    if not stack:
        problems.append(f"no VMA of {who} ends at the stack's top {stack_top:#x}: the loader did not record the "
                        f"stack [{bottom:#x}, {stack_top:#x}) (its VMA list: {record.describe()})")
    else:
        v = stack[0]
        if v.kind != KIND_STACK or not v.flags & GROWS_DOWN or not v.write or v.start > bottom:
            problems.append(f"the stack's VMA of {who} is {v}; the loader must record [{bottom:#x}, {stack_top:#x}) "
                            "rw- stack grows-down")
    return problems
