"""The grader's own page-table walks end, whatever the guest's tables look like: a root whose
entries lead back to itself stalled the grader until pytest's timeout, with no console tail."""
import struct

import pytest

from pagoda_grade import vmchecks, witness

P_RW = 0x3  # present, writable


class FakeGuest:
    """Guest RAM in a bytearray (physical 0 upwards)."""
    arch = "x86_64"
    pa_bits = None

    def __init__(self, size=1 << 20):
        self.ram = bytearray(size)

    def read_phys(self, pa, size):
        if pa + size > len(self.ram):
            raise ValueError("outside RAM")
        return bytes(self.ram[pa:pa + size])

    def table(self, pa, entries):
        for i, e in entries.items():
            struct.pack_into("<Q", self.ram, pa + 8 * i, e)


def snapshot(guest, root):
    return witness.Snapshot(guest, {"rip": 0, "rsp": 0, "cr0": 1 << 31 | 1 << 16, "cr3": root, "cr4": 1 << 5,
                                    "efer": 1 << 8 | 1 << 10 | 1 << 11})


@pytest.mark.timeout(30)
def test_root_pointing_at_itself_is_a_cycle():
    guest = FakeGuest()
    guest.table(0x1000, {i: 0x1000 | P_RW for i in range(512)})
    snap = snapshot(guest, 0x1000)
    with pytest.raises(witness.WalkError) as e:
        snap.dump()
    assert str(e.value).startswith("page-table cycle at root table 0x1000")
    assert vmchecks.compare_map(snap, [])[0].startswith("page-table cycle at root table 0x1000")


@pytest.mark.timeout(30)
def test_table_pointing_at_itself_below_the_root_is_bounded():
    guest = FakeGuest()
    guest.table(0x1000, {0: 0x2000 | P_RW})
    guest.table(0x2000, {i: 0x2000 | P_RW for i in range(512)})
    with pytest.raises(witness.WalkError) as e:
        snapshot(guest, 0x1000).dump()
    # Whichever bound comes first names it: the tables read, or the runs they map.
    assert str(e.value).startswith(("page-table cycle at table 0x2000 (reached ",
                                    f"the live root maps more than {witness.MAX_RUNS} separate runs"))


def test_a_shared_table_is_not_a_cycle():
    """The boot stub's root points twice at one table (identity map and window): fine."""
    guest = FakeGuest()
    guest.table(0x1000, {0: 0x2000 | P_RW, 256: 0x2000 | P_RW})
    guest.table(0x2000, {0: 0x3000 | P_RW})
    guest.table(0x3000, {0: 0x4000 | P_RW})
    guest.table(0x4000, {1: 0x5000 | P_RW})
    runs = snapshot(guest, 0x1000).dump()
    assert [(r.va_start, r.pa_start) for r in runs] == [(0x1000, 0x5000), (0xFFFF_8000_0000_1000, 0x5000)]


# ---- a huge map, from a handful of tables ----------------------------------------------------

P_US_PS = 0x87   # present, writable, user, 2 MiB page


def huge_map(guest):
    """Root 0x1000 maps 512 GiB at VA 512 GiB: 512 entries to one table of 512 2 MiB leaves, all
    to the same frame (262144 leaves from three tables; no two merge into one run)."""
    guest.table(0x1000, {1: 0x2000 | 0x7})
    guest.table(0x2000, {i: 0x3000 | 0x7 for i in range(512)})
    guest.table(0x3000, {i: 0x200000 | P_US_PS for i in range(512)})


@pytest.mark.timeout(60)
def test_a_huge_map_stops_at_the_runs_bound_with_its_reason():
    guest = FakeGuest()
    huge_map(guest)
    with pytest.raises(witness.WalkError) as e:
        snapshot(guest, 0x1000).dump()
    assert str(e.value).startswith(f"the live root maps more than {witness.MAX_RUNS} separate runs of pages")


def test_runs_are_read_lazily():
    """The walk reads tables only as far as the runs asked for."""
    guest = FakeGuest()
    huge_map(guest)
    reads = []
    real = guest.read_phys
    guest.read_phys = lambda pa, size: reads.append(pa) or real(pa, size)
    runs = snapshot(guest, 0x1000).runs()
    first = next(runs)
    assert (first.va_start, first.pa_start) == (1 << 39, 0x200000)
    assert len(reads) <= 4


def test_a_walk_past_the_test_s_deadline_stops_with_its_reason():
    class Budget:
        def left(self):
            return -1.0

    class Session:
        budget = Budget()

    guest = FakeGuest()
    guest.session = Session()
    huge_map(guest)
    with pytest.raises(witness.WalkError) as e:
        snapshot(guest, 0x1000).dump()
    assert "the test's time ran out while the grader walked the tables" in str(e.value)


def test_read_virt_takes_each_page_s_own_frame_from_one_leaf_table():
    """read_virt walks once per leaf table: the pages after the walked one take their frames from
    their own entries; an entry that differs in more than its frame (absent, other rights) is
    walked on its own."""
    guest = FakeGuest(1 << 21)
    guest.table(0x1000, {0: 0x2000 | P_RW})
    guest.table(0x2000, {0: 0x3000 | P_RW})
    guest.table(0x3000, {0: 0x4000 | P_RW})
    guest.table(0x4000, {0: 0x9000 | P_RW, 1: 0x6000 | P_RW, 2: 0x7000 | 0x1, 4: 0x8000 | P_RW})
    for frame, fill in ((0x9000, b"a"), (0x6000, b"b"), (0x7000, b"c"), (0x8000, b"d")):
        guest.ram[frame:frame + 0x1000] = fill * 0x1000
    snap = snapshot(guest, 0x1000)
    assert snap.read_virt(0xffe, 0x2002) == b"aa" + b"b" * 0x1000 + b"c" * 0x1000
    assert snapshot(guest, 0x1000).read_virt(0x2000, 1) == b"c"
    with pytest.raises(AssertionError, match="0x3000 is not mapped"):
        snapshot(guest, 0x1000).read_virt(0x2000, 0x1001)
    assert snapshot(guest, 0x1000).read_virt(0x4000, 2) == b"dd"
