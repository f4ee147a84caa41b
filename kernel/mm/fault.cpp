/// @file fault.cpp
/// @brief The generic page-fault entry (handle_fault(): demand paging, stack growth and
/// copy-on-write from the process's record). Why a fault was not resolved, and the report a
/// fault ends with, are fault_report.cpp's.

#include "mm/vm.hpp"

#include "core/stop.hpp"
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

/// What frees the frames of ended processes not reaped yet (set_reclaimer()); none until set.
usize (*g_reclaim)() = nullptr;

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
/// down to it in @p regions. @p growth is the verdict's region, decide_fault()'s: the stack as
/// it is once grown, [page, the stack's end), with its permissions, kind and flags; what the
/// record lacks of it is [page, the stack's start). NoMemory when the record cannot take it;
/// nothing changes then.
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

/// A write fault at @p page, mapped read-only to @p frame in a region that allows writing
/// (lab 6): a frame shared copy-on-write gets a copy of its own, with the region's permissions
/// @p perms; a frame this mapping alone holds (count 1: the other sharers are gone) is taken
/// back as it is, only widened. (Never inlined: the lab-6 grader stops at its entry and return
/// to see what each fault did to the frame, its copy and their counts.)
[[PAGODA_STOP(copy_on_write)]] Result<void> copy_on_write(AddressSpace& space, VirtAddr page, PhysAddr frame,
                                                          Perms perms) {
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
  if (back.is_error()) return unresolved(Unresolved::SwapIn, page, access, vma, back.error());
  MUST(note_user_page(space, VirtAddr(page)));  // a node was free (with_room())
  pin_for_copy(frame);
  return FaultDecision::Resolved;
  // LAB 7 SKELETON
  // (void)space;
  // return unresolved(Unresolved::SwapIn, page, access, vma,
  //                   lab_not_done("lab 7: write bring_back() in kernel/mm/fault.cpp (labs/07-swap/README.md)"));
  // LAB 7 END
}

/// A fault at a user address of a space with a record (lab 5): what the record says.
FaultDecision resolve_user_fault(AddressSpace& space, UserRegions& regions, VirtAddr va, Access access) {
  const FaultVerdict verdict = decide_fault(regions, va.value(), access);
  const u64 page = va.align_down(kPageSize).value();
  switch (verdict.action) {
    case FaultAction::Deny: return FaultDecision::KillProcess;
    case FaultAction::Grow:
      if (Result<void> grown = grow_stack(regions, verdict.vma, page); grown.is_error())
        return growth_refused(regions, verdict.vma, page, access, grown.error());
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
      return unresolved(Unresolved::Refault, page, access, verdict.vma, Error(Error::NotFound), walk.perms);
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
                        : unresolved(Unresolved::Widen, page, access, verdict.vma,
                                     widened.error().during(cow ? "the copy-on-write fault at the page"
                                                                : "widening the page's entry to its region's",
                                                            page));
  }
  const auto bring = [&] { return with_room([&] { return populate(space, verdict.vma, page); }); };
  Result<void> brought = bring();
  // No frame: processes that ended and were not reaped yet may hold some (the idle loop reaps
  // them when it runs, which a busy CPU may not let it do for a while): freed, then once more.
  if (brought.is_error() && brought.error() == Error::NoMemory && g_reclaim != nullptr && g_reclaim() > 0)
    brought = bring();
  if (brought.is_error())
    return unresolved(Unresolved::Populate, page, access, verdict.vma,
                      brought.error().during("bringing in the page", page));
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

void set_reclaimer(usize (*reclaim)()) { g_reclaim = reclaim; }

[[PAGODA_STOP(handle_fault)]] FaultDecision handle_fault(AddressSpace* space, VirtAddr va, Access access) {
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

}  // namespace pagoda::vm
