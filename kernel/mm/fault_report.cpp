/// @file fault_report.cpp
/// @brief The words a fault ends with: why an allowed user fault still ended its process
/// (explain_unresolved(), from what fault.cpp recorded), the walk and reason every page-fault
/// report ends with (report_fault()), and the report of a fault taken while another was being
/// reported (report_nested_fault()). fault.cpp decides and resolves faults; this file says why
/// one was not.

#include "core/panic.hpp"
#include "mm/base/layout.hpp"
#include "mm/space/mmu.hpp"
#include "mm/tempmap/temp_map.hpp"
#include "mm/vm_parts.hpp"

namespace pagoda::vm {

namespace {

using Format = arch::PageTableFormat;

/// Why the last allowed user fault was not resolved (explain_unresolved()). One CPU: the kill
/// report that reads it follows the fault that wrote it (every allowed fault that ends a process
/// writes it; the report checks the page).
struct UnresolvedFault {
  bool set = false;
  Unresolved why = Unresolved::Populate;
  u64 page = 0;
  Access access{};
  Vma vma{};                     ///< the region the verdict named
  Perms mapped{};                ///< Refault: the page's permissions
  Error error{Error::NotFound};  ///< Populate, Grow, Widen: what failed
};
UnresolvedFault g_unresolved;

}  // namespace

FaultDecision unresolved(Unresolved why, u64 page, Access access, const Vma& vma, Error error, Perms mapped) {
  g_unresolved = UnresolvedFault{.set = true,
                                 .why = why,
                                 .page = page,
                                 .access = access,
                                 .vma = vma,
                                 .mapped = mapped,
                                 .error = error};
  return FaultDecision::KillProcess;
}

FaultDecision growth_refused(const UserRegions& regions, const Vma& growth, u64 page, Access access, Error error) {
  // What was asked of the record: [page, the region above), the stack's growth.
  const Span<const Vma> above = regions.vmas.overlapping(page + kPageSize, align_down(~u64{0}, kPageSize));
  const u64 end = above.empty() ? page + kPageSize : above[0].start;
  Error e = error.during("recording the stack's growth down to the page", page);
  if (e == Error::AlreadyExists) {
    Vma part = growth;
    part.start = page;
    part.end = end;
    if (const char* why = refused_without_overlap(regions.vmas, part)) e = e.noted(why);
  }
  return unresolved(Unresolved::Grow, page, access, growth, e);
}

namespace {

/// For report_nested_fault(), when a fault comes while the kernel is reporting another one: the
/// report reads page tables and kernel data through the physical window (phys_to_ptr()), and either
/// phys_to_ptr() does not give window addresses, or the live root does not map the window (it
/// does not share the whole kernel half). Writes which, from @p address, the address the report
/// itself faulted on: a low address ("... the live root's own physical address: phys_to_ptr()
/// gives physical addresses, not the window's"), or, after loading the kernel's own root
/// (unchecked: the machine is about to panic) so that the rest can read memory, the kernel half
/// the root that was live lacks ("root 0x25c000 does not share the kernel half: PML4 entry 256
/// is 0x0, the kernel's is 0x..."). Returns false, writing nothing, when it cannot tell.
bool rescue_report(FormatSink& sink, VirtAddr address) {
  if (g_kernel_space == nullptr) return false;
  const VirtAddr half(layout::kKernelHalfBase);
  const PhysAddr live = arch::live_root_for(half);
  if (address.value() < layout::kKernelHalfBase) {
    const bool root = align_down(address.value(), kPageSize) == live.value() ||
                      align_down(address.value(), kPageSize) == arch::live_root_for(address).value();
    format_to(sink,
              "it read {:#x}, a low address{}: the report reads page tables through phys_to_ptr(), which gave "
              "the physical address itself instead of the window's (kWindowBase + physical: lab 2)",
              address.value(), root ? ", the live root's own physical address" : "");
    return true;
  }
  if (address.value() < layout::kWindowBase || address.value() >= layout::kWindowBase + layout::kWindowSize)
    return false;
  const PhysAddr kernel = g_kernel_space->query(half).root;
  if (live == kernel || kernel == PhysAddr()) return false;
  g_kernel_space->arch().activate();  // raw: no check, the old root may be the broken thing
  const u64* mine = static_cast<const u64*>(phys_to_ptr(live, kPageSize));
  const u64* theirs = static_cast<const u64*>(phys_to_ptr(kernel, kPageSize));
  if (mine == nullptr || theirs == nullptr) {
    format_to(sink, "the live root {:#x} is not a table in RAM", live.value());
    return true;
  }
  const usize first = Format::index(half, 0);
  usize differ = 0, at = 0, present = 0;
  for (usize i = first; i < Format::kEntriesPerTable; ++i) {
    present += Format::is_present(mine[i], 0) ? 1 : 0;
    if (Format::output_address(mine[i], 0) != Format::output_address(theirs[i], 0) ||
        Format::is_present(mine[i], 0) != Format::is_present(theirs[i], 0)) {
      if (differ++ == 0) at = i;
    }
  }
  if (differ == 0) {
    format_to(sink, "the live root {:#x} shares the kernel half, yet reading kernel memory through it faulted",
              live.value());
    return true;
  }
  format_to(sink,
            "the live root {:#x} does not share the kernel half: {} of its {} kernel-half top-level entries differ "
            "from the kernel root's ({} entry {} is {:#x}, the kernel's {:#x}; {} present), so the kernel's own "
            "memory (the physical window, through which it reads page tables) is not mapped there",
            live.value(), differ, Format::kEntriesPerTable - first, Format::level_name(0), at, mine[at], theirs[at],
            present);
  return true;
}

}  // namespace

bool explain_unresolved(FormatSink& sink, VirtAddr va) {
  const UnresolvedFault& u = g_unresolved;
  if (!u.set || u.page != va.align_down(kPageSize).value()) return false;
  const char* what = u.access.execute ? "an instruction fetch" : u.access.write ? "a write" : "a read";
  switch (u.why) {
    case Unresolved::Refault:
      format_to(sink, "decide_fault() allowed {} in VMA ", what);
      u.vma.format(sink);
      format_to(sink, ", but the page is already mapped {}, as that VMA says, and the CPU refused the access there",
                u.mapped);
      return true;
    case Unresolved::Grow: format_to(sink, "the stack could not grow down to the page ({}): ", u.error); break;
    case Unresolved::Populate:
      if (u.error == Error::NoMemory && swap_enabled() && u.error.message != nullptr)
        format_to(sink, "allowed by its VMA, but no frame could be given (out of memory: {}): ", u.error.message);
      else if (u.error == Error::NoMemory)
        format_to(sink, "allowed by its VMA, but no frame could be given (out of memory): ");
      else format_to(sink, "allowed by its VMA, but populate() failed ({}): ", u.error);
      break;
    case Unresolved::SwapIn:
      format_to(sink, "allowed by its VMA, but the page could not come back from swap ({}): ", u.error);
      break;
    case Unresolved::Widen:
      if (u.error == Error::NotImplemented && u.access.write) {
        // Before lab 6 nothing shares a frame: a read-only page of a writable region is one whose
        // entry never got its region's permissions.
        format_to(sink, "allowed by its VMA, but the page is mapped read-only in a writable region, and with no "
                        "copy-on-write yet (lab 6) nothing shares a frame: the page's entry lags its region's "
                        "permissions (mprotect changed the record but not the pages, or the pages first): ");
        break;
      }
      format_to(sink, "allowed by its VMA, but widening the page's entry failed ({}): ", u.error);
      break;
  }
  u.vma.format(sink);
  return true;
}

namespace detail {
bool g_reporting = false;
}  // namespace detail
using detail::g_reporting;

namespace {

TrapSite g_reported;  // the exception whose report is under way, while g_reporting

}  // namespace

ReportingFault::ReportingFault(const TrapSite& site) {
  g_reported = site;
  g_reporting = true;
}

ReportingFault::~ReportingFault() { g_reporting = false; }

void report_nested_fault(const TrapSite& inner) {
  const TrapSite& outer = g_reported;
  static bool again = false;  // a fault in this report too: say the least and stop
  if (again)
    panic("{} at {} {:#x}: the report of a fault faulted, and so did the report of that", outer.name, outer.pc_register,
          outer.pc);
  again = true;
  print("FAULT WHILE REPORTING A FAULT: {} at {} {:#x} ({} {:#x}", inner.name, inner.pc_register, inner.pc,
        inner.address_register, inner.address);
  if (inner.root_register != nullptr) print(", {} {:#x}", inner.root_register, inner.root);
  print(") while reporting {}", outer.name);
  if (outer.title != nullptr) print(" {}", outer.title);
  println(" in {} mode at {} {:#x}", outer.from_user ? "user" : "kernel", outer.pc_register, outer.pc);
  char why[400];
  BufferSink sink(why, sizeof why);
  if (inner.translation && rescue_report(sink, VirtAddr(inner.address))) {
    println("  the report of the fault faulted in turn: {}", sink.view());
    panic("{} at {} {:#x}, and its report faulted: {}", outer.name, outer.pc_register, outer.pc, sink.view());
  }
  panic("{} at {} {:#x}, and its report faulted in turn ({} at {} {:#x}, {} {:#x})", outer.name, outer.pc_register,
        outer.pc, inner.name, inner.pc_register, inner.pc, inner.address_register, inner.address);
}

void report_fault(FormatSink& sink, VirtAddr va, Access access) {
  const Walk walk = walk_active(va);
  walk.format(sink);
  format_to(sink, "  reason: ");
  explain_fault(sink, walk, access);
  format_to(sink, "\n");
  if (va.value() >= layout::kTempMapBase && va.value() < layout::kStackBase) {
    format_to(sink, "  ");
    (void)describe_temp_map_address(sink, va);
    format_to(sink, "\n");
  }
}

}  // namespace pagoda::vm
