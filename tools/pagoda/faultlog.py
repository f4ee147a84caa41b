"""Reading QEMU's `-d int,cpu_reset` log: the first fault, and whether the CPU reset itself.

When a kernel triple-faults, hangs in a fault loop or dies before printing anything, its serial
output says nothing useful. QEMU's log still holds every exception the CPU took; this module
turns the first of them into one line a student can act on, e.g.

    first fault: #PF page fault (vector 14) at RIP 0x100bb1, CPL 0, CR2 0x5000083bd000,
    error 0x2 (not-present page, write, supervisor); 3 exceptions logged; then a triple fault

TCG logs each delivered interrupt as (one line, wrapped here):
    `     0: v=0e e=0002 i=0 cpl=0 IP=0008:0000000000100bb1 pc=0000000000100bb1
     SP=0010:0000000000112e40 CR2=00005000083bd000`
v is the vector, e the error code, i=1 for a software INT; CR2 appears for page faults only.
"""
import re
from dataclasses import dataclass

X86_EXCEPTIONS = {
    0: ("#DE", "divide error"), 1: ("#DB", "debug"), 2: ("NMI", "non-maskable interrupt"),
    3: ("#BP", "breakpoint"), 4: ("#OF", "overflow"), 5: ("#BR", "bound range exceeded"),
    6: ("#UD", "invalid opcode"), 7: ("#NM", "device not available"), 8: ("#DF", "double fault"),
    10: ("#TS", "invalid TSS"), 11: ("#NP", "segment not present"), 12: ("#SS", "stack-segment fault"),
    13: ("#GP", "general protection fault"), 14: ("#PF", "page fault"), 16: ("#MF", "x87 error"),
    17: ("#AC", "alignment check"), 18: ("#MC", "machine check"), 19: ("#XM", "SIMD error"),
    20: ("#VE", "virtualization exception"), 21: ("#CP", "control protection"),
}
FIRST_IRQ_VECTOR = 32
PAGE_FAULT = 14
SELECTOR_ERROR_VECTORS = (10, 11, 12, 13)

_INT_LINE = re.compile(
    r"^\s*\d+: v=(?P<v>[0-9a-f]+) e=(?P<e>[0-9a-f]+) i=(?P<i>\d) cpl=(?P<cpl>\d) "
    r"IP=(?P<cs>[0-9a-f]+):(?P<ip>[0-9a-f]+) pc=(?P<pc>[0-9a-f]+) "
    r"SP=(?P<ss>[0-9a-f]+):(?P<sp>[0-9a-f]+)(?: CR2=(?P<cr2>[0-9a-f]+))?")

# Page-fault error code bits, low to high: see arch/x86_64/traps.cpp for the drawn layout.
PF_PRESENT, PF_WRITE, PF_USER, PF_RESERVED, PF_FETCH, PF_KEY, PF_SHADOW = (1 << i for i in range(7))


def describe_page_fault_error(error):
    """The kernel's own wording (arch/x86_64/traps.cpp), so reports and summaries agree."""
    words = ["protection violation" if error & PF_PRESENT else "not-present page",
             "write" if error & PF_WRITE else "read",
             "user" if error & PF_USER else "supervisor"]
    if error & PF_RESERVED:
        words.append("reserved bit set")
    if error & PF_FETCH:
        words.append("instruction fetch")
    if error & PF_KEY:
        words.append("protection key")
    if error & PF_SHADOW:
        words.append("shadow stack")
    return ", ".join(words)


def describe_selector_error(error):
    if error == 0:
        return "no selector"
    index = error >> 3
    if error & 2:
        text = f"IDT vector {index}"
    else:
        text = f"{'LDT' if error & 4 else 'GDT'} selector {error & ~7:#x} (index {index})"
    return text + (", external event" if error & 1 else "")


@dataclass
class Fault:
    vector: int
    error: int
    cpl: int
    rip: int
    rsp: int
    cr2: int | None

    @property
    def mnemonic(self):
        return X86_EXCEPTIONS.get(self.vector, (f"#{self.vector}", "exception"))[0]

    def describe(self):
        mnemonic, name = X86_EXCEPTIONS.get(self.vector, (f"#{self.vector}", "reserved exception"))
        text = f"{mnemonic} {name} (vector {self.vector}) at RIP {self.rip:#x}, CPL {self.cpl}"
        if self.cr2 is not None:
            text += f", CR2 {self.cr2:#x}"
        if self.vector == PAGE_FAULT:
            text += f", error {self.error:#x} ({describe_page_fault_error(self.error)})"
        elif self.vector in SELECTOR_ERROR_VECTORS:
            text += f", error {self.error:#x} ({describe_selector_error(self.error)})"
        return text


@dataclass
class FaultLog:
    faults: list            # exceptions in the order the CPU took them
    triple_fault: bool
    interrupts: int         # hardware interrupts (vector >= 32) delivered

    def summary(self):
        """One line for a failure message; empty when the log shows nothing wrong."""
        if not self.faults and not self.triple_fault:
            return ""
        parts = []
        if self.faults:
            parts.append(f"first fault: {self.faults[0].describe()}")
            if len(self.faults) > 1:
                chain = " -> ".join(f.mnemonic for f in self.faults[:6])
                more = " ..." if len(self.faults) > 6 else ""
                parts.append(f"{len(self.faults)} exceptions logged ({chain}{more})")
        if self.triple_fault:
            parts.append("then a triple fault: the CPU could not deliver an exception and reset")
        return "; ".join(parts)


def parse(text):
    """Parses the text of a `-d int,cpu_reset` log."""
    faults, interrupts = [], 0
    for line in text.splitlines():
        m = _INT_LINE.match(line)
        if not m:
            continue
        vector = int(m["v"], 16)
        if vector >= FIRST_IRQ_VECTOR or m["i"] == "1":
            interrupts += 1
            continue
        faults.append(Fault(vector=vector, error=int(m["e"], 16), cpl=int(m["cpl"]),
                            rip=int(m["pc"], 16), rsp=int(m["sp"], 16),
                            cr2=int(m["cr2"], 16) if m["cr2"] else None))
    return FaultLog(faults=faults, triple_fault="Triple fault" in text, interrupts=interrupts)


def parse_file(path):
    try:
        with open(path, errors="replace") as f:
            return parse(f.read())
    except FileNotFoundError:
        return FaultLog(faults=[], triple_fault=False, interrupts=0)
