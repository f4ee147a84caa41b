"""fault-why on AArch64.

  stopped in aarch64_trap (a breakpoint on it, or panic_end which it calls): its TrapFrame
      (the `frame` argument, or the stack pointer aarch64_trap_entry passed) gives ESR, FAR,
      ELR, SPSR and SP; an abort's syndrome is decoded (class, fault status and level, WnR) and
      FAR is walked through the root that translates it (TTBR0 or TTBR1), then compared with
      what the access needed;
  stopped anywhere else (Ctrl-C or a hardware breakpoint in an exception loop): ESR_EL1,
      ELR_EL1 and FAR_EL1 as they are, and whether the PC, the vector VBAR_EL1 points at and the
      stack are usable; an exception taken inside the vector table is a loop.
With ./pagoda gdb --int-log, QEMU's log says how the machine got there. The last line is a
verdict. What the kernel publishes (roots, fix-up table, stacks, names) and QEMU's log come from
the look (faults.Look), each read once.
"""

from pagoda_pt import contract as C, diagnose
from pagoda_pt.format import ADDR, format_walk
from pagoda_pt.diagnose import (RANK_NOT_LIVE_USER_ADDRESS, UNRESOLVED, FaultRecord, KernelAccess, Roots, function_name,
                                kernel_touched_unmapped, mapped_since, never_given, not_live_user_address, on_behalf_findings, user_trap_line,
                                walk_allows_now)
from pagoda_pt.aarch64 import TTBR_BADDR_MASK
from pagoda_pt.isa import AARCH64
from pagoda_pt.diagnose_aarch64 import (RANK_USER_CODE_AT_EL1, USER_COPY_ROUTINES, in_kernel_half, user_code_at_el1,
                                        wxn_refused_fetch)

from pagoda_pt.verdicts import Evidence
from pagoda_pt.verdicts import explain as explain_evidence

from . import faults, target
from .paging import symbol_of, walk_address

# Field offsets of TrapFrame (arch/aarch64/trap_frame.hpp), used only without debug types.
TRAP_FRAME_OFFSETS = {"sp": 248, "elr": 256, "spsr": 264, "esr": 272, "far": 280, "kind": 288}
VECTOR_TYPES = ("synchronous exception", "IRQ", "FIQ", "SError")
PSTATE_PAN = 1 << 22
SYNC_FROM_EL1 = 0x200     # VBAR_EL1 + this: the vector of a synchronous exception at EL1
VECTOR_TABLE_BYTES = 0x800


def read_trap_frame(addr):
    """dict of the TrapFrame fields fault-why uses, at @p addr (virtual)."""
    return faults.read_trap_frame(addr, C.AARCH64.TRAP_FRAME, TRAP_FRAME_OFFSETS)


def abort_access(esr, faultlog):
    """(write, fetch) of the abort whose syndrome is @p esr: a data abort's WnR (not for cache
    maintenance), or an instruction fetch."""
    data = faultlog.esr_class(esr) in faultlog.A64_DATA_ABORTS
    return data and bool(esr & faultlog.ISS_WNR) and not esr & faultlog.ISS_CM, not data


def abort_verdict(esr, walk, spsr, faultlog, names, far=None, sctlr=None):
    """Sentences comparing an abort's syndrome with today's walk of FAR."""
    write, fetch = abort_access(esr, faultlog)
    kind = (esr & 0x3F) >> 2
    record = FaultRecord("FAR", far, walk, "the tables", (spsr >> 2 & 3) == 0,
                         far is not None and in_kernel_half(far), "TLBI, or a missing DSB before it")
    if kind == 1:  # translation fault
        return [mapped_since(record) or kernel_touched_unmapped(record, "ELR") or
                "FAR %#x is not mapped in the tables (%s)" % (far, walk.stop_reason)]
    if kind == 2:
        return ["an access flag fault: the entry has AF=0 (Pagoda sets AF in every entry it makes; "
                "TCR_EL1.HA is off, so the hardware never does)"]
    if kind == 0:
        return ["an address size fault: a table or output address does not fit the physical "
                "address size (TCR_EL1.IPS), or bits above it are set"]
    if kind != 3:
        return [faultlog.describe_abort(esr, names)]
    if not walk.mapped:
        return ["a permission fault, but the walk now stops (" + walk.stop_reason +
                "): the tables changed since the fault"]
    reasons, perms = [], walk.perms
    user = (spsr >> 2 & 3) == 0
    if write and not perms.write:
        reasons.append(AARCH64.denial("read_only"))
    wx = wxn_refused_fetch(walk, far, sctlr) if fetch and user and far is not None else None
    if wx:
        reasons.append(wx)
    elif fetch and not perms.execute:
        reasons.append(AARCH64.denial("no_execute"))
    if user and not perms.user:
        reasons.append(AARCH64.denial("supervisor"))
    if not user and perms.user and not fetch and spsr & PSTATE_PAN:
        reasons.append(AARCH64.denial("kernel_touch_user"))
    if not user and perms.user and fetch:
        reasons.append(AARCH64.denial("kernel_fetch_user"))
    if not reasons:
        reasons.append(walk_allows_now(record))
    return reasons


def process_label(look):
    """"process 'probe' (pid 3, root 0x...)" for the live TTBR0 root when the kernel published it
    as a process's, else "the process in TTBR0's root 0x..."."""
    root = look.regs.get("ttbr0_el1")
    root = None if root is None else root & TTBR_BADDR_MASK & ~0xFFF
    try:
        table = look.roots[0]
    except Exception:  # noqa: BLE001 - a label only: never let it break the report
        table = None
    return diagnose.process_label(table, root, "TTBR0's root %s" % ("%#x" % root if root is not None else "?"))


def user_verdicts(esr, walk, far, sentences):
    """The verdicts of an abort taken from EL0: the program's doing, which the kernel answers by
    ending the process. A translation fault the walk does not map is an address the program was
    never given (diagnose.never_given)."""
    given = never_given(FaultRecord("FAR", far, walk, "the process's address space", True, in_kernel_half(far))) \
        if (esr & 0x3F) >> 2 == 1 and far is not None else None
    return [given] if given else sentences


RANK_KERNEL_STACK = 1     # an abort on a kernel stack (its guard, a page not mapped): before what the walk says of it


def _from_trap_frame(look, level, addr, fault):
    tf = read_trap_frame(addr)
    esr, spsr, paging, faultlog = tf["esr"], tf["spsr"], look.regs, look.faultlog
    names = look.names    # the kernel's names of the classes and fault statuses
    from_el = spsr >> 2 & 3
    mode = "user" if from_el == 0 else "kernel"
    yield "trap frame at %s (%s, frame #%d)" % (ADDR % addr, C.AARCH64.TRAP, level)
    if tf["kind"] & 3:
        yield "  exception  %s in %s mode (EL%d)" % (VECTOR_TYPES[tf["kind"] & 3], mode, from_el)
    else:
        ec = faultlog.esr_class(esr)
        yield "  exception  %s (EC %#04x) in %s mode (EL%d)" % (names.class_name(ec, "class %#x" % ec), ec,
                                                               mode, from_el)
    who = process_label(look) if from_el == 0 else None
    if who:
        yield user_trap_line(who)
    symbol = symbol_of(tf["elr"])
    yield "  ELR        %s%s" % (ADDR % tf["elr"], "  " + symbol if symbol else "")
    yield "  SP         %s" % (ADDR % tf["sp"])
    findings = []      # (rank, sentence): causes that explain the abort's own sentences
    if from_el != 0 and not in_kernel_half(tf["elr"]):
        # Kernel mode on a user address: was the CPU running the process's own code at EL1?
        at_el1 = user_code_at_el1(spsr, tf["elr"], walk_address("aarch64", paging, tf["elr"]), process_label(look))
        if at_el1:
            findings.append((RANK_USER_CODE_AT_EL1, at_el1))
    if tf["kind"] & 3 or faultlog.esr_class(esr) not in faultlog.A64_ABORTS:
        yield "  ESR        %#010x" % esr
        if findings:
            yield "verdict: " + min(findings)[1]
            return
        yield "verdict: not an abort: the report before the panic names it (%s)" % (
            VECTOR_TYPES[tf["kind"] & 3] if tf["kind"] & 3 else names.class_name(faultlog.esr_class(esr), "?"))
        return
    yield "  ESR        %#010x: %s" % (esr, faultlog.describe_abort(esr, names))
    if esr & faultlog.ISS_FNV:
        yield "verdict: FAR is not valid for this abort: nothing to walk (%s)" % faultlog.describe_abort(esr, names)
        return
    far = tf["far"]
    ttbr = "TTBR1_EL1" if far >> 55 & 1 else "TTBR0_EL1"
    yield "  FAR        %s  (the address that faulted; %s's range)" % (ADDR % far, ttbr)
    reason = target.paging_off_reason("aarch64", paging)
    if reason:
        yield "verdict: " + reason
        return
    result = walk_address("aarch64", paging, far)
    yield "walk of FAR through %s (the current tables):" % ttbr
    yield format_walk(result)
    sentences = abort_verdict(esr, result, spsr, faultlog, names, far, paging.get("sctlr_el1"))
    if from_el != 0:
        access = _kernel_access(look, tf, esr)
        findings += on_behalf_findings(access)
        stack = explain_evidence(Evidence(address=far, access="wrote to" if access.write else "read",
                                          where=symbol.split(" in section ")[0] or None, stacks=look.stacks,
                                          root=None if result.mapped else "the tables %s points to" % ttbr))
        if stack:
            findings.append((RANK_KERNEL_STACK, stack))
        if not result.mapped and not access.kernel_half:
            not_live = _not_live(look, far, access.write, access.user_end)
            if not_live:
                findings.append((RANK_NOT_LIVE_USER_ADDRESS, not_live))
    if findings:
        # The cause comes first; what the walk found follows it as evidence.
        yield "what the walk of FAR found: " + "; ".join(sentences)
        yield "verdict: " + min(findings)[1]
        return
    if who:
        write, fetch = abort_access(esr, faultlog)
        fault.update(user=True, address=far, write=write, fetch=fetch, mapped=result.mapped,
                     perms=result.perms.rwx() if result.mapped else None, who=who, pc=tf["elr"], sp=tf["sp"])
        sentences = ["%s in EL0: %s; %s" % (who, sentence, UNRESOLVED)
                     for sentence in user_verdicts(esr, result, far, sentences)]
    yield "verdict: " + "; also: ".join(sentences)


def _kernel_access(look, tf, esr):
    """What pagoda_pt.diagnose.on_behalf_findings needs about an abort taken at EL1: which routine
    faulted, on which half, the fix-up table, the kernel's user_end and the system call being run."""
    return KernelAccess(pc=tf["elr"], function=function_name(symbol_of(tf["elr"])), address=tf["far"],
                        write=abort_access(esr, look.faultlog)[0], kernel_half=in_kernel_half(tf["far"]),
                        user_end=look.user_end, copy_routines=USER_COPY_ROUTINES, fixups=look.fixups,
                        syscall=look.syscall, process=process_label(look))


def _not_live(look, far, write, user_end):
    """pagoda_pt.diagnose.not_live_user_address for FAR, walked in every root the kernel published
    (TTBR0's table is the active one)."""
    root = look.regs.get("ttbr0_el1")
    if root is None:
        return None
    try:
        with target.physical_memory() as read_phys:
            roots = Roots("aarch64", read_phys, look.regs, root & TTBR_BADDR_MASK & ~0xFFF, look.roots[0],
                          look.pa_bits)
            return not_live_user_address(roots, far, user_end, write, "address (FAR)")
    except Exception:  # noqa: BLE001 - an addition: never lose fault-why's own lines to it
        return None


def _check(label, walk, need_write=False, need_exec=False):
    text = "  %-5s %s " % (label, ADDR % walk.va)
    if not walk.mapped:
        return text + "NOT MAPPED: " + walk.stop_reason
    problems = []
    if need_write and not walk.perms.write:
        problems.append("read-only (the exception frame is pushed here)")
    if need_exec and not walk.perms.execute:
        problems.append("not executable")
    if problems:
        return text + "PROBLEM: " + "; ".join(problems)
    return text + "ok -> PA " + ADDR % walk.pa + " " + walk.perms.rwx()


SVC64_CLASS = 0x15     # ESR_EL1.EC of an SVC from AArch64 state


def _system_call(tf):
    """Whether trap frame @p tf is a synchronous SVC taken from EL0: a system call."""
    return not tf["kind"] & 3 and tf["spsr"] >> 2 & 3 == 0 and tf["esr"] >> 26 & 0x3F == SVC64_CLASS


def _without_trap_frame(look):
    paging, faultlog = look.regs, look.faultlog
    yield "no trap frame: %s is not on the stack; looking at the CPU as it is" % C.AARCH64.TRAP
    # (QEMU 7.2's gdbstub spells VBAR_EL1 "VBAR", as it does SCTLR_EL1 "SCTLR".)
    names = {"pc": "pc", "sp": "sp", "ELR_EL1": "elr", "ESR_EL1": "esr", "FAR_EL1": "far", "VBAR": "vbar"}
    regs = {key: target.register(name) for name, key in names.items()}
    pc = regs["pc"] or 0
    symbol = symbol_of(pc)
    yield "  PC         %s%s" % (ADDR % pc, "  " + symbol if symbol else "")
    if regs["esr"] is not None:
        ec = faultlog.esr_class(regs["esr"])
        names = look.names
        decoded = faultlog.describe_abort(regs["esr"], names) if ec in faultlog.A64_ABORTS else \
            names.class_name(ec, "class %#x" % ec)
        yield "  ESR_EL1    %#010x: %s (the last exception taken)" % (regs["esr"], decoded)
    for key, label in (("elr", "ELR_EL1"), ("far", "FAR_EL1"), ("vbar", "VBAR_EL1")):
        if regs[key] is not None:
            yield "  %-10s %s" % (label, ADDR % regs[key])
    reason = target.paging_off_reason("aarch64", paging)
    if reason:
        yield "verdict: " + reason
        return
    yield "what delivering an exception needs (walked with the current TTBR0 %s, TTBR1 %s):" % tuple(
        "%#x" % paging[k] if paging.get(k) is not None else "?" for k in ("ttbr0_el1", "ttbr1_el1"))
    with target.physical_memory() as read_phys:
        def w(va):
            return walk_address("aarch64", paging, va, read_phys=read_phys)
        lines = [_check("PC", w(pc), need_exec=True)]
        if regs["vbar"] is not None:
            lines.append(_check("VBAR", w(regs["vbar"] + SYNC_FROM_EL1), need_exec=True))
        if regs["sp"]:
            lines.append(_check("stack", w(regs["sp"] - 16), need_write=True))
    yield from lines
    verdicts = []
    bad = [line.split()[0] for line in lines if "NOT MAPPED" in line or "PROBLEM" in line]
    if bad:
        verdicts.append("%s not usable: an exception there faults again, at the same vector, forever "
                        "(AArch64's triple fault)" % ", ".join(bad))
    if regs["elr"] is not None and regs["vbar"] is not None and 0 <= regs["elr"] - regs["vbar"] < VECTOR_TABLE_BYTES:
        verdicts.append("ELR_EL1 is inside the vector table: the last exception was taken while entering the "
                        "vectors, an exception loop")
    if not verdicts:
        verdicts.append("nothing is wrong that I can see: the PC, the vectors and the stack are usable")
    yield "verdict: " + "; ".join(verdicts)


def explain(look):
    """(the lines fault-why prints on AArch64, ending with one verdict; for an abort from EL0 what
    the kernel's fault decision needs: {user, address, write, fetch, mapped, perms, who}, else None),
    from @p look (faults.Look)."""
    found = faults.find_trap_frame(C.AARCH64.TRAP, "sp")
    fault = {}
    if found is not None and _system_call(read_trap_frame(found[1])):
        # A system call under way (SVC from EL0) is no fault: the CPU as it is, as with no frame.
        lines = list(_without_trap_frame(look))
        lines[0] = ("trap frame at %s (%s, frame #%d) is a system call from EL0 (SVC), not a fault; "
                    "looking at the CPU as it is" % (ADDR % found[1], C.AARCH64.TRAP, found[0]))
    else:
        lines = list(_without_trap_frame(look) if found is None else _from_trap_frame(look, *found, fault))
    return lines, (fault or None)
