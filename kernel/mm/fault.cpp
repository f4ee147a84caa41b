/// @file fault.cpp
/// @brief The generic page-fault entry (handle_fault(): demand paging, stack growth and
/// copy-on-write from the process's record) and the reports a fault ends with.

#include "mm/vm.hpp"

#include "mm/vm_parts.hpp"
#include "core/lab.hpp"
#include "core/panic.hpp"
#include "mm/base/layout.hpp"
#include "mm/space/mmu.hpp"
#include "mm/tempmap/temp_map.hpp"
#include "mm/space/user_regions.hpp"

namespace pagoda::vm {

namespace {

using Format = arch::PageTableFormat;

/// Gives the page at @p page of region @p vma (page aligned, inside it) a frame, filled as the
/// region's kind says, and maps it in @p space with the region's page permissions
/// (page_perms_of()). An image page holds the file's bytes from vma.offset + (page - vma.start),
/// at most vma.file_size - (page - vma.start) of them, and zeros after them (the bss tail of the
/// last file page); a page past the file bytes, and a page of every other kind, is all zeros.
/// The frame is written before it is mapped, through the window or a temporary mapping
/// (zero_frame(), write_frame()), never through @p space, which need not be live. On failure
/// nothing stays allocated.
Result<void> populate(AddressSpace& space, const Vma& vma, u64 page) {
  // LAB 5 BEGIN bring in one page of a region: a zeroed frame, the file's bytes, then map it
  const PhysAddr frame = TRY(allocate_user_frame());
  zero_frame(frame);
  if (vma.kind == VmaKind::Image && page - vma.start < vma.file_size) {
    const u64 at = page - vma.start;
    const usize bytes = usize(min<u64>(kPageSize, vma.file_size - at));
    write_frame(frame, 0, static_cast<const u8*>(vma.source) + vma.offset + at, bytes);
  }
  const Result<void> mapped = space.map(VirtAddr(page), frame, page_perms_of(vma));
  if (mapped.is_error()) g_frames.free(frame);
  return mapped;
  // LAB 5 SKELETON
  // (void)space;
  // (void)vma;
  // (void)page;
  // return lab_not_done("lab 5: write populate() in kernel/mm/fault.cpp (labs/05-vmas/README.md)");
  // LAB 5 END
}

/// A Grow verdict for @p page: extends the grows-down region just above @p page (the stack)
/// down to it in @p regions, so that @p growth ([page, the stack's start), the stack's
/// permissions, kind and flags: decide_fault() made it) becomes part of that region. NoMemory
/// when the record cannot take it; nothing changes then.
Result<void> grow_stack(UserRegions& regions, const Vma& growth, u64 page) {
  // LAB 5 BEGIN grow the stack down to a page: the record first
  Vma part = growth;
  part.start = page;
  part.end = regions.vmas.overlapping(page, align_down(~u64{0}, kPageSize))[0].start;
  return regions.vmas.insert(part);  // it merges into the stack
  // LAB 5 SKELETON
  // (void)regions;
  // (void)growth;
  // (void)page;
  // return lab_not_done("lab 5: write grow_stack() in kernel/mm/fault.cpp (labs/05-vmas/README.md)");
  // LAB 5 END
}

/// Why the last allowed user fault was not resolved (explain_unresolved()). One CPU: the kill
/// report that reads it follows the fault that wrote it (every allowed fault that ends a process
/// writes it; the report checks the page).
struct Unresolved {
  enum class Why : u8 { None, Populate, Grow, Refault, Widen, SwapIn } why = Why::None;
  u64 page = 0;
  Access access{};
  Vma vma{};      ///< the region the verdict named
  Perms mapped{};  ///< Refault: the page's permissions
  Error error{Error::NotFound};  ///< Populate, Grow, Widen: what failed
};
Unresolved g_unresolved;

FaultDecision unresolved(Unresolved::Why why, u64 page, Access access, const Vma& vma,
                         Error error = Error(Error::NotFound), Perms mapped = {}) {
  g_unresolved = Unresolved{.why = why, .page = page, .access = access, .vma = vma, .mapped = mapped, .error = error};
  return FaultDecision::KillProcess;
}

/// A write fault at @p page, mapped read-only to @p frame in a region that allows writing
/// (lab 6): a frame shared copy-on-write gets a copy of its own, with the region's permissions
/// @p perms; a frame this mapping alone holds (count 1: the other sharers are gone) is taken
/// back as it is, only widened. (Never inlined: the lab-6 grader stops at its entry and return
/// to see what each fault did to the frame, its copy and their counts.)
[[gnu::noinline]] Result<void> copy_on_write(AddressSpace& space, VirtAddr page, PhysAddr frame, Perms perms) {
  // LAB 6 BEGIN the copy-on-write fault
  if (g_frame_refs.count(frame) <= 1) return space.protect(page, kPageSize, perms);
  const PhysAddr copy = TRY(allocate_user_frame());
  copy_frame(copy, frame);
  ConsistencyBatch batch = space.batch();
  AddressSpace::Cursor c = space.cursor(batch, page);
  if (Result<void> moved = c.remap(copy, perms); moved.is_error()) {
    g_frames.free(copy);
    return moved.error();
  }
  // This mapping's reference (never the last: the count was above 1), dropped when the batch has
  // flushed: no TLB entry reaches the shared frame through this root any more.
  batch.release_frame(frame);
  return {};
  // LAB 6 SKELETON
  // (void)space;
  // (void)page;
  // (void)frame;
  // (void)perms;
  // return Error(Error::NotImplemented, "lab 6: write copy_on_write() in kernel/mm/fault.cpp (labs/06-fork/README.md)");
  // LAB 6 END
}

/// Lab 7: true when @p walk stopped at a swap entry (the page is swapped out).
bool swapped_out(const Walk& walk) {
  return !walk.mapped() && walk.depth > 0 && Format::is_swap_entry(walk.last().entry, walk.last().level);
}

/// Lab 7: @p step (a step that takes one user frame and, on failure, leaves nothing allocated)
/// with swap's part around it: room under the cap first, and a node free to record the mapping
/// with; when the frame allocator itself runs out, one frame evicted and the step tried again.
/// With swap off it is @p step alone.
template <class Step> Result<void> with_room(Step step) {
  if (!swap_enabled()) return step();
  // LAB 7 BEGIN room under the cap first; when the frame allocator runs out all the same, evict one and try again
  TRY(make_user_room(1));
  if (!can_record_mapping()) return Error(Error::NoMemory, "the reverse map has no free node");
  for (usize tries = 0;; ++tries) {
    Result<void> done = step();
    if (done.ok() || !(done.error() == Error::NoMemory) || tries == 8 || !evict_for_memory()) return done;
  }
  // LAB 7 SKELETON
  // (void)lab_not_done("lab 7: write with_room() in kernel/mm/fault.cpp (labs/07-swap/README.md)");
  // return step();
  // LAB 7 END
}

/// Lab 7: a fault on a swapped-out page of region @p vma: room for a frame, then the page back
/// with the region's permissions (swap_in()), recorded in the reverse map, and pinned when a user
/// copy is under way (pin_for_copy()). Resolved, or the process ends with why (Why::SwapIn).
FaultDecision bring_back(AddressSpace& space, u64 page, Access access, const Vma& vma) {
  // LAB 7 BEGIN the fault on a swap entry: room, the page back with its region's permissions, recorded
  PhysAddr frame;
  const Result<void> back = with_room([&]() -> Result<void> {
    frame = TRY(swapper().swap_in(space, VirtAddr(page), page_perms_of(vma)));
    return {};
  });
  if (back.is_error()) return unresolved(Unresolved::Why::SwapIn, page, access, vma, back.error());
  MUST(note_user_page(space, VirtAddr(page)));  // a node was free (with_room())
  pin_for_copy(frame);
  return FaultDecision::Resolved;
  // LAB 7 SKELETON
  // (void)space;
  // return unresolved(Unresolved::Why::SwapIn, page, access, vma,
  //                   lab_not_done("lab 7: write bring_back() in kernel/mm/fault.cpp (labs/07-swap/README.md)"));
  // LAB 7 END
}

/// A fault at a user address of a space with a record (lab 5): what the record says.
FaultDecision resolve_user_fault(AddressSpace& space, UserRegions& regions, VirtAddr va, Access access) {
  using Why = Unresolved::Why;
  const FaultVerdict verdict = decide_fault(regions, va.value(), access);
  const u64 page = va.align_down(kPageSize).value();
  switch (verdict.action) {
    case FaultAction::Deny: return FaultDecision::KillProcess;
    case FaultAction::Grow:
      if (Result<void> grown = grow_stack(regions, verdict.vma, page); grown.is_error()) {
        // What was asked of the record: [page, the region above), the stack's growth.
        const Span<const Vma> above = regions.vmas.overlapping(page + kPageSize, align_down(~u64{0}, kPageSize));
        const u64 end = above.empty() ? page + kPageSize : above[0].start;
        Error e = grown.error().during("recording the stack's growth down to the page", page);
        if (e == Error::AlreadyExists) {
          Vma part = verdict.vma;
          part.start = page;
          part.end = end;
          if (const char* why = refused_without_overlap(regions.vmas, part)) e = e.noted(why);
        }
        return unresolved(Why::Grow, page, access, verdict.vma, e);
      }
      break;
    case FaultAction::Populate: break;
  }
  const Walk walk = space.query(VirtAddr(page));
  if (swapped_out(walk)) return bring_back(space, page, access, verdict.vma);  // lab 7
  if (walk.mapped()) {
    // Mapped, yet the region allows the access: the entry is narrower than its region (a
    // change of permissions not yet applied, or lab 6's copy-on-write). Widen it once; a
    // second fault is not ours.
    if (walk.perms == page_perms_of(verdict.vma))
      return unresolved(Why::Refault, page, access, verdict.vma, Error(Error::NotFound), walk.perms);
    const bool cow = access.write && !walk.perms.write;
    Result<void> widened;
    if (cow) {
      // LAB 7 BEGIN copy-on-write under swap: the shared frame pinned while room is made for its copy, the mapping moved to the copy
      const PhysAddr frame = walk.pa.align_down(kPageSize);
      const FramePin pin = pin_user_frame(frame);
      const auto copy = [&] { return copy_on_write(space, VirtAddr(page), walk.pa, page_perms_of(verdict.vma)); };
      widened = g_frame_refs.count(frame) > 1 ? with_room(copy) : copy();
      if (widened.ok()) note_user_page_moved(space, VirtAddr(page), frame);
      // LAB 7 SKELETON
      // // Lab 6's fault (labs/07-swap/README.md, part C: a frame shared by fork, under swap).
      // if (swap_enabled()) panic("lab 7: write the copy-on-write part of resolve_user_fault() in kernel/mm/fault.cpp");
      // widened = copy_on_write(space, VirtAddr(page), walk.pa, page_perms_of(verdict.vma));
      // LAB 7 END
    } else {
      widened = space.protect(VirtAddr(page), kPageSize, page_perms_of(verdict.vma));
    }
    return widened.ok() ? FaultDecision::Resolved
                        : unresolved(Why::Widen, page, access, verdict.vma,
                                     widened.error().during(cow ? "the copy-on-write fault at the page"
                                                                : "widening the page's entry to its region's",
                                                            page));
  }
  const Result<void> brought = with_room([&] { return populate(space, verdict.vma, page); });
  if (brought.is_error())
    return unresolved(Why::Populate, page, access, verdict.vma, brought.error().during("bringing in the page", page));
  if (swap_enabled()) {
    // LAB 7 BEGIN a page brought in: recorded in the reverse map, and pinned while a user copy lasts
    MUST(note_user_page(space, VirtAddr(page)));  // a node was free (with_room())
    if (const Walk in = space.query(VirtAddr(page)); in.mapped()) pin_for_copy(in.pa.align_down(kPageSize));
    // LAB 7 SKELETON
    // (void)lab_not_done("lab 7: record the page brought in, at the end of resolve_user_fault() in kernel/mm/fault.cpp "
    //                    "(labs/07-swap/README.md)");
    // LAB 7 END
  }
  return FaultDecision::Resolved;
}

}  // namespace

FaultDecision handle_fault(AddressSpace* space, VirtAddr va, Access access) {
  // Lab 5: a user access (or a user copy, which the arch's trap code passes as one) to a space
  // with a record asks the record: a page of a region that allows the access is brought in (the
  // stack grows down first when the page lies just below it); anything else ends the process
  // (a user copy returns EFAULT through its fix-up instead). Lab 6 adds copy-on-write. Every
  // other fault is not resolved: a user access ends its process; the kernel's own fault is a
  // bug (touching user memory outside a checked copy included: the report says so, from the
  // walk).
  if (access.user && space != nullptr && space->regions() != nullptr)
    return resolve_user_fault(*space, *space->regions(), va, access);
  return access.user ? FaultDecision::KillProcess : FaultDecision::KernelBug;
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
    format_to(sink, "it read {:#x}, a low address{}: the report reads page tables through phys_to_ptr(), which gave "
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
    format_to(sink, "the live root {:#x} shares the kernel half, yet reading kernel memory through it faulted", live.value());
    return true;
  }
  format_to(sink, "the live root {:#x} does not share the kernel half: {} of its {} kernel-half top-level entries differ "
                  "from the kernel root's ({} entry {} is {:#x}, the kernel's {:#x}; {} present), so the kernel's own "
                  "memory (the physical window, through which it reads page tables) is not mapped there",
            live.value(), differ, Format::kEntriesPerTable - first, Format::level_name(0), at, mine[at], theirs[at],
            present);
  return true;
}

}  // namespace

bool explain_unresolved(FormatSink& sink, VirtAddr va) {
  const Unresolved& u = g_unresolved;
  if (u.why == Unresolved::Why::None || u.page != va.align_down(kPageSize).value()) return false;
  const char* what = u.access.execute ? "an instruction fetch" : u.access.write ? "a write" : "a read";
  switch (u.why) {
    case Unresolved::Why::None: break;
    case Unresolved::Why::Refault:
      format_to(sink, "decide_fault() allowed {} in VMA ", what);
      u.vma.format(sink);
      format_to(sink, ", but the page is already mapped {}, as that VMA says, and the CPU refused the access there",
                u.mapped);
      return true;
    case Unresolved::Why::Grow:
      format_to(sink, "the stack could not grow down to the page ({}): ", u.error);
      break;
    case Unresolved::Why::Populate:
      if (u.error == Error::NoMemory && swap_enabled() && u.error.message != nullptr)
        format_to(sink, "allowed by its VMA, but no frame could be given (out of memory: {}): ", u.error.message);
      else if (u.error == Error::NoMemory) format_to(sink, "allowed by its VMA, but no frame could be given (out of memory): ");
      else format_to(sink, "allowed by its VMA, but populate() failed ({}): ", u.error);
      break;
    case Unresolved::Why::SwapIn:
      format_to(sink, "allowed by its VMA, but the page could not come back from swap ({}): ", u.error);
      break;
    case Unresolved::Why::Widen:
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

namespace {

bool g_reporting = false;
TrapSite g_reported;  // the exception whose report is under way, while g_reporting

}  // namespace

ReportingFault::ReportingFault(const TrapSite& site) {
  g_reported = site;
  g_reporting = true;
}

ReportingFault::~ReportingFault() { g_reporting = false; }

bool reporting_fault() { return g_reporting; }

void report_nested_fault(const TrapSite& inner) {
  const TrapSite& outer = g_reported;
  static bool again = false;  // a fault in this report too: say the least and stop
  if (again)
    panic("{} at {} {:#x}: the report of a fault faulted, and so did the report of that", outer.name,
          outer.pc_register, outer.pc);
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
