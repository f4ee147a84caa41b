// The fault decision and the coverage check over a user space's record (see user_regions.hpp);
// the words of a decision are user_regions_report.cpp's.
#include "mm/space/user_regions.hpp"

#include "core/lab.hpp"
#include "mm/space/address_space.hpp"

namespace pagoda {

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
