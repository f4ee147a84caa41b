"""The kernel's names the grader and the GDB tools rely on, each declared once: every function
they stop at or call, every variable they read in guest RAM, every linker or assembler label they
read an address from, every type or prefix GDB casts to or matches, and every fact (PAGODA_FACT,
kernel/lib/facts.hpp) they ask for, with the first lab whose tests (or tools) need it. Python
elsewhere (pagoda_grade, pagoda_gdb, pagoda_pt, the commands) names them through this module,
never by a string of its own; it lives in pagoda_pt, the bottom layer, so that all can.

grade/harness_tests/test_contract.py checks each, without booting, against both kernel ELFs and
against the sources of every published lab tree from that lab on (tools/pagoda/publish.py), and
scans the Python for a kernel name written outside, so that renaming a kernel function the grader
stops at or fault-why reads fails there in seconds, not in a grade or a debugging session. A Name
is a str (the symbol's demangled name, as symbols.find() takes it), so it goes wherever a name
went before: guest.stop_at(contract.FORK), address_of(kernel, contract.PROCESS_TABLE),
kernel.symbol_address(contract.KERNEL_START); Name.expr is how a GDB expression names it."""
import re

FUNCTION, DATA, LABEL, TYPE = "function", "data", "label", "type"
NAMES = []   # every Name below, in declaration order


class Name(str):
    """A kernel symbol: @p lab, the first lab whose tests need it; @p arch, the one ISA that has it
    (None: both); @p kind, FUNCTION (a stop, or a call GDB makes), DATA (read in guest RAM), LABEL
    (an address from the linker script or the assembly) or TYPE (a type, or a prefix of functions'
    names, GDB casts to or matches: part of some symbol's demangled name); @p source, a regex its
    definition matches in a lab tree's sources (default: its last identifier as a word)."""

    def __new__(cls, name, lab, kind=FUNCTION, arch=None, source=None):
        self = str.__new__(cls, name)
        self.lab, self.kind, self.arch = lab, kind, arch
        short = re.sub(r"\(.*\)$", "", name).split("::")[-1]
        self.source = re.compile(source or rf"\b{re.escape(short)}\b")
        NAMES.append(self)
        return self

    @property
    def expr(self):
        """The name as a GDB expression takes it: quoted when it holds a parenthesis."""
        return "'%s'" % self if "(" in self else str(self)


# ---- the self-tests and the grader's handshake (kernel/core/selftest.hpp) ------------------------
CHECKPOINT = Name("pagoda_grader_checkpoint", 1)
GRADER_STOP = Name("pagoda_grader_stop", 1)
INBOX = Name("pagoda_grader_inbox", 1, DATA)
RUN_SELFTEST = Name("pagoda::run_selftest", 1)
RUN_ON_STACK = Name("pagoda_run_on_stack", 2, LABEL)
SHUTDOWN = Name("pagoda::arch::shutdown", 1)
KMAIN = Name("pagoda::kmain", 1)
PANIC = Name("pagoda::panic_begin", 2)
PANIC_END = Name("pagoda::panic_end", 2)          # (where a panicking kernel ends up: GDB's breakpoint)
SELFTESTS = {t: Name(f"pagoda::pagoda_selftest_{t}", lab, source=rf"\bPAGODA_SELFTEST\(\s*{t}\s*\)") for t, lab in (
    ("pf", 0), ("vm_write_text", 1), ("vm_exec_stack", 1), ("vm_exec_data", 1), ("vm_null", 1),
    ("vm_stale_tlb", 1), ("vm_high", 2), ("vm_low", 2), ("user_touch", 3))}
DATA_CODE = Name("pagoda::(anonymous namespace)::g_data_code", 1, DATA)
SELFTEST_DATA = Name("pagoda::(anonymous namespace)::g_selftest_data", 2, DATA)

# ---- the image and the boot stub (the linker scripts, boot.S) -----------------------------------
KERNEL_START = Name("__kernel_start", 1, LABEL)
KERNEL_PHYS_START = Name("__kernel_phys_start", 1, LABEL)
KERNEL_PHYS_END = Name("__kernel_phys_end", 1, LABEL)
KERNEL_VIRT_OFFSET = Name("__kernel_virt_offset", 1, LABEL)
SECTIONS = {s: (Name(f"__{s}_start", 1, LABEL), Name(f"__{s}_end", 1, LABEL)) for s in ("text", "rodata", "data")}
BOOT_STACK = (Name("boot_stack_bottom", 1, LABEL), Name("boot_stack_top", 1, LABEL))
BOOT_STACK_GUARD = Name("boot_stack_guard", 1, LABEL)
BOOT_ENTRY_STACK = (Name("boot_entry_stack_bottom", 1, LABEL), Name("boot_entry_stack_top", 1, LABEL))
BOOT_TABLES = (Name("boot_tables_start", 2, LABEL), Name("boot_tables_end", 2, LABEL))

# ---- frames and the heap (kernel/mm) -----------------------------------------------------------
FRAME_ALLOCATOR = Name("pagoda::vm::g_frames", 1, DATA)
FRAME_BITMAPS = Name("pagoda_frame_bitmaps", 1, DATA)
FRAME_REFS = Name("pagoda_frame_refs", 6, DATA)
HEAP_FREE_LISTS = Name("pagoda_heap_free_lists", 2, DATA)

# ---- processes (kernel/proc) -------------------------------------------------------------------
ROOT_REGISTRY = Name("pagoda_debug_roots", 3, DATA)
PROCESS_TABLE = Name("pagoda::proc::(anonymous namespace)::g_processes", 3, DATA)
CURRENT = Name("pagoda::proc::detail::g_current_of", 3, DATA)   # (PerCpu: the boot CPU's first)
CURRENT_PROCESS = Name("pagoda::proc::current_for_debugger", 3)   # (GDB's break-kill PID condition calls it)
SLOT_TABLE = Name("pagoda::proc::(anonymous namespace)::g_used", 3, DATA)
SWITCH_COUNT = Name("pagoda::proc::(anonymous namespace)::g_switches", 3, DATA)
TURN_BEGAN = Name("pagoda::proc::(anonymous namespace)::g_turn_began_of", 3, DATA)
FRAME_DRAIN = Name("pagoda::proc::(anonymous namespace)::g_drain", 3, DATA)
LOAD_PROGRAM = Name("pagoda::proc::load_program", 3)
EXIT = Name("pagoda::proc::exit_current", 3)
DESTROY_PROCESS = Name("pagoda::proc::destroy_process", 3)   # (process): where its teardown begins
CREATE_PROCESS = Name("pagoda::proc::create_process", 3)     # where a process begins to be made
TIMER_TICK = Name("pagoda::proc::timer_tick", 3)
IDLE = Name("pagoda::proc::(anonymous namespace)::idle_until_interrupt", 3)
WAIT_FOR_INTERRUPT = Name("pagoda::arch::wait_for_interrupt", 3)
WAIT_FOR_DEVICE = Name("pagoda::arch::wait_for_device", 7)   # the swap disk's halt until its interrupt
CONSOLE_LINE = Name("pagoda::(anonymous namespace)::g_line", 3, DATA)   # (its reader waits for input)
DISPATCHER = Name("pagoda::proc::syscall", 3)
USER_FAULT = Name("pagoda::proc::user_fault", 5)
EXEC = Name("pagoda::proc::exec_current", 6)
FORK = Name("pagoda::proc::fork_process", 6)
COPY_ON_WRITE = Name("pagoda::vm::copy_on_write", 6)

# ---- temporary mappings and user copies (lab 4) ------------------------------------------------
TEMP_AREA = Name("pagoda::TempMapArea::s_current", 4, DATA)
# TempMap's constructors (kernel/mm/tempmap/temp_map.cpp), each with the argument that is the frame.
GUARDS = {Name("pagoda::TempMap::TempMap(pagoda::Address<pagoda::PhysTag>)", 4,
               source=r"TempMap::TempMap\(\s*PhysAddr\b"): 1,
          Name("pagoda::TempMap::TempMap(pagoda::TempMapArea&, pagoda::Address<pagoda::PhysTag>)", 4,
               source=r"TempMap::TempMap\(\s*TempMapArea\s*&"): 2}
TEMP_MAP_LIVE = Name("pagoda_temp_map_live", 4)
TEMP_STRESS = Name("pagoda_temp_stress", 4, DATA)
TEMP_STRESS_ROUND = Name("pagoda_temp_stress_round", 4)
# Where every fault the kernel takes in ring 0 / EL1 at a page is first looked at (each ISA's traps).
KERNEL_FAULT = Name("pagoda::proc::checked_user_fixup", 4)
USER_FIXUPS = (Name("__start_pagoda_user_fixups", 4, LABEL, source=r"\bpagoda_user_fixups\b"),
               Name("__stop_pagoda_user_fixups", 4, LABEL, source=r"\bpagoda_user_fixups\b"))


# ---- swap (lab 7; kernel/mm/swap*, kernel/dev/virtio_blk.cpp): the stops, each read at its entry ----
SWAP_STATE = Name("pagoda_swap_state", 7, DATA)
DISK_WRITE = Name("pagoda::swap_disk::write_slot", 7)     # (slot, frame): the frame's bytes are final
DISK_READ = Name("pagoda::swap_disk::read_slot", 7)       # (slot, frame)
EVICT_FRAME = Name("pagoda::Swapper::evict_frame", 7)     # (this, frame)
CLEAN_FRAME = Name("pagoda::Swapper::clean_frame", 7)     # (this, frame)
SWAP_IN = Name("pagoda::Swapper::swap_in", 7)             # (this, space, page, perms)
CHOOSE_VICTIM = Name("pagoda::Swapper::choose_victim", 7)  # (this)
PUT_USER_FRAME = Name("pagoda::vm::put_user_frame", 8)    # (frame): a user frame given back (lab 8: after the acks)

# ---- what the GDB tools read besides (tools/gdb: fault-why, break-kill, pt-*, the memory commands) ----
KERNEL_END = Name("__kernel_end", 1, LABEL)
LAST_FAILURE = Name("pagoda_last_failure", 1, DATA)              # kernel/core/last_failure.hpp
FAILURE_COUNT = Name("pagoda_failure_count", 1, DATA)
LAST_REFUSED_CALL = Name("pagoda_last_refused_call", 3, DATA)    # kernel/proc/syscalls.cpp
SYSCALL_NUMBERS = Name("pagoda::abi::Syscall", 3, TYPE)          # kernel/lib/abi.hpp: the numbers' names
RESULT = Name("pagoda::Result", 1, TYPE)                         # (GDB's printers: Result<T>,
ADDRESS = Name("pagoda::Address", 1, TYPE)                       # Address<PhysTag or VirtTag>)
ADDRESS_TAGS = (Name("pagoda::PhysTag", 1, TYPE), Name("pagoda::VirtTag", 1, TYPE))
TEMP_MAP = Name("pagoda::TempMap", 4, TYPE)
# Lab 5's fault decision and VMA records, which fault-why casts to and calls through GDB (they are pure).
USER_REGIONS = Name("pagoda::UserRegions", 5, TYPE)
VMA = Name("pagoda::Vma", 5, TYPE)
ACCESS = Name("pagoda::Access", 5, TYPE)                         # {bool write, execute, user}
FAULT_CAUSE = Name("pagoda::FaultCause", 5, TYPE)
DECIDE_FAULT = Name("pagoda::decide_fault", 5)
FAULT_CAUSE_TEXT = Name("pagoda::fault_cause_text", 5)
VMA_MERGEABLE = Name("pagoda::VmaSet::mergeable", 5)
RECORD_WORDS = Name("pagoda_record_words", 5)                    # kernel/proc/run.cpp
# Where the GDB tools' own tests (tools/gdb/tests) stop or look besides: the kernel's map built, the
# generic fault entry (its `access` argument), the window's reach, a process's pages forgotten at exit.
VM_INIT = Name("pagoda::vm::init", 1)
HANDLE_FAULT = Name("pagoda::vm::handle_fault", 5)
REACHABLE_LIMIT = Name("pagoda::vm::reachable_limit", 2)
FORGET_USER_PAGES = Name("pagoda::vm::forget_user_pages", 7)
# Lab 8's two_initiators: where a CPU drops its own translations, and CPU 1's part of the self-test.
INVALIDATE_ALL_LOCAL = Name("pagoda::arch::invalidate_all_local", 8)
INVALIDATE_PAGE_LOCAL = Name("pagoda::arch::invalidate_page_local", 8)
TWO_INITIATORS_CPU1 = Name("pagoda::smp_two_initiators_cpu1", 8)
# Lab 8's panic_stops_both: where a CPU told to stop by a panic stays (interrupts off, halted).
CPU_STOP_HERE = Name("pagoda::cpu_stop_here", 8)
# The swap code's functions (by prefix): fault-why's frame is inside swap's own work (lab 7). The fault
# path is handle_fault's (pagoda::vm's anonymous namespace also holds run_kernel, under every reap).
SWAP_CODE = (HANDLE_FAULT,) + tuple(Name(prefix, 7, TYPE, source=source) for prefix, source in (
    ("pagoda::Swapper::", r"\bclass\s+Swapper\b"), ("pagoda::FrameTable::", r"\bclass\s+FrameTable\b"),
    ("pagoda::SwapSlots::", r"\bclass\s+SwapSlots\b"), ("pagoda::swap_disk::", r"\bswap_disk\b"),
    ("pagoda::virtio_blk::", r"\bvirtio_blk\b"), ("pagoda::vm::note_", r"\bnote_\w+\("),
    ("pagoda::vm::forget_", r"\bforget_\w+\("), ("pagoda::vm::evict_", r"\bevict_\w+\("),
    ("pagoda::vm::make_user_room", None),
    ("pagoda::proc::copy_user_half", None)))


# ---- each ISA's own: its trap sites, entries, switch, TLB maintenance (witness.ARCHES names them) ----
class X86:
    UD_SITE = Name("x86_ud_site", 0, LABEL, "x86_64")
    BOOT_ROOTS = (Name("boot_pml4", 2, LABEL, "x86_64"),)
    SYSCALL_ENTRY = Name("x86_syscall_entry", 3, arch="x86_64")
    SWITCH = Name("x86_switch_context", 3, arch="x86_64")
    ROOT_LOADER = Name("pagoda::x86::hw::load_root", 3, arch="x86_64")
    USER_COPY = Name("x86_user_copy", 4, arch="x86_64")
    USER_STRING_COPY = Name("x86_user_string_copy", 4, arch="x86_64")
    TLB_PAGE = Name("pagoda::x86::X86AddressSpace::invalidate_page", 3, arch="x86_64")
    TLB_ALL = Name("pagoda::x86::X86AddressSpace::invalidate_all", 3, arch="x86_64")
    TRAP = Name("x86_trap", 0, arch="x86_64")
    TRAP_FRAME = Name("pagoda::x86::TrapFrame", 0, TYPE, "x86_64")
    VECTOR_STUBS = Name("x86_vector_stubs", 0, arch="x86_64")


class AARCH64:
    UD_SITE = Name("aarch64_udf_site", 0, LABEL, "aarch64")
    BOOT_ROOTS = (Name("boot_l0_low", 2, LABEL, "aarch64"), Name("boot_l0_high", 2, LABEL, "aarch64"))
    SYSCALL_ENTRY = Name("aarch64_svc_entry", 3, arch="aarch64")
    SWITCH = Name("aarch64_switch_context", 3, arch="aarch64")
    ROOT_LOADER = Name("pagoda::aarch64::hw::load_ttbr0", 3, arch="aarch64")
    USER_COPY = Name("aarch64_user_copy", 4, arch="aarch64")
    USER_STRING_COPY = Name("aarch64_user_string_copy", 4, arch="aarch64")
    ASID_TABLE = Name("pagoda::aarch64::(anonymous namespace)::g_asids_used", 3, DATA, "aarch64")
    TLB_PAGE = Name("pagoda::aarch64::Aarch64AddressSpace::invalidate_page", 3, arch="aarch64")
    TLB_ALL = Name("pagoda::aarch64::Aarch64AddressSpace::invalidate_all", 3, arch="aarch64")
    TRAP = Name("aarch64_trap", 0, arch="aarch64")
    TRAP_FRAME = Name("pagoda::aarch64::TrapFrame", 0, TYPE, "aarch64")
    TIMER_INIT = Name("pagoda::aarch64::timer_init", 0, arch="aarch64")   # (after the kernel's map is live)


# The context switch of either ISA (a grader reading only a kernel ELF takes the one it has).
SWITCHES = (X86.SWITCH, AARCH64.SWITCH)

# ---- the pages the grader's breakpoints lie on (kernel/core/stop.hpp) ------------------------------
# QEMU runs a code page holding a breakpoint one instruction at a time, hit or not, so each function
# the grader stops at has pages of its own ([[PAGODA_STOP(name)]]): those it breaks at the entry of,
# and the callers whose return address it breaks at (a stop's caller, as return_address() finds it).
CALLERS = (Name("pagoda::vm::zero_frame", 4), Name("pagoda::vm::write_frame", 4), Name("pagoda::vm::copy_frame", 4),
           CREATE_PROCESS, Name("pagoda::proc::(anonymous namespace)::sys_fork", 6),
           Name("pagoda::proc::(anonymous namespace)::sys_exec", 6), Name("pagoda::Swapper::make_room", 7),
           Name("pagoda::Swapper::evict_page", 7), HANDLE_FAULT)
STOPS = (CHECKPOINT, GRADER_STOP, RUN_SELFTEST, SHUTDOWN, KMAIN, PANIC, LOAD_PROGRAM, EXIT, DESTROY_PROCESS,
         TIMER_TICK, IDLE, WAIT_FOR_INTERRUPT, WAIT_FOR_DEVICE, DISPATCHER, USER_FAULT, EXEC, FORK, COPY_ON_WRITE,
         *GUARDS, TEMP_MAP_LIVE, TEMP_STRESS_ROUND, KERNEL_FAULT, DISK_WRITE, DISK_READ, EVICT_FRAME, CLEAN_FRAME,
         SWAP_IN, CHOOSE_VICTIM, PUT_USER_FRAME, *CALLERS,
         *(n for isa in (X86, AARCH64) for n in (isa.SYSCALL_ENTRY, isa.SWITCH, isa.ROOT_LOADER, isa.TLB_PAGE,
                                                 isa.TLB_ALL)))


# ---- facts (PAGODA_FACT): name -> the first lab whose tests read it -----------------------------
def _facts(lab, *names):
    return {n: lab for n in names}


FACTS = {
    **_facts(0, "page_size", "levels", "entries_per_table", "address_mask", "kernel_half_base",
             "kernel_half_first_entry", "kernel_image_base", "low_memory_end", "mmio_base", "window_base",
             "window_phys_base", "window_size", "held_entry_bit"),
    **_facts(1, "batch_max_pages", "frame_allocator_used_offset", "frame_allocator_words_offset",
             "frame_allocator_ever_offset", *(f"free_check_{n}" for n in (
                 "ok", "misaligned", "not_managed", "never_allocated", "double_free"))),
    **_facts(2, "heap_classes", "heap_header_size", "heap_magic_free", "heap_magic_large", "heap_magic_small",
             "heap_min_class_shift", "heap_next_offset"),
    **_facts(3, "stack_base", "kernel_stack_guard", "kernel_stack_size", "kernel_stack_slots", "kernel_stack_stride",
             "user_end", "user_stack_top", "user_stack_pages", "user_stack_limit", "ticks_per_turn",
             "kernel_spin_start_stop", "kernel_spin_end_stop", "result_pointer_ok", "drain_magic", "drain_sample",
             *(f"run_checkpoint_{n}" for n in ("before", "started", "ended")),
             *(f"user_frame_{n}" for n in ("size", "pc", "sp", "flags", "cs", "ss", "argc", "argv", "result")),
             *(f"error_{n}" for n in ("code", "file", "line", "message")),
             *(f"process_{n}" for n in ("count", "stride", "pid", "parent", "state", "name", "name_size",
                                        "kstack_slot", "exit", "state_ready", "state_running", "state_waiting",
                                        "state_zombie", "state_sleeping")), "held_line_reader_offset"),
    **_facts(4, "temp_map_base", "temp_map_slots", "space_copy_pages", "temp_probe_frames", "temp_probe_value_salt",
             *(f"temp_map_{n}_offset" for n in ("entries", "frames", "cpu", "depth", "maps")),
             *(f"temp_probe_{n}_stop" for n in ("frames", "live", "push", "pushed", "reads")),
             *(f"temp_copy_{n}_stop" for n in ("frames", "copied")),
             *(f"space_copy_{n}_stop" for n in ("frames", "copied")),
             "temp_stress_seed", "temp_stress_frames", "temp_stress_irq_maps_total"),
    **_facts(6, "regions_stack_limit", "regions_stack_gap"),
    **_facts(8, "user_asids", "smp_remap_page"),
    **_facts(7, "swap_min_slots", "swap_state_version", "soft_write_bit", "soft_dirty_bit",
             *(f"swap_{n}" for n in ("entry_bit", "slot_shift", "slot_bits", "slot_inverted")),
             *(f"frame_entry_{n}" for n in ("pins", "backing")),
             *(f"rmap_node_{n}" for n in ("space", "root", "va", "frame")),
             *(f"swap_counter_{n}" for n in ("evictions", "writes", "reads", "clean_evictions", "cleanings"))),
    **_facts(5, "mmap_base", "user_stack_gap", "process_regions", "process_regions_made", "regions_brk",
             "regions_heap_start", "regions_vmas_data", "regions_vmas_size",
             *(f"vma_{n}" for n in ("start", "end", "stride", "read", "write", "execute", "kind", "flags", "offset",
                                    "file_size", "source"))),
}


# The facts only one ISA's kernel exports.
FACT_ARCH = {"user_frame_cs": "x86_64", "user_frame_ss": "x86_64"}


FACT_PREFIX = "pagoda_fact_"    # PAGODA_FACT(name, ...) is the absolute symbol pagoda_fact_<name>


def lab_of_fact(name):
    """The first lab whose tests read fact @p name; AssertionError for a name the contract does
    not declare (a misspelt fact fails here, at its first use, naming this module)."""
    if name not in FACTS:
        raise AssertionError(f"the kernel fact '{name}' is asked for, but the contract "
                             "(tools/gdb/pagoda_pt/contract.py) does not declare it")
    return FACTS[name]


def fact_symbol(name):
    """The symbol the kernel exports fact @p name as (pagoda_fact_<name>); AssertionError for a
    name the contract does not declare."""
    lab_of_fact(name)
    return FACT_PREFIX + name


def facts(*names):
    """@p names, each a fact the contract declares (AssertionError naming the first that is not)."""
    for name in names:
        lab_of_fact(name)
    return names


def names_for(arch, lab=None):
    """The Names an @p arch kernel must have (those of labs up to @p lab, when given)."""
    return [n for n in NAMES if n.arch in (None, arch) and (lab is None or n.lab <= lab)]


def facts_for(arch, lab=None):
    """The facts an @p arch kernel must export (those of labs up to @p lab, when given)."""
    return [f for f, first in FACTS.items() if FACT_ARCH.get(f, arch) == arch and (lab is None or first <= lab)]
