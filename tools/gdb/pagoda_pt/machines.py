"""The QEMU machine each ISA's kernel runs on, once: what the launcher (pagoda_core/qemu.py) starts
and what the grader (pagoda_grade/witness.py) knows of the machine's RAM and devices. Each Isa
(isa.py) names its machine (Isa.machine); nothing looks a machine up by the ISA's name.

These are facts about QEMU's boards, not about the kernel. Pure data: nothing here imports gdb.
"""
from __future__ import annotations

from dataclasses import dataclass

from .model import PAGE_SIZE_4K


@dataclass(frozen=True)
class Machine:
    binary: str                    # the QEMU binary
    args: tuple                    # the board (-M) and its devices
    ram_base: int = 0              # guest-physical address of the first byte of -m's RAM
    # (physical base, size, what) of the devices the kernel must map to work.
    devices: tuple = ()
    # How QEMU tells the kernel its RAM ("pvh": the start_info memory map; "fdt": the device
    # tree); the grader's usable_ram() reads the same.
    boot_map: str = ""
    # Frames the kernel takes while it boots, before any self-test runs: its page tables (lab 2
    # gives each of the 256 kernel-half top entries a table up front, plus the image, window and
    # MMIO tables). Measured: at the smallest RAM that boots, x86_64 prints "vm: kernel page
    # table ... (264 frames of tables)"; with one MiB less, vm::init panics "no memory" (the
    # test of kernelinfo.minimum_memory boots both).
    boot_frames: int = 264
    # RAM at ram_base the kernel never takes frames from: x86_64's first MiB (kLowMemoryEnd),
    # and on AArch64 the MiB where QEMU puts the device tree (the memory map marks it reserved).
    low_reserved: int = 1 << 20
    # What an exit status of 0 means on this machine, for qemu.describe_exit (a triple fault is
    # told apart by its log line).
    reset_exit: str = "QEMU quit (by the user, or a reset)"
    # The -cpu models the kernel runs on, best first; qemu.cpu_model() takes the first that the
    # installed QEMU has. Empty: args names the CPU.
    cpu_models: tuple = ()


# microvm: RAM from 0; the local APIC. The kernel learns its RAM from the PVH start_info's memory
# map (QEMU's firmware keeps parts of the first MiB; QEMU 10 also the top 4 KiB).
MICROVM = Machine(
    binary="qemu-system-x86_64",
    # The CPU model QEMU calls qemu64, plus what keeps kernel and user apart (lab 3): SMEP, SMAP
    # and UMIP, which the kernel turns on when CPUID has them (arch/x86_64/user_mode.cpp). TCG
    # emulates all three from QEMU 7.2; QEMU 6.2 (Ubuntu 22.04) has no UMIP and says so
    # (qemu.missing_cpu_features), and its boots leave it out (qemu.machine_args).
    args=("-M", "microvm", "-cpu", "qemu64,+smep,+smap,+umip",
          "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"),
    ram_base=0,
    devices=((0xFEE0_0000, PAGE_SIZE_4K, "the local APIC"),),
    boot_map="pvh",
)

# virt: RAM at 1 GiB; the PL011 UART and the GICv2's distributor and CPU interface (64 KiB each,
# as the kernel maps them). The kernel learns its RAM from the device tree QEMU loads at the
# start of RAM when the kernel's image leaves room there (docs/boot.md), and keeps the tree.
# Semihosting is the kernel's exit with a status (SYS_EXIT, which QEMU always serves itself).
# target=gdb: every other call that reaches a host file (open, read, write, remove, rename,
# system...) goes to the debugger attached to the gdbstub instead of QEMU's own process, and with
# none QEMU drops it; the grader's debugger refuses them (rsp.py), and so does the guard in front
# of GDB (tools/pagoda/stubguard.py). With target=native a guest could read, write or run anything
# QEMU's user can (grade/harness_tests/test_semihost.py).
VIRT = Machine(
    binary="qemu-system-aarch64",
    args=("-M", "virt", "-semihosting-config", "enable=on,target=gdb"),
    # The CPU: a Cortex-A76 (ARMv8.2), a real core with a fixed feature set that has PAN
    # (ARMv8.1), which the kernel turns on. QEMU 7.2 has it; QEMU 6.2 (Ubuntu 22.04, Gradescope's
    # image) has only the ARMv8.0 cores without PAN (a53, a57, a72), the A64FX (with SVE) and
    # `max`, which has PAN too. docs/boot.md says what `max` adds.
    cpu_models=("cortex-a76", "max"),
    ram_base=0x4000_0000,
    devices=((0x0800_0000, 64 * 1024, "the GIC distributor"),
             (0x0801_0000, 64 * 1024, "the GIC CPU interface"),
             (0x0900_0000, PAGE_SIZE_4K, "the PL011 UART")),
    boot_map="fdt",
    # Measured at -m 3M, the least that boots (the image ends 2.2 MiB into RAM): 13 frames of
    # page tables, and 25 of the frame allocator's bitmaps, which cover physical memory from 0,
    # so the GiB of flash and devices below RAM too. -m 2M cannot hold the image.
    boot_frames=38,
    reset_exit="QEMU quit (by the user, or a PSCI power-off or reset)",
)
