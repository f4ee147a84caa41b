/// @file user_regions_report.cpp
/// @brief The words of the fault decision (user_regions.cpp): a verdict's text, and what the
/// record says around a fault it denied (explain_no_vma(), explain_stack_limit()) or a stack
/// growth it refused (refused_without_overlap()), for the kill line of a process.

#include "mm/space/user_regions.hpp"

namespace pagoda {

const char* fault_cause_text(FaultCause cause) {
  switch (cause) {
    case FaultCause::Allowed: return "allowed by its VMA";
    case FaultCause::NoVma: return "no VMA";
    case FaultCause::NoAccess: return "access to inaccessible VMA";
    case FaultCause::WriteDenied: return "write to read-only VMA";
    case FaultCause::ExecuteDenied: return "execute in non-executable VMA";
    case FaultCause::StackLimit: return "stack limit";
  }
  return "?";
}

void FaultVerdict::format(FormatSink& sink) const {
  format_to(sink, "{}", fault_cause_text(cause));
  if (cause == FaultCause::StackLimit) format_to(sink, ": below the lowest stack address {:#x}", floor);
  if (action == FaultAction::Grow) format_to(sink, " (the stack grows down)");
  if (has_vma) {
    if (cause == FaultCause::StackLimit) format_to(sink, ", stack ");
    else format_to(sink, " ");
    vma.format(sink);
  }
}

void explain_no_vma(FormatSink& sink, const UserRegions& regions, u64 va) {
  const Span<const Vma> all = regions.vmas.regions();
  if (all.empty()) return;
  const u64 page_size = regions.vmas.page_size();
  const u64 page = align_down(va, page_size);
  const Vma* above = nullptr;
  const Vma* below = nullptr;
  for (const Vma& v : all) {
    if (v.start > page && above == nullptr) above = &v;
    if (v.end <= page) below = &v;
  }
  // Below the record's own break the address is the heap's: no region there is brk's mistake.
  if (va >= regions.heap_start && va < regions.brk) {
    // Where the record's heap stops: the end of the last region below the page, from heap_start on.
    const u64 ends = below != nullptr && below->end > regions.heap_start ? below->end : regions.heap_start;
    format_to(sink,
              "; yet {:#x} lies below the break {:#x} (the heap from {:#x}, its regions ending at {:#x}{}): brk "
              "recorded the heap short of its break; the heap's region must reach the break rounded up to a "
              "page ({:#x})",
              va, regions.brk, regions.heap_start, ends,
              ends == align_down(regions.brk, page_size) && regions.brk % page_size != 0
                  ? ", the break rounded down to a page"
                  : "",
              align_up(regions.brk, page_size));
    return;
  }
  const auto pages = [page_size](u64 from, u64 to) { return (to - from) / page_size; };
  // A distance under 16 MiB is said in pages (the student counts them); a far one in a rounded
  // size, since "34359737324 page(s)" tells a reader nothing.
  const auto distance = [&sink, page_size](u64 count) {
    if (count < 16 * MiB / page_size) {
      format_to(sink, "{} page(s)", count);
      return;
    }
    constexpr u64 TiB = 1024 * GiB;
    const u64 bytes = count * page_size;
    const struct {
      u64 unit;
      const char* name;
    } scales[] = {{TiB, "TiB"}, {GiB, "GiB"}, {MiB, "MiB"}};
    for (const auto& s : scales) {
      if (bytes >= s.unit) {
        format_to(sink, "about {} {}", (bytes + s.unit / 2) / s.unit, s.name);
        return;
      }
    }
  };
  if (above != nullptr && above->kind == VmaKind::Stack && !(above->flags & kVmaGrowsDown) &&
      above->start - page <= regions.stack_limit) {
    format_to(sink, "; the page is {} page(s) below the stack ", pages(page, above->start));
    above->format(sink);
    format_to(sink, ", which does not grow down: it lacks the grows-down flag, so no fault below it can extend it");
    return;
  }
  if (above != nullptr && (above->flags & kVmaGrowsDown)) {
    const u64 floor = above->end > regions.stack_limit ? above->end - regions.stack_limit : 0;
    if (page >= floor) {
      format_to(sink, "; yet the page is {} page(s) below the grows-down region ", pages(page, above->start));
      above->format(sink);
      format_to(sink, ", within its limit (lowest {:#x}): the stack should have grown to it", floor);
      return;
    }
    if (page + regions.stack_gap >= floor) {
      format_to(sink, "; the page is in the guard gap below the stack's lowest address {:#x} (", floor);
      above->format(sink);
      format_to(sink, "): a stack overflow, which decide_fault() must deny as 'stack limit' (the gap's own verdict), "
                      "not as 'no VMA'");
      return;
    }
  }
  format_to(sink, "; the page lies ");
  if (below != nullptr) {
    distance(pages(below->end, page) + 1);
    format_to(sink, " past the end of ");
    below->format(sink);
  }
  if (below != nullptr && above != nullptr) format_to(sink, " and ");
  if (above != nullptr) {
    distance(pages(page, above->start));
    format_to(sink, " below ");
    above->format(sink);
  } else {
    format_to(sink, "{}above every region", below != nullptr ? ", " : "");
  }
}

void explain_stack_limit(FormatSink& sink, const UserRegions& regions, const FaultVerdict& v) {
  // A stack grown to its limit is as large as the limit: only a smaller limit is wrong.
  if (!v.has_vma || (regions.stack_limit != 0 && regions.stack_limit >= v.vma.size())) return;
  format_to(sink,
            "; the record's stack limit is {:#x} bytes, less than the stack region's own {:#x}: the stack "
            "can never grow (the record's stack_limit was never set, or lost)",
            regions.stack_limit, v.vma.size());
}

const char* refused_without_overlap(const VmaSet& vmas, const Vma& part) {
  if (part.start >= part.end || !vmas.overlapping(part.start, part.end).empty()) return nullptr;
  VmaSet probe(vmas.allocator(), vmas.page_size());
  if (probe.copy_from(vmas).ok() && probe.insert(part).ok())
    return "yet no region of the record overlaps the growth [page, the stack's start), and insert() takes exactly "
           "that range when asked for it (tried on a copy of the record): grow_stack() asked the record for another "
           "range, one that overlaps a region (the growth must end where the stack starts, not at the stack's top)";
  return "yet no region of the record overlaps the range: it only touches a neighbour (one ends where the other "
         "starts), which insert() must take (and merge when they are alike)";
}

}  // namespace pagoda
