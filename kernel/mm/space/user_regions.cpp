// The fault decision and the coverage check over a user space's record (see user_regions.hpp).
#include "mm/space/user_regions.hpp"

#include "core/lab.hpp"
#include "mm/space/address_space.hpp"

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

namespace {

/// True when @p vma allows no access at all (PROT_NONE).
bool allows_nothing(const Vma& vma) { return !vma.perms.read && !vma.perms.write && !vma.perms.execute; }

/// Whether @p vma allows @p access (Allowed); otherwise why not: NoAccess for a region that
/// allows nothing (whatever the access), else ExecuteDenied or WriteDenied. A read is allowed
/// by any region that allows something (every page the MMU uses is readable).
[[maybe_unused]] FaultCause permits(const Vma& vma, Access access) {
  // LAB 5 BEGIN whether a region's permissions allow an access, and why not
  if (allows_nothing(vma)) return FaultCause::NoAccess;
  if (access.execute && !vma.perms.execute) return FaultCause::ExecuteDenied;
  if (access.write && !vma.perms.write) return FaultCause::WriteDenied;
  return FaultCause::Allowed;
  // LAB 5 SKELETON
  // (void)vma;
  // (void)access;
  // (void)lab_not_done("lab 5: write permits() in kernel/mm/space/user_regions.cpp (labs/05-vmas/README.md)");
  // return FaultCause::NoVma;
  // LAB 5 END
}

}  // namespace

Perms page_perms_of(const Vma& vma) {
  // Readable whenever anything is allowed (the MMU cannot map a page it may not read); a region
  // that allows nothing holds its pages (read false: invalid to the MMU, frames kept).
  return Perms{.read = !allows_nothing(vma), .write = vma.perms.write, .execute = vma.perms.execute, .user = true};
}

FaultVerdict decide_fault(const UserRegions& regions, u64 va, Access access) {
  // LAB 5 BEGIN the fault's decision: populate, grow the stack, or deny naming why
  FaultVerdict v;
  const VmaSet& vmas = regions.vmas;
  if (const Vma* in = vmas.find(va)) {
    v.vma = *in;
    v.has_vma = true;
    v.cause = permits(*in, access);
    v.action = v.cause == FaultCause::Allowed ? FaultAction::Populate : FaultAction::Deny;
    return v;
  }
  // Not in a region: just below a stack (the first region above the address), it may grow.
  const u64 page = align_down(va, vmas.page_size());
  const Span<const Vma> above = vmas.overlapping(page, align_down(~u64{0}, vmas.page_size()));
  if (above.empty() || !(above[0].flags & kVmaGrowsDown)) return v;  // NoVma
  const Vma& stack = above[0];
  const u64 floor = stack.end > regions.stack_limit ? stack.end - regions.stack_limit : 0;
  if (page >= floor) {
    v.vma = stack;
    v.vma.start = page;
    v.has_vma = true;
    v.cause = permits(stack, access);
    v.action = v.cause == FaultCause::Allowed ? FaultAction::Grow : FaultAction::Deny;
    return v;
  }
  if (page + regions.stack_gap >= floor) {
    v.vma = stack;
    v.has_vma = true;
    v.cause = FaultCause::StackLimit;
    v.floor = floor;
  }
  return v;
  // LAB 5 SKELETON
  // (void)regions;
  // (void)va;
  // (void)access;
  // (void)lab_not_done("lab 5: write decide_fault() in kernel/mm/space/user_regions.cpp (labs/05-vmas/README.md)");
  // return FaultVerdict{};  // "no VMA": every fault from user mode ends its process, as in lab 4
  // LAB 5 END
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
    format_to(sink, "; yet {:#x} lies below the break {:#x} (the heap from {:#x}, its regions ending at {:#x}{}): brk "
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
  format_to(sink, "; the record's stack limit is {:#x} bytes, less than the stack region's own {:#x}: the stack "
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

bool check_coverage(AddressSpace& space, const VmaSet& vmas, u64 user_end, FormatSink* report, usize* mapped_pages) {
  usize pages = 0;
  const auto broken = [&](const char* what, const AddressSpace::ReadCursor& c, const Vma* vma) {
    if (report != nullptr) {
      format_to(*report, "VMA coverage broken: page {:#x} mapped {} to {:#x}: {}", c.va().value(), c.perms(),
                c.pa().value(), what);
      if (vma != nullptr) {
        format_to(*report, " ");
        vma->format(*report);
      }
    }
    if (mapped_pages != nullptr) *mapped_pages = pages;
    return false;
  };
  for (AddressSpace::ReadCursor c = space.read_cursor(VirtAddr(0)); c.next_mapped(VirtAddr(user_end)); c.next()) {
    const u64 size = c.range_end().value() - c.va().value();
    for (u64 at = c.va().value(); at < c.va().value() + size; at += vmas.page_size()) {
      ++pages;
      const Vma* vma = vmas.find(at);
      if (vma == nullptr) return broken("no VMA covers it", c, nullptr);
      const bool held = !c.perms().read, none = allows_nothing(*vma);
      if (none && !held) return broken("accessible, but its VMA allows no access (it must be held)", c, vma);
      if (!none && held) return broken("held (no access), but its VMA allows access", c, vma);
      if (!(c.perms() == page_perms_of(*vma))) return broken("other permissions than its VMA", c, vma);
    }
  }
  if (mapped_pages != nullptr) *mapped_pages = pages;
  return true;
}

}  // namespace pagoda
