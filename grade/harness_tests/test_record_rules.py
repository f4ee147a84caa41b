"""Lab 5's rules that name a cause from a record read from guest RAM (vmawatch.record_broken)
and from the kernel's kill reason (vmawatch.allowed_against_perms), tried on records and
reasons built here: each rule fires on its class of slip and stays silent on a sound record or
a reason that names the right denial."""
from pagoda_grade import vmawatch as lab5
from pagoda_pt.procs import KIND_IMAGE, KIND_STACK, GROWS_DOWN, Proc, Vma

PAGE = 0x1000


def record(*vmas):
    return Proc(pid=1, name="vmas", vmas=list(vmas), heap_start=0x413000, brk=0x413000)


SOUND = record(Vma(0x400000, 0x40b000, True, False, True, KIND_IMAGE, 0, 0x1000, 0xadb6),
               Vma(0x40b000, 0x413000, True, False, False, KIND_IMAGE, 0, 0xc000, 0x7048),
               Vma(0x2000000000, 0x2000003000, True, True, False),
               Vma(0x7ffffff00000, 0x7ffffffff000, True, True, False, KIND_STACK, GROWS_DOWN))


def test_a_sound_record_breaks_no_rule():
    assert lab5.record_broken(SOUND) is None
    assert lab5.record_broken(None) is None


def test_an_empty_region_is_named_with_the_boundary_that_leaves_it():
    broken = record(*SOUND.vmas[:2], Vma(0x2000003000, 0x2000003000, True, True, False), *SOUND.vmas[2:])
    text = lab5.record_broken(broken)
    assert text.startswith("vmas's record") and "empty region" in text and ">= for >" in text


def test_an_image_region_with_more_file_bytes_than_room_is_named():
    cut = record(Vma(0x40b000, 0x40e000, True, False, False, KIND_IMAGE, 0, 0xc000, 0x7048), *SOUND.vmas[2:])
    assert "more file bytes than its 0x3000 bytes of room" in lab5.record_broken(cut)
    wrapped = record(Vma(0x414000, 0x415000, True, False, False, KIND_IMAGE, 0, 0x15000, 0xfffffffffffff018))
    assert "wrapped below zero: a cut past the file bytes leaves the tail none" in lab5.record_broken(wrapped)


def test_overlap_and_misalignment_are_named():
    overlap = record(SOUND.vmas[2], Vma(0x2000002000, 0x2000004000, True, True, False))
    assert "not sorted and disjoint" in lab5.record_broken(overlap)
    odd = record(Vma(0x2000000000, 0x2000000800, True, True, False))
    assert "not page aligned" in lab5.record_broken(odd)


def reason(access, perms):
    return (f"no-access page (held: invalid to the MMU, its frame kept); decide_fault() allowed {access} in VMA "
            f"[0x1000000000, 0x1000001000) {perms} user anonymous, but the page is already mapped {perms} user, as "
            "that VMA says, and the CPU refused the access there")


def test_an_access_allowed_against_the_regions_permissions_is_named():
    assert "PROT_NONE" in lab5.allowed_against_perms(reason("a read", "---"))
    assert "read-only region" in lab5.allowed_against_perms(reason("a write", "r--"))
    assert "non-executable region" in lab5.allowed_against_perms(reason("an instruction fetch", "rw-"))


def test_an_access_the_region_allows_or_another_reason_names_nothing():
    assert lab5.allowed_against_perms(reason("a read", "r--")) is None
    assert lab5.allowed_against_perms(reason("a write", "rw-")) is None
    assert lab5.allowed_against_perms("write to read-only VMA [0x1000000000, 0x1000001000) r-- user anonymous") is None
    assert lab5.allowed_against_perms(None) is None
