"""The QEMU-log reader that turns a silent death into a one-line diagnosis."""
from pagoda import faultlog

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


def test_triple_fault_chain_is_summarised():
    log = faultlog.parse(TRIPLE)
    assert log.triple_fault
    assert [f.vector for f in log.faults] == [6, 13, 8]
    s = log.summary()
    assert s.startswith("first fault: #UD invalid opcode (vector 6) at RIP 0x105a4a, CPL 0")
    assert "3 exceptions logged (#UD -> #GP -> #DF)" in s
    assert "triple fault" in s


def test_page_fault_is_decoded_and_interrupts_are_not_faults():
    log = faultlog.parse(PAGE_FAULT_AFTER_TIMER)
    assert log.interrupts == 2 and not log.triple_fault
    assert len(log.faults) == 1
    assert log.summary() == ("first fault: #PF page fault (vector 14) at RIP 0x400010, CPL 3, "
                             "CR2 0x401000, error 0x7 (protection violation, write, user)")


def test_gp_selector_error_is_decoded():
    f = faultlog.Fault(vector=13, error=0x62, cpl=0, rip=0x1000, rsp=0, cr2=None)
    assert "error 0x62 (IDT vector 12)" in f.describe()
    f = faultlog.Fault(vector=13, error=0x28, cpl=0, rip=0x1000, rsp=0, cr2=None)
    assert "GDT selector 0x28 (index 5)" in f.describe()


def test_clean_log_has_no_summary():
    assert faultlog.parse("CPU Reset (CPU 0)\nRAX=0\n").summary() == ""
