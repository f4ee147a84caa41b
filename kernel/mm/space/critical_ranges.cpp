#include "mm/space/critical_ranges.hpp"

#include "mm/base/page.hpp"

namespace pagoda {

void CriticalRanges::add(const char* what, VirtAddr start, u64 size, Access access, VirtAddr focus) {
  if (size == 0) return;
  if (count_ == kMax) {
    ++dropped_;
    return;
  }
  const bool in_range = focus.value() >= start.value() && focus.value() - start.value() < size;
  ranges_[count_++] = CriticalRange{what, start, size, access, in_range ? focus : start};
}

void CriticalRanges::note_last(const char* note) {
  if (count_ > 0 && dropped_ == 0) ranges_[count_ - 1].note = note;
}

namespace {

/// "writable", "executable", "writable and executable": what a range needs beyond reading.
const char* needs(Access access) {
  if (access.write && access.execute) return "writable and executable";
  if (access.write) return "writable";
  if (access.execute) return "executable";
  return "readable";
}

}  // namespace

void SwitchRefusal::format(FormatSink& sink) const {
  switch (kind) {
    case Kind::None: format_to(sink, "root {:#x} maps everything the CPU needs after the switch", root.value()); return;
    case Kind::KernelHalf:
      format_to(sink, "new root {:#x} does not share the kernel half: {}", root.value(), StringView(detail));
      return;
    case Kind::TrapStack:
      format_to(sink, "the kernel stack for traps from user mode is wrong for new root {:#x}: {}", root.value(),
                StringView(detail));
      return;
    case Kind::NotMapped:
    case Kind::Denied: break;
  }
  if (kind == Kind::NotMapped) {
    format_to(sink, "new root {:#x} does not map {} {:#x} (", root.value(), range.what, va.value());
    walk.format_stop(sink);
    format_to(sink, ")");
  } else {
    format_to(sink, "new root {:#x} maps {} {:#x} {}, but it must be {} (", root.value(), range.what, va.value(),
              walk.perms, needs(range.access));
    explain_fault(sink, walk, range.access);
    format_to(sink, ")");
  }
  const u64 last_page = align_down(range.start.value() + (range.size - 1), kPageSize);
  if (before_mapped && align_down(va.value(), kPageSize) == last_page)
    format_to(sink, ": only its last page fails, so its end was rounded down instead of up");
  if (range.note[0] != '\0') format_to(sink, ": {}", range.note);
  if (detail[0] != '\0') format_to(sink, "; {}", StringView(detail));
}

}  // namespace pagoda
