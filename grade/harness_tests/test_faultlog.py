"""The exception-log model (tools/pagoda_core/faultlog.py): what QEMU's `-d int` log says the CPU did."""
import os

from pagoda_core import faultlog

TRIPLE = """\
CPU Reset (CPU 0)
check_exception old: 0xffffffff new 0x6
     0: v=06 e=0000 i=0 cpl=0 IP=0008:0000000000105a4a pc=0000000000105a4a SP=0010:0000000000112e30 env->regs[R_EAX]=0000000000112d0a
RAX=0000000000112d0a RBX=0000000000000064
check_exception old: 0xffffffff new 0xd
     1: v=0d e=0062 i=0 cpl=0 IP=0008:0000000000105a4a pc=0000000000105a4a SP=0010:0000000000112e30 env->regs[R_EAX]=0000000000112d0a
check_exception old: 0xd new 0xd
     2: v=08 e=0000 i=0 cpl=0 IP=0008:0000000000105a4a pc=0000000000105a4a SP=0010:0000000000112e30 env->regs[R_EAX]=0000000000112d0a
check_exception old: 0x8 new 0xd
Triple fault
CPU Reset (CPU 0)
"""

PAGE_FAULT_AFTER_TIMER = """\
     0: v=20 e=0000 i=0 cpl=0 IP=0008:0000000000100bb1 pc=0000000000100bb1 SP=0010:0000000000112e40 env->regs[R_EAX]=0
     1: v=20 e=0000 i=0 cpl=3 IP=0023:0000000000400000 pc=0000000000400000 SP=001b:00000000007fff00 env->regs[R_EAX]=0
     2: v=0e e=0007 i=0 cpl=3 IP=0023:0000000000400010 pc=0000000000400010 SP=001b:00000000007fff00 CR2=0000000000401000
"""

# A real page fault as QEMU 7.2 logs it: the line, then the CPU state with the CR3 in use.
PAGE_FAULT_WITH_DUMP = """\
check_exception old: 0xffffffff new 0xe
     0: v=0e e=0002 i=0 cpl=0 IP=0008:ffffffff8010bcb1 pc=ffffffff8010bcb1 SP=0010:ffffffff8011c7f0 CR2=00005000c7220000
RAX=00000000c7220000 RBX=0000000000000066 RCX=0000500000000000 RDX=00005000c7220000
RSI=c01aba1b046d6756 RDI=ffffffff8011864e RBP=ffffffff8011c800 RSP=ffffffff8011c7f0
R8 =0000000000000000 R9 =00000100000001b3 R10=000000000000001e R11=0000000000000002
R12=ffffffff80117c38 R13=0000000007f9f000 R14=ffffffff8011c810 R15=ffffffff8011c8d0
RIP=ffffffff8010bcb1 RFL=00000886 [-OS--P-] CPL=0 II=0 A20=1 SMM=0 HLT=0
ES =0010 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
CS =0008 0000000000000000 ffffffff 00af9a00 DPL=0 CS64 [-R-]
TR =0028 ffffffff801289b0 00000067 00008900 DPL=0 TSS64-avl
GDT=     ffffffff80128a20 00000037
IDT=     ffffffff80128a60 00000fff
CR0=80010011 CR2=00005000c7220000 CR3=000000000012e000 CR4=00000020
DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000
CCS=8373630c63910000 CCD=06e6c618c7220000 CCO=SHLL
EFER=0000000000000d00
"""

# What `int $0x20` looks like: the timer's vector, but i=1 (software).
SOFTWARE_TICKS = "".join(
    f"     {i}: v=20 e=0000 i=1 cpl=0 IP=0008:ffffffff80114af0 pc=ffffffff80114af0 SP=0010:ffffffff8011b880 "
    "env->regs[R_EAX]=0000000000000000\n" for i in range(5))

# QEMU 7.2, qemu-system-aarch64 -M virt -cpu cortex-a57 -d int: a data abort, an SVC and a
# breakpoint, an undefined instruction, and timer IRQs (captured from small test programs).
AARCH64 = """\
Taking exception 4 [Data Abort] on CPU 0
...from EL1 to EL1
...with ESR 0x25/0x96000010
...with FAR 0xdead0000
...with ELR 0x4008002c
...to EL1 PC 0x40080a00 PSTATE 0x3c5
Taking exception 2 [SVC] on CPU 0
...from EL1 to EL1
...with ESR 0x15/0x56000042
...with ELR 0x40080018
...to EL1 PC 0x40080a00 PSTATE 0x3c5
Exception return from AArch64 EL1 to AArch64 EL1 PC 0x40080018
Taking exception 7 [Breakpoint] on CPU 0
...from EL1 to EL1
...with ESR 0x3c/0xf2000003
...with ELR 0x40080018
...to EL1 PC 0x40080a00 PSTATE 0x3c5
Taking exception 5 [IRQ] on CPU 0
...from EL1 to EL1
...with ESR 0x0/0x0
...with ELR 0x40080048
...to EL1 PC 0x40080a80 PSTATE 0x3c5
Exception return from AArch64 EL1 to AArch64 EL1 PC 0x40080048
Taking exception 5 [IRQ] on CPU 0
...from EL1 to EL1
...with ESR 0x0/0x0
...with ELR 0x40080048
...to EL1 PC 0x40080a80 PSTATE 0x3c5
Taking exception 1 [Undefined Instruction] on CPU 0
...from EL1 to EL1
...with ESR 0x0/0x2000000
...with ELR 0x8000000
...to EL1 PC 0x40080a00 PSTATE 0x3c5
"""


def test_triple_fault_chain_is_summarised(x86_names):
    log = faultlog.parse(TRIPLE, "x86_64", x86_names)
    assert log.triple_fault
    assert [f.vector for f in log.faults] == [6, 13, 8]
    s = log.summary()
    assert s.startswith("first fault: #UD invalid opcode (vector 6) at RIP 0x105a4a, CPL 0")
    assert "3 exceptions logged (#UD -> #GP -> #DF)" in s
    assert "triple fault" in s


def test_summary_names_the_rip_with_the_symbolizer(x86_names):
    s = faultlog.parse(TRIPLE, "x86_64", x86_names).summary(lambda a: "pagoda::arch::force_triple_fault" if a == 0x105a4a else None)
    assert s.startswith("first fault: #UD invalid opcode (vector 6) at RIP 0x105a4a "
                        "<pagoda::arch::force_triple_fault>, CPL 0")


def test_page_fault_is_decoded_and_interrupts_are_not_faults(x86_names):
    log = faultlog.parse(PAGE_FAULT_AFTER_TIMER, "x86_64", x86_names)
    assert log.interrupts == 2 and not log.triple_fault
    assert len(log.faults) == 1
    assert log.summary() == ("first fault: #PF page fault (vector 14) at RIP 0x400010, CPL 3, "
                             "CR2 0x401000, error 0x7 (protection violation, write, user)")


def test_register_dump_gives_the_root_at_the_fault():
    (fault,) = faultlog.parse(PAGE_FAULT_WITH_DUMP).faults
    assert (fault.vector, fault.error, fault.address, fault.pc, fault.privilege) == \
        (14, 0x2, 0x5000C7220000, 0xFFFFFFFF8010BCB1, 0)
    assert fault.root == 0x12E000
    assert fault.registers["CR0"] == 0x80010011 and fault.registers["EFER"] == 0xD00


def test_software_int_on_the_timer_vector_is_not_a_hardware_interrupt():
    log = faultlog.parse(SOFTWARE_TICKS)
    assert log.interrupts == 0
    assert len(log.software_interrupts()) == 5
    assert log.faults == []


def test_gp_selector_error_is_decoded():
    def gp(error):
        return faultlog.Event(arch="x86_64", kind=faultlog.EXCEPTION, vector=13, mnemonic="#GP",
                              name="general protection fault", pc=0x1000, privilege=0, error=error)
    assert "error 0x62 (IDT vector 12)" in gp(0x62).describe()
    assert "GDT selector 0x28 (index 5)" in gp(0x28).describe()


def test_clean_log_has_no_summary():
    assert faultlog.parse("CPU Reset (CPU 0)\nRAX=0\n").summary() == ""


def test_aarch64_log(aarch64_names):
    log = faultlog.parse(AARCH64, "aarch64", aarch64_names)
    kinds = [(e.kind, e.mnemonic) for e in log.events]
    assert kinds == [("exception", "DABT"), ("software", "SVC"), ("software", "BRK"), ("interrupt", "IRQ"),
                     ("interrupt", "IRQ"), ("exception", "UNDEF")]
    abort = log.faults[0]
    assert (abort.address, abort.error, abort.pc, abort.privilege) == (0xDEAD0000, 0x96000010, 0x4008002C, 1)
    assert abort.root is None  # the AArch64 log has no register dump
    assert log.interrupts == 2
    assert log.summary().startswith("first fault: Data Abort (DABT) at PC 0x4008002c, from EL1, FAR 0xdead0000 "
                                    "(TTBR0 range), ESR 0x96000010 (EC 0x25 data abort, same EL; synchronous external "
                                    "abort, read)")


# Logs of the AArch64 kernel itself, QEMU 7.2 (`./pagoda run --arch aarch64` with -d int,cpu_reset).
AARCH64_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "aarch64")


def aarch64_log(name, names=faultlog.NO_NAMES):
    return faultlog.parse_file(os.path.join(AARCH64_DATA, name + ".log"), "aarch64", names)


def test_aarch64_write_to_an_unmapped_page_in_the_kernels_words(aarch64_names):
    log = aarch64_log("data_abort", aarch64_names)  # test=pf: a write far below any mapping, then the semihosting exit
    assert [(e.kind, e.mnemonic) for e in log.events] == [("exception", "DABT"), ("software", "SEMIHOST")]
    abort = log.faults[0]
    assert (abort.vector, abort.error, abort.address, abort.privilege) == (4, 0x96000044, 0x5000083BD000, 1)
    assert abort.handler == 0xFFFFFFFF80205200   # VBAR_EL1 + 0x200: current EL, SP_ELx, synchronous
    # The kernel prints 'ESR 0x96000044: translation fault at level 0, write' (arch/aarch64/traps.cpp).
    assert "ESR 0x96000044 (EC 0x25 data abort, same EL; translation fault at level 0, write)" in log.summary()
    assert faultlog.describe_abort(0x96000044) == "translation fault at level 0, write"
    # The bits a grader test compares whatever the level: class, WnR and the fault type.
    assert 0x96000047 & faultlog.ESR_FAULT_KIND_MASK == 0x96000044 & faultlog.ESR_FAULT_KIND_MASK
    assert 0x96000004 & faultlog.ESR_FAULT_KIND_MASK != 0x96000044 & faultlog.ESR_FAULT_KIND_MASK


def test_aarch64_semihosting_psci_and_timer_irqs_are_not_faults():
    # QEMU serves a semihosting call (exception 16) and a PSCI call through HVC (11) itself.
    assert [e.mnemonic for e in aarch64_log("psci_power_off").events] == ["UNDEF", "HVC"]
    assert aarch64_log("psci_power_off").software_interrupts()[0].kind == faultlog.SOFTWARE
    ticks = aarch64_log("timer_irqs")
    assert ticks.faults == [] and ticks.interrupts == 5 and ticks.summary() == ""


def test_aarch64_vector_that_faults_on_itself_is_a_storm_called_that():
    # test=triple_fault: VBAR_EL1 = 0, then udf: every exception goes to 0x200, which is not
    # executable, and faults there again.
    log = aarch64_log("vector_loop")
    assert log.faults[0].mnemonic == "UNDEF"
    storm = log.storm(threshold=3)
    assert storm is not None and storm.event.mnemonic == "IABT" and storm.event.pc == storm.event.handler == 0x200
    assert ("the exception vector at 0x200 itself cannot be fetched, so every exception faults again at its own "
            "vector: AArch64's triple fault") in storm.describe()


def test_aarch64_vector_entry_that_cannot_push_is_a_storm_though_far_moves():
    # A kernel running on a stack the live roots do not map (lab 3: a kernel stack reached
    # through TTBR0 after a switch): the vector entry's first store faults at its own PC, with
    # FAR 0x140 lower each time (SP goes down by a TrapFrame per attempt).
    entry = "".join(f"""Taking exception 4 [Data Abort] on CPU 0
...from EL1 to EL1
...with ESR 0x25/0x96000047
...with FAR {0x7f0000007000 - 0x140 * i:#x}
...with ELR 0xffffffff80206204
...to EL1 PC 0xffffffff80206200 PSTATE 0x3c5
""" for i in range(5))
    storm = faultlog.parse(entry, "aarch64").storm(threshold=3)
    assert storm is not None and storm.count == 5, storm
    assert "faults on its own first instructions" in storm.describe()


def test_storm_of_identical_faults_is_diagnosed():
    line = ("     {i}: v=0e e=0010 i=0 cpl=0 IP=0008:0000000000900000 pc=0000000000900000 "
            "SP=0010:ffffffff8011c7f0 CR2=0000000000900000\n")
    text = "".join(line.format(i=i) for i in range(faultlog.STORM_THRESHOLD + 1))
    storm = faultlog.parse(text).storm()
    assert storm is not None and storm.count == faultlog.STORM_THRESHOLD + 1
    assert "code being executed is not mapped (after a root switch?)" in storm.describe()
    # Below the threshold, no storm.
    assert faultlog.parse("".join(line.format(i=i) for i in range(10))).storm() is None


def test_watcher_reads_a_log_in_pieces_and_stops_a_storm(x86_names):
    line = ("     0: v=0e e=0002 i=0 cpl=0 IP=0008:ffffffff8010bcb1 pc=ffffffff8010bcb1 "
            "SP=0010:ffffffff8011c7f0 CR2=00005000c7220000\nRAX=0\n").encode()
    watcher = faultlog.Watcher("x86_64", names=x86_names)
    data = line * (faultlog.STORM_THRESHOLD + 5)
    for i in range(0, len(data), 37):      # lines split between reads
        watcher.feed(data[i:i + 37])
    assert watcher.verdict == "storm"
    message = watcher.describe()
    assert message.startswith(f"exception storm: {faultlog.STORM_THRESHOLD + 1} identical exceptions, the first: "
                              "#PF page fault")
    assert "handler returns to the faulting instruction" in message


def test_watcher_stops_a_log_that_is_too_large():
    watcher = faultlog.Watcher("x86_64", max_bytes=1000)
    tick = b"     0: v=20 e=0000 i=0 cpl=0 IP=0008:1 pc=1 SP=0010:2 env->regs[R_EAX]=0\n"
    while watcher.feed(tick) is None:
        pass
    assert watcher.verdict == "size"
    assert watcher.describe().startswith("exception log exceeded 1000 bytes (0 exceptions, ")


def test_cut_keeps_the_head_and_the_tail(tmp_path):
    path = tmp_path / "qemu.log"
    lines = [f"line {i}\n" for i in range(100000)]
    path.write_text("".join(lines))
    dropped = faultlog.cut_file(str(path), 1000, 1000)
    text = path.read_text()
    assert dropped > 0 and os.path.getsize(path) < 2200
    assert text.startswith("line 0\n") and text.endswith("line 99999\n")
    assert f"[pagoda: {dropped} bytes in the middle cut by the grader]" in text
    assert "the log was cut" in faultlog.parse(text + TRIPLE).summary()


def test_read_ends_reads_a_storm_s_two_ends_and_leaves_the_file(tmp_path):
    """fault-why reads a storming kernel's log (~100 MB/s) by its two ends, cut as cut_file cuts,
    never the whole file, and leaves the file as it was; a small log is read whole."""
    path = tmp_path / "qemu.log"
    whole = A64_USER_COPY_FAULT * 4000
    path.write_text(whole)
    text = faultlog.read_ends(str(path), 1000, 1000, "fault-why")
    assert path.read_text() == whole
    assert len(text) < 2200 and "bytes in the middle cut by fault-why]" in text
    log = faultlog.parse(text, "aarch64")
    assert log.faults and all(f.pc == 0xffffffff8022b3e8 and f.address == 0xb59bdf0f2946 for f in log.faults)
    assert "the log was cut" in log.summary()
    assert faultlog.read_ends(str(path), len(whole), 0, "fault-why") == whole


def test_a_line_cut_by_the_kill_is_left_out():
    """QEMU killed mid-line: 'CR2=00005000c72' is not a CR2."""
    whole = PAGE_FAULT_AFTER_TIMER
    cut = whole + "     3: v=0e e=0002 i=0 cpl=0 IP=0008:ffffffff8010bcb1 pc=ffffffff8010bcb1 SP=0010:ffffffff8011c7f0 CR2=00005000c72"
    assert len(faultlog.parse(cut).faults) == len(faultlog.parse(whole).faults) == 1


# The kernel's switch to its own roots (arch/aarch64/mmu.cpp, load_kernel_roots), as clang 14
# emits it: dsb ishst; msr ttbr1_el1, x0; msr ttbr0_el1, x1; isb; mrs x8, sctlr_el1;
# orr x8, x8, #WXN; msr sctlr_el1, x8; then the isb QEMU first fetches through the new roots.
SWITCH_WORDS = [0xD5033A9F, 0xD5182020, 0xD5182001, 0xD5033FDF, 0xD5381008, 0xB26D0108, 0xD5181008]


def instruction_abort(pc):
    return faultlog.Event(arch="aarch64", kind=faultlog.EXCEPTION, vector=3, mnemonic="IABT",
                          name="Prefetch Abort", pc=pc, privilege=1, error=0x86000004, address=pc)


def words_before(pc, words):
    """A words_at() over an image holding @p words right before @p pc."""
    image = {pc - 4 * (len(words) - i): w for i, w in enumerate(words)}
    def words_at(va, count):
        if va + 4 * count > pc:
            return None
        return [image.get(va + 4 * i, 0xD503201F) for i in range(count)]  # nops further back
    return words_at


def test_abort_after_ttbr0_switch_names_the_low_kernel():
    """Reintroduced (a): a kernel still running through TTBR0 when the switch empties it."""
    pc = 0x40219A34
    text = faultlog.after_root_switch(instruction_abort(pc), words_before(pc, SWITCH_WORDS), lambda a: None)
    assert text.startswith("this is 5 instructions after a switch of roots, `msr TTBR0_EL1` at 0x40219a20")
    assert "runs at 0x40219a34, in TTBR0_EL1's range" in text
    assert "the one TTBR0_EL1 holds now, does not map it (translation fault at level 0)" in text
    assert "the TLB served the old translations" in text
    assert "link and run it high" in text


def test_abort_after_ttbr1_switch_names_the_write_to_ttbr1():
    """Reintroduced (b): TTBR1 loaded with a table without the kernel's entries; the nearer write
    (to TTBR0) is not the one that unmapped the kernel."""
    pc = 0xFFFFFFFF80219A14
    text = faultlog.after_root_switch(instruction_abort(pc), words_before(pc, SWITCH_WORDS))
    assert "6 instructions after a switch of roots, `msr TTBR1_EL1` at 0xffffffff802199fc" in text
    assert "in TTBR1_EL1's range" in text and "TTBR1 must only ever hold the kernel's root" in text


def test_permission_abort_after_a_switch_names_the_text_permissions():
    """A root that maps the kernel text rwx: the fetch after the switch (which turns WXN on) is a
    permission fault, never 'does not map it'."""
    pc = 0x40219A34
    abort = instruction_abort(pc)
    abort.error = 0x8600000F  # permission fault at level 3
    text = faultlog.after_root_switch(abort, words_before(pc, SWITCH_WORDS), lambda a: None)
    assert text.startswith("the kernel text at 0x40219a34 is mapped but not executable at EL1")
    assert "permission fault at level 3" in text and "writable (rwx)" in text
    assert "does not map" not in text and "`msr TTBR0_EL1` at 0x40219a20" in text


def test_abort_without_a_switch_before_it_is_not_blamed_on_one():
    pc = 0x40219A34
    assert faultlog.after_root_switch(instruction_abort(pc), words_before(pc, [0xD503201F] * 7)) is None
    assert faultlog.after_root_switch(instruction_abort(pc), lambda va, n: None) is None
    data_abort = instruction_abort(pc)
    data_abort.error = 0x96000004  # a data abort at its own PC is another story
    assert faultlog.after_root_switch(data_abort, words_before(pc, SWITCH_WORDS)) is None


def test_msr_ttbr_encodings_are_the_kernels(aarch64_kernel):
    """The encodings the switch is recognised by are the ones in the AArch64 kernel's text."""
    from pagoda_core import kernelinfo
    elf = kernelinfo.elf(aarch64_kernel)
    text = elf.section(".text")
    words = set(elf.words_at(text.addr, text.size // 4))
    for base in faultlog.A64_MSR_TTBR:
        assert any(base + rt in words for rt in range(32)), f"no msr {faultlog.A64_MSR_TTBR[base]} in the kernel"


# Lab 3's first failure without the pre-switch check: CR3 loaded with a root that has no kernel
# half; the very next instruction fetch faults (CR2 = RIP), and the #PF handler cannot be reached.
CODE_GONE_AFTER_SWITCH = """\
     0: v=0e e=0010 i=0 cpl=0 IP=0008:ffffffff80125e07 pc=ffffffff80125e07 SP=0010:ffffffff80160f00 CR2=ffffffff80125e07
     1: v=08 e=0000 i=0 cpl=0 IP=0008:ffffffff80125e07 pc=ffffffff80125e07 SP=0010:ffffffff80160f00 env->regs[R_EAX]=0
"""


def test_kernel_code_gone_after_a_root_switch_is_named():
    s = faultlog.parse(CODE_GONE_AFTER_SWITCH).summary()
    assert "the kernel could not fetch its own next instruction: the root it had just loaded" in s
    assert "a new root without the kernel half" in s
    # a user-mode fetch fault, or a data fault, is not this
    assert "could not fetch its own" not in faultlog.parse(PAGE_FAULT_AFTER_TIMER).summary()


# Lab 8's CPU 1 never wrote its LSTAR: `syscall` from user mode jumps to 0 in ring 0 and the fetch
# faults there, with the user's return address in RCX and its RFLAGS (bit 1 set) in R11.
SYSCALL_TO_NULL = """\
     0: v=0e e=0010 i=0 cpl=0 IP=0008:0000000000000000 pc=0000000000000000 SP=0018:00007ffffffffe80 CR2=0000000000000000
RAX=0000000000000001 RBX=0000000000000000 RCX=0000000000400e9c RDX=0000000000000000
R8 =0000000000000000 R9 =0000000000000000 R10=0000000000000000 R11=0000000000000202
CR0=80010011 CR2=0000000000000000 CR3=0000000000405000 CR4=00300020
"""


def test_a_system_call_through_an_entry_never_written_is_named_not_a_root():
    """The log's summary (fault-why's and the grader's) says the LSTAR cause, which the register
    dump shows, instead of the generic "the root it had just loaded" that fits a fetch fault."""
    s = faultlog.parse(SYSCALL_TO_NULL).summary()
    assert "MSR LSTAR) was never written" in s and "0x400e9c" in s
    assert "the root it had just loaded" not in s


def test_the_same_fault_once_in_each_of_many_processes_is_no_storm():
    # Lab 6: every child of a fork bomb writes the same copy-on-write stack page once, at the
    # same PC and FAR (AArch64's log does not name the root); system calls come between them.
    fault = """Taking exception 4 [Data Abort] on CPU 0
...from EL0 to EL1
...with ESR 0x24/0x9200004f
...with FAR 0xfffffffffb10
...with ELR 0x40001c
...to EL1 PC 0xffffffff80206200 PSTATE 0x3c5
"""
    svc = """Taking exception 2 [SVC] on CPU 0
...from EL0 to EL1
...with ESR 0x15/0x56000000
...with ELR 0x400040
...to EL1 PC 0xffffffff80206400 PSTATE 0x3c5
"""
    n = faultlog.STORM_THRESHOLD * 2
    assert faultlog.parse((fault + svc) * n, "aarch64").storm() is None
    watcher = faultlog.Watcher("aarch64")
    assert watcher.feed(((fault + svc) * n).encode()) is None
    # Back to back, the same fault is a storm.
    assert faultlog.parse(fault * n, "aarch64").storm().count == n


A64_USER_COPY_FAULT = """Taking exception 4 [Data Abort] on CPU 0
...from EL1 to EL1
...with ESR 0x25/0x96000044
...with FAR 0xb59bdf0f2946
...with ELR 0xffffffff8022b3e8
...to EL1 PC 0xffffffff8020b200 PSTATE 0x4003c5
Exception return from AArch64 EL1 to AArch64 EL1 PC 0xffffffff8022b3f4
Exception return from AArch64 EL1 to AArch64 EL0 PC 0x400cdc
"""


def test_a_cut_never_splits_an_exceptions_lines(tmp_path):
    """Cut in the middle of an exception's lines, the rest of it would read as a fault at PC 0
    (seen: lab 3's fuzz boot failing "the random system calls made the kernel fault: Data Abort
    (DABT) at PC 0x0, from EL1"): each cut falls where an exception begins."""
    path = tmp_path / "qemu.log"
    whole = A64_USER_COPY_FAULT * 4000
    for head in range(900, 1300, 37):   # cuts at many places inside an exception
        path.write_text(whole)
        assert faultlog.cut_file(str(path), head, head + 11) > 0
        faults = faultlog.parse(path.read_text(), "aarch64").faults
        assert faults and all(f.pc == 0xffffffff8022b3e8 and f.address == 0xb59bdf0f2946 for f in faults), head


def _a64_abort(far, elr, esr="0x96000004", source="EL1"):
    return (f"Taking exception 4 [Data Abort] on CPU 0\n...from {source} to EL1\n...with ESR 0x25/{esr}\n"
            f"...with FAR {far}\n...with ELR {elr}\n...to EL1 PC 0xffffffff8020b200 PSTATE 0x4003c5\n")


A64_IRQ = ("Taking exception 5 [IRQ] on CPU 0\n...from EL1 to EL1\n...with ESR 0x0/0x0\n"
           "...with ELR 0xffffffff80230000\n...to EL1 PC 0xffffffff8020b480 PSTATE 0x4003c5\n")


def test_a_loop_of_a_few_kernel_faults_is_a_storm():
    """Issue 55: the device registers left identity-mapped only (lab2/devices_identity carried into
    lab 3, AArch64): every interrupt's handler faults on the UART, whose fault report touches it
    again; QEMU's log shows 12 aborts at the UART and one on the stack, over and over, until the
    log's cap (459 s for one grade). Never 64 identical in a row: the loop rule ends it."""
    uart = _a64_abort("0x9000018", "0xffffffff802387ac")
    stack = _a64_abort("0xffffffff8035df00", "0xffffffff80221c2c", esr="0x96000047")
    loop = (uart * 12 + stack) * 30
    storm = faultlog.parse(loop, "aarch64").storm()
    assert storm is not None and storm.kinds == 2 and storm.count == 13 * 30     # (the whole loop)
    assert storm.event.address == 0x9000018
    said = storm.describe()
    assert said.startswith("exception storm: 390 exceptions in kernel mode in a row, 2 "
                           "different ones repeating, the most frequent: Data Abort")
    assert "a fault handler that faults again" in said
    watcher = faultlog.Watcher("aarch64")
    assert watcher.feed(loop.encode()) and watcher.verdict == "storm"
    # A kernel that makes progress: its timer's interrupt comes between; or faults from user mode
    # (a program's loop over a few pages it keeps losing: lab 7's small caps); or more kinds.
    assert faultlog.parse((uart * 12 + stack + A64_IRQ) * 30, "aarch64").storm() is None
    user = [_a64_abort(f"0x{0x400000 + 4096 * i:x}", "0x400100", source="EL0") for i in range(3)]
    assert faultlog.parse("".join(user) * 200, "aarch64").storm() is None
    many = [_a64_abort(f"0x{0x9000000 + 8 * i:x}", "0xffffffff802387ac") for i in range(faultlog.CYCLE_KINDS + 1)]
    assert faultlog.parse("".join(many) * 100, "aarch64").storm() is None
