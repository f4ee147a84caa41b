"""A stale TLB entry, seen from outside the guest.

A missing TLB invalidation never faults: after an unmap and a new mapping the CPU keeps
translating through the entry it cached, and the kernel reads the old frame as if nothing had
changed. Nothing the kernel prints can show that. The grader can: it walks the page tables the
CPU would walk now (from guest RAM, with CR3 from QEMU), reads what the page they map holds,
and compares it with what the kernel read through the address. If they differ and the value
the kernel read sits in another frame, the read went through a translation the tables no
longer hold:

    stale TLB: the kernel read 0x9c1e... through 0x600000000000, but the active root 0x145000
    maps it to frame 0x26c000, which holds 0x3a7f...; 0x9c1e... is what frame 0x26b000 holds
    there: the read went through a translation the page tables no longer hold (a TLB entry
    not invalidated after an unmap or a remap)

The value read comes from the test (what the guest left in memory or printed); choose frame
contents at run time (the boot's token) so that no kernel can know them in advance.
"""


def stale_read(inspector, va, value):
    """None when the 8 bytes at @p va, as the active root maps them now, are @p value (what the
    kernel read through @p va); otherwise the one-line diagnosis above. @p inspector is the
    stopped guest (a witness.Snapshot)."""
    walk = inspector.walk(va)
    value &= (1 << 64) - 1
    if walk.mapped:
        now = int.from_bytes(inspector.read_phys(walk.pa, 8), "little")
        if now == value:
            return None
        mapped = "maps it to frame %#x, which holds %#x" % (walk.pa & ~0xFFF, now)
    else:
        mapped = "does not map it (%s)" % walk.stop_reason
    holders = [pa for pa in inspector.find_u64(value, page_offset=va & 0xFFF)
               if not walk.mapped or pa & ~0xFFF != walk.pa & ~0xFFF]
    where = ""
    if holders:
        where = "; %#x is what frame%s %s hold%s there" % (
            value, "s" if len(holders) > 1 else "", ", ".join("%#x" % (pa & ~0xFFF) for pa in holders),
            "" if len(holders) > 1 else "s")
    return ("stale TLB: the kernel read %#x through %#x, but the active root %#x %s%s: the read went "
            "through a translation the page tables no longer hold (a TLB entry not invalidated after "
            "an unmap or a remap)" % (value, va, inspector.root, mapped, where))
