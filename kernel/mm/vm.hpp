/// @file vm.hpp
/// @brief The kernel's virtual memory: the frame allocator, the kernel's address space, the
/// physical window, and the generic page-fault entry.
#pragma once

#include "boot/bootinfo.hpp"
#include "core/stop.hpp"
#include "mm/space/address_space.hpp"
#include "mm/space/vma.hpp"
#include "mm/phys/frame_allocator.hpp"
#include "mm/phys/frame_refs.hpp"
#include "mm/swap/swapper.hpp"

namespace pagoda::vm {

static_assert(ValidPageTableFormat<arch::PageTableFormat>, "the arch's page-table format is incomplete");

/// Starts the frame allocator on @p boot's memory map and builds the kernel's address space
/// (text `r-x`, rodata `r--`, data and bss `rw-` NX, usable RAM `rw-` NX, devices uncached,
/// nothing else: page 0 and the first MiB stay unmapped), without loading it: the kernel still
/// runs on the boot stub's tables and entry stack. @p boot must outlive the kernel.
/// Error::NotImplemented from a lab skeleton: the kernel can carry on on the boot tables.
[[nodiscard]] Result<void> init(const BootInfo& boot);

/// What runs once the kernel is on its own stack and root (kmain's second half).
using KernelMain = void (*)(const BootInfo& boot);

/// The moment the kernel leaves the boot stub for good (lab 2), after init() succeeded: moves
/// from the boot stub's low entry stack to the kernel's own stack (high, mapped by the boot
/// tables and the kernel's root alike), loads the kernel's root, which maps nothing in the low
/// half, reclaims the boot tables and the entry stack, and calls @p next(@p boot) there.
/// In the other order the switch of roots would unmap the running stack: the pre-switch check
/// refuses it ("does not map the running stack"), or, with vm_check=off, the CPU dies on its
/// next push.
[[noreturn]] void enter_kernel_space(KernelMain next, const BootInfo& boot);

/// True once the kernel's own root is live (enter_kernel_space()).
bool ready();

/// The frame allocator (usable once init() has started it).
FrameAllocator& frames();

/// The kernel's address space: the one owner of the kernel root and of the kernel half (valid
/// once ready()). There is no other way to reach the kernel root's tables for a change.
AddressSpace& kernel_space();

/// The address space the CPU runs in now: the current process's, or the kernel's; nullptr
/// before ready().
AddressSpace* current_space();
/// Tells the memory manager which space is live from now on (the scheduler, at every switch;
/// nullptr: the kernel's).
void set_current_space(AddressSpace* space);

/// @name The physical window (kernel/mm/base/layout.hpp)
/// The kernel reaches usable RAM in [kWindowPhysBase, reachable_limit()) at
/// layout::kWindowBase + (physical - kWindowPhysBase); nothing else has a kernel-virtual
/// address unless something maps it.
/// @{

/// The end of the RAM the kernel can reach through its window.
PhysAddr reachable_limit();
/// The kernel's pointer to physical memory [pa, pa + size), or nullptr when the kernel cannot
/// reach it (not usable RAM, or outside the window).
void* phys_to_ptr(PhysAddr pa, usize size);
/// The window address of @p pa; InvalidArgument outside the window.
[[nodiscard]] Result<VirtAddr> try_phys_to_virt(PhysAddr pa);
/// The window address of @p pa; panics outside the window.
VirtAddr phys_to_virt(PhysAddr pa);
/// The physical address of window address @p va; InvalidArgument for any other address.
[[nodiscard]] Result<PhysAddr> try_virt_to_phys(VirtAddr va);
/// The physical address of window address @p va; panics for any other address.
PhysAddr virt_to_phys(VirtAddr va);
/// Where device registers at @p pa are mapped (layout::kMmioBase + pa).
VirtAddr device_virt(PhysAddr pa);
/// A pointer to device registers at @p pa, valid before and after the kernel's own tables.
void* device_ptr(PhysAddr pa);
/// Fills the frame at @p pa with zeros, wherever it lies: through the window below
/// reachable_limit(), through a temporary mapping above it (mm/tempmap/temp_map.hpp).
[[PAGODA_STOP(zero_frame)]] void zero_frame(PhysAddr pa);
/// Copies the frame at @p from to the frame at @p to, wherever each lies.
[[PAGODA_STOP(copy_frame)]] void copy_frame(PhysAddr to, PhysAddr from);
/// Copies @p size bytes from @p src into the frame at @p pa at @p offset (within the frame),
/// wherever the frame lies.
[[PAGODA_STOP(write_frame)]] void write_frame(PhysAddr pa, usize offset, const void* src, usize size);
/// The reference counts of user frames (lab 6, mm/phys/frame_refs.hpp).
FrameRefs& frame_refs();
/// One mapping of the user frame @p frame is gone (an unmap): frees it when that was its last
/// mapping (copy-on-write shares a frame between roots). Never inlined: lab 8's grader stops here.
void put_user_frame(PhysAddr frame);
/// A frame for user memory: the highest free one once temporary mappings work (so that user
/// memory really lives above the window when there is RAM there), else one in the window.
[[nodiscard]] Result<PhysAddr> allocate_user_frame();
/// Maps usable RAM below reachable_limit(), except @p skip, into @p space (used by init()).
[[nodiscard]] Result<void> map_ram(AddressSpace& space, const MemoryMap& map, PhysRange skip);
/// The permissions of a mapping of the kernel's own (the image, the window, devices, later
/// kernel stacks): @p perms, global once the kernel lives in its own half, so that its TLB
/// entries survive every switch of roots (x86: G; AArch64: nG clear).
Perms kernel_perms(Perms perms);
/// @}

/// The walk of @p va through the page tables the CPU uses now (the live root for @p va).
Walk walk_active(VirtAddr va);
/// Whether the live root maps @p va: walk_active() once init() has built the kernel's root,
/// true before (only the boot tables can be live then, and they map what the boot stub left).
/// For reports that must not fault again reading memory a bad switch took away (backtraces).
bool mapped_now(VirtAddr va);

/// What to do about a page fault, decided before anything is reported.
enum class FaultDecision : u8 {
  Resolved,     ///< the fault was handled (a page brought in, a copy made): retry the access
  KillProcess,  ///< a process touched what it may not: end it, the kernel carries on
  KernelBug,    ///< nothing explains it: report the fault and panic
};

/// The generic page-fault entry, called by the arch's trap code with the faulting address and
/// what the access tried to do, in the address space that was live. A fault from user mode
/// that nothing resolves ends its process (lab 3); any fault of the kernel itself is a bug.
/// Labs 5 and 6 add the faults that are resolved (demand paging, copy-on-write).
FaultDecision handle_fault(AddressSpace* space, VirtAddr va, Access access);

/// @name Swap (lab 7: mm/swap.cpp)
/// Off unless the boot asks for it (`userframes=N`, a swap disk): then every hook below returns
/// at once, and the kernel is lab 6's. The hooks are called from given code only: the fault
/// path, fork, exec, exit, munmap and brk, the loader's stack page.
/// @{
/// Turns swap on: the frame table (at most @p cap resident user frames; 0: no cap) and, over a
/// disk of @p slots pages read and written through @p disk, the slot map. Nothing happens with
/// neither a cap nor a disk. InvalidArgument for a cap below the smallest one (16 frames);
/// NoMemory when the tables do not fit.
[[nodiscard]] Result<void> init_swap(usize cap, SwapDevice disk, u64 slots);
/// True once init_swap() turned swap on.
bool swap_enabled();
/// The kernel's swapper (its frame table, slots and counters).
Swapper& swapper();
/// Makes room under the cap for @p frames more resident user frames (Swapper::make_room()).
[[nodiscard]] Result<void> make_user_room(usize frames);
/// Evicts one frame the clock chooses, when there is a disk to evict to: what the fault path
/// does when the frame allocator itself runs out (no cap, or a cap above the RAM). False when
/// nothing could go out.
bool evict_for_memory();
/// Names what frees the frames of processes that ended and were not reaped yet (the process
/// layer's, proc::reap_zombies(): the number reaped). A page fault that finds no frame calls it
/// once and tries again, as spawn and fork do: ended processes do not starve a live one.
void set_reclaimer(usize (*reclaim)());
/// False when the reverse map cannot record one more mapping (checked before a page is brought
/// in, so that recording it after cannot fail).
bool can_record_mapping();
/// The page at @p page of @p space was just mapped to a user frame of its own (a fault brought
/// it in, the loader made it): the reverse map records it.
[[nodiscard]] Result<void> note_user_page(AddressSpace& space, VirtAddr page);
/// The page at @p page of @p space mapped @p old until a copy-on-write fault: its mapping moves
/// to the frame it maps now (nothing changes when it still maps @p old).
void note_user_page_moved(AddressSpace& space, VirtAddr page, PhysAddr old);
/// [@p start, @p end) of @p space is about to be unmapped (exit, exec, munmap, brk): its
/// swapped-out pages are given back (Swapper::release()) and its mapped pages forgotten by the
/// reverse map (a frame's backing slot with its last mapping).
[[nodiscard]] Result<void> forget_user_pages(AddressSpace& space, VirtAddr start, VirtAddr end);
/// Fork copied the regions @p vmas of @p from into @p to: the parent's swap entries are shared
/// into the child (Swapper::share_swapped()) and the child's mapped pages recorded.
[[nodiscard]] Result<void> note_forked(AddressSpace& from, const VmaSet& vmas, AddressSpace& to);
/// The evict test call (Swapper::evict_page()); Unsupported while swap is off.
[[nodiscard]] Result<void> evict_user_page(AddressSpace& space, VirtAddr va, bool keep);
/// A pin of the user frame @p frame (nothing is pinned while swap is off: nothing is evicted).
FramePin pin_user_frame(PhysAddr frame);
/// Pins @p frame until the user copy under way ends (UserCopyPins), if one is (the fault path,
/// for each page it brings in during a copy).
void pin_for_copy(PhysAddr frame);

/// For as long as it lives, the pages the fault path brings in for a user copy stay pinned (up
/// to a few): a long copy's later faults never evict the pages it has just brought in. Every
/// user copy runs inside one (proc::UserAccessScope holds it).
class [[nodiscard]] UserCopyPins {
 public:
  UserCopyPins();
  ~UserCopyPins();
  UserCopyPins(const UserCopyPins&) = delete;
  UserCopyPins& operator=(const UserCopyPins&) = delete;
};
/// @}

/// Lab 5: why the last user fault that the record allowed (a Populate or Grow verdict) still
/// ended its process, in the words of the kill report: "no frame could be given (out of
/// memory)", "the stack could not grow: ...", or, when the page was already mapped just as its
/// region says and the CPU refused the access anyway, "decide_fault() allowed a write in VMA
/// [...] r--, but the page is mapped r-- user, as that VMA says". Prints nothing (returns false)
/// when the last unresolved fault was not at @p va's page.
bool explain_unresolved(FormatSink& sink, VirtAddr va);

/// Prints the walk of @p va through the live root and the reason @p access faults there; what
/// every page-fault report ends with.
void report_fault(FormatSink& sink, VirtAddr va, Access access);

/// One exception as an ISA's trap code tells it to the report of a fault taken while another was
/// being reported (report_nested_fault()): names and register values only, so that the report's
/// words and steps are written once for every ISA.
struct TrapSite {
  const char* name;         ///< the short name: "#PF", "data abort, same EL"
  const char* title;        ///< a longer name said after it ("page fault"), or nullptr
  const char* pc_register;  ///< where the exception was taken: "RIP", "ELR"
  u64 pc;
  const char* address_register;  ///< the faulting-address register: "CR2", "FAR"
  u64 address;
  const char* root_register;  ///< the live root's register ("CR3"), or nullptr: not said
  u64 root;
  bool from_user;
  bool translation;  ///< may be a missing translation (the report then says which)
};

/// Marks the report of the exception at @p site as under way for as long as it lives (a report
/// walks page tables and reads kernel data: an exception meanwhile is not a new problem but the
/// same one, seen again). The trap code makes one around every report and checks
/// reporting_fault() first thing on every exception.
class ReportingFault {
 public:
  explicit ReportingFault(const TrapSite& site);
  ~ReportingFault();
  ReportingFault(const ReportingFault&) = delete;
  ReportingFault& operator=(const ReportingFault&) = delete;
};

namespace detail {
extern bool g_reporting;  ///< a ReportingFault lives (fault_report.cpp)
}  // namespace detail

/// Whether a ReportingFault lives: an exception now is one taken by a report. (Inline: every
/// exception and system call asks.)
[[nodiscard]] inline bool reporting_fault() { return detail::g_reporting; }

/// The exception at @p inner, taken while the report of another was under way: says so once,
/// moves to the kernel's root and names what the live root lacked, and panics,
/// instead of faulting in the report again and again until the stack overflows. A fault in this
/// report too panics at once with the least said.
[[noreturn]] void report_nested_fault(const TrapSite& inner);

}  // namespace pagoda::vm
