"""The swap disk of lab 7 (kernel/dev/virtio_blk.cpp), on both ISAs, witnessed from outside.

The test chooses the disk's size, the slots and the seed at run time, and fills the slots the
kernel is to read with random bytes of its own before the boot. After the guest has stopped it
reads the image file on the host (the seed's pages at exactly the chosen slots, the read slots
untouched, nothing anywhere else) and QEMU's own trace of the requests (one write per slot
written, the reads that follow, each answered with status 0). The kernel's digest of each read
slot must be the host's digest of its bytes, which only a read of the disk can know. QEMU's
exception log shows the CPU halted for each request, not spinning: an interrupt taken at the
driver's halt (arch::wait_for_device) for every request.

Bad disks (none, too small, read-only, legacy, refused features, a failing write) each end in a
clear, named error at boot or at the request, never in a hang."""
import random
import re
import struct

import pytest

from pagoda_core import faultlog, qemu
from pagoda_grade import symbols
from pagoda_grade.harness import Booter
from pagoda_grade.symbols import fact
from pagoda_pt import contract
from pagoda_pt.model import PAGE_SIZE_4K

ARCHES = ("x86_64", "aarch64")
MASK = (1 << 64) - 1
SECTORS_PER_SLOT = PAGE_SIZE_4K // qemu.SECTOR_BYTES
TIMEOUT = 60      # a budget on the reference machine, scaled; a boot takes about a second
REQUEST = re.compile(r"^virtio_blk_handle_(read|write) .*\bsector (\d+) nsectors (\d+)$", re.M)
COMPLETE = re.compile(r"^virtio_blk_req_complete .*\bstatus (\d+)$", re.M)


@pytest.fixture(params=ARCHES)
def booter(request, tmp_path):
    """A Booter of the reference kernel of each ISA."""
    arch = request.param
    kernel = request.getfixturevalue("reference_kernel" if arch == "x86_64" else "aarch64_kernel")
    return Booter(kernel, arch, str(tmp_path), timeout=TIMEOUT)


def page(seed, slot):
    """The page the swapdisk self-test writes to @p slot under @p seed (kernel/mm/swap_disk_selftest.cpp,
    fill_page: xorshift64* seeded by the seed and the slot)."""
    state = (seed ^ ((slot + 1) * 0x9e3779b97f4a7c15 & MASK)) | 1
    words = []
    for _ in range(PAGE_SIZE_4K // 8):
        state ^= state >> 12
        state ^= (state << 25) & MASK
        state ^= state >> 27
        words.append(state * 0x2545F4914F6CDD1D & MASK)
    return struct.pack(f"<{len(words)}Q", *words)


def digest(data):
    """64-bit FNV-1a of @p data, as the self-test prints a slot's."""
    h = 0xcbf29ce484222325
    for b in data:
        h = (h ^ b) * 0x100000001b3 & MASK
    return h


def requests(run):
    """[(kind, slot)] of QEMU's trace of the boot's disk requests, in order, and their statuses."""
    with open(run.qemu_log, errors="replace") as f:
        text = f.read()
    found = []
    for kind, sector, count in REQUEST.findall(text):
        assert int(count) == SECTORS_PER_SLOT and int(sector) % SECTORS_PER_SLOT == 0, \
            f"a {kind} of {count} sectors at sector {sector}: not one whole slot"
        found.append((kind, int(sector) // SECTORS_PER_SLOT))
    return found, [int(s) for s in COMPLETE.findall(text)]


def slot_list(slots):
    return ",".join(str(s) for s in slots)


def test_pages_land_at_the_chosen_slots_and_come_back(booter):
    token = booter.fresh_token()
    rng = random.Random(token)
    slots = rng.randrange(fact(booter.kernel, "swap_min_slots"), 1024)
    chosen = rng.sample(range(slots), 5)
    writes, reads = chosen[:3], chosen[3:]
    seed = rng.getrandbits(64)
    theirs = {r: rng.randbytes(PAGE_SIZE_4K) for r in reads}
    run = booter(test="swapdisk", token=token, swap={"size": slots * PAGE_SIZE_4K, "pages": theirs},
                 args={"write": slot_list(writes), "read": slot_list(reads), "seed": seed})
    run.expect_outcome("success")
    run.expect(rf"^swap disk: virtio-blk at 0x[0-9a-f]+, {slots} slots of {PAGE_SIZE_4K} bytes", "the disk found")

    with open(run.swap_image, "rb") as f:
        image = f.read()
    assert len(image) == slots * PAGE_SIZE_4K
    for slot in range(slots):
        held = image[slot * PAGE_SIZE_4K:(slot + 1) * PAGE_SIZE_4K]
        if slot in writes:
            assert held == page(seed, slot), f"slot {slot} of the image does not hold the page written to it"
        elif slot in reads:
            assert held == theirs[slot], f"slot {slot}, only read, was changed"
        else:
            assert not any(held), f"slot {slot}, never written, holds data (written slots: {writes})"

    done, statuses = requests(run)
    expected = [("write", s) for s in writes] + [("read", s) for s in writes] + [("read", r) for r in reads]
    assert done == expected, f"QEMU saw the requests {done}; the test asked for {expected}"
    assert statuses == [0] * len(expected), f"the device answered with statuses {statuses}"
    halt = symbols.find(booter.kernel, contract.WAIT_FOR_DEVICE)
    woken = [e for e in faultlog.parse_file(run.qemu_log, booter.arch).events
             if e.kind == faultlog.INTERRUPT and halt.address <= e.pc < halt.address + halt.size]
    assert len(woken) >= len(expected), (f"{len(woken)} interrupts taken at the driver's halt for {len(expected)} "
                                         "requests: the CPU did not wait for the disk's interrupt")
    for slot in writes:
        run.expect(rf"^swapdisk: slot {slot} read back as written$", f"slot {slot} read back")
    for slot in reads:
        run.expect(rf"^swapdisk: slot {slot} digest={digest(theirs[slot]):016x}$",
                   f"the digest of slot {slot}, which the host filled")
    run.expect(r"^swapdisk: refused: reading swap slot .*: invalid argument: no such slot", "a slot past the end refused")
    run.expect(r"^swapdisk: refused: writing a swap slot from frame .*: invalid argument: the frame is not page "
               r"aligned", "a misaligned frame refused")


def bad_disk(booter, swap, writes=(3,)):
    """Boots the self-test with the swap disk @p swap (None: no disk) asked to write @p writes;
    returns the Run, which must have ended in a panic, not a hang."""
    run = booter(test="swapdisk", swap=swap, args={"write": slot_list(writes), "seed": 1})
    assert run.outcome() == "failure", f"the boot ended in {run.outcome()}, not in the kernel's panic"
    return run


NO_DISK = r"^PANIC: swapdisk: writing swap slot 0x3: unsupported: no swap disk"
SIZE = 1 << 20


@pytest.mark.parametrize("case, swap, said", [pytest.param(*c, id=c[0]) for c in [
    ("none", None, None),
    ("too small", "small", r"refused: too small: \d+ sectors of 512 bytes hold {few} slots of 4096 bytes; swap "
                           r"needs at least {least} slots"),
    ("read-only", {"size": SIZE, "readonly": True}, r"refused: the device is read-only \(it offers VIRTIO_BLK_F_RO\)"),
    ("legacy", {"size": SIZE, "modern": False}, r"refused: a legacy transport \(version 1\)"),
    ("features refused", {"size": SIZE, "device": "iommu_platform=on"},
     r"refused: feature negotiation failed: the device cleared FEATURES_OK"),
]])
def test_a_refused_disk_is_named_at_boot_and_at_the_request(booter, case, swap, said):
    least = fact(booter.kernel, "swap_min_slots")
    if swap == "small":
        swap = {"size": (least - 1) * PAGE_SIZE_4K}
        said = said.format(few=least - 1, least=least)
    run = bad_disk(booter, swap)
    run.expect(NO_DISK, "the request refused for want of a disk")
    if said is None:
        assert not run.search(r"^swap disk:"), "a 'swap disk:' line without any disk"
    else:
        run.expect(r"^swap disk: virtio-blk at 0x[0-9a-f]+ " + said, f"the {case} disk named at boot")
        with open(run.swap_image, "rb") as f:
            assert not any(f.read()), "a refused disk was written"
    assert requests(run) == ([], []), "a refused disk got requests"


def test_a_write_the_device_fails_is_named(booter):
    token = booter.fresh_token()
    rng = random.Random(token)
    good, bad = rng.sample(range(64, 256), 2)
    run = bad_disk(booter, {"size": SIZE, "failing_slot": bad}, writes=(good, bad))
    run.expect(rf"^PANIC: swapdisk: writing swap slot {bad:#x}: I/O error: the device answered the write request "
               r"with VIRTIO_BLK_S_IOERR \(1\)", "the failed write, its slot and its status")
    assert requests(run) == ([("write", good), ("write", bad)], [0, 1])
    with open(run.swap_image, "rb") as f:
        image = f.read()
    assert image[good * PAGE_SIZE_4K:(good + 1) * PAGE_SIZE_4K] == page(1, good), "the write before it was lost"
