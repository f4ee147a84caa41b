"""The grader's own page-table walks end, whatever the guest's tables look like: a root whose
entries lead back to itself stalled the grader until pytest's timeout, with no console tail."""
import struct

import pytest

from pagoda_grade import witness

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
    assert witness.compare_map(snap, [])[0].startswith("page-table cycle at root table 0x1000")


@pytest.mark.timeout(30)
def test_table_pointing_at_itself_below_the_root_is_bounded():
    guest = FakeGuest()
    guest.table(0x1000, {0: 0x2000 | P_RW})
    guest.table(0x2000, {i: 0x2000 | P_RW for i in range(512)})
    with pytest.raises(witness.WalkError) as e:
        snapshot(guest, 0x1000).dump()
    assert str(e.value).startswith("page-table cycle at table 0x2000 (reached ")


def test_a_shared_table_is_not_a_cycle():
    """The boot stub's root points twice at one table (identity map and window): fine."""
    guest = FakeGuest()
    guest.table(0x1000, {0: 0x2000 | P_RW, 256: 0x2000 | P_RW})
    guest.table(0x2000, {0: 0x3000 | P_RW})
    guest.table(0x3000, {0: 0x4000 | P_RW})
    guest.table(0x4000, {1: 0x5000 | P_RW})
    runs = snapshot(guest, 0x1000).dump()
    assert [(r.va_start, r.pa_start) for r in runs] == [(0x1000, 0x5000), (0xFFFF_8000_0000_1000, 0x5000)]
