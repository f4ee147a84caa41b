#include "mm/pt/walk.hpp"

namespace pagoda {

void Walk::format_stop(FormatSink& sink) const {
  const WalkLevel& at = last();
  switch (stop) {
    case WalkStop::Mapped: format_to(sink, "mapped"); return;
    case WalkStop::NotPresent: format_to(sink, "{} entry {} not present", at.name, at.index); return;
    case WalkStop::NonCanonical: format_to(sink, "non-canonical address {}", Hex{va.value()}); return;
    case WalkStop::ReservedBits: format_to(sink, "reserved bit set in {} entry {}", at.name, at.index); return;
    case WalkStop::TableUnreachable:
      format_to(sink, "{} table at {} is not accessible to the kernel (bad table address?)", at.name,
                Hex{at.table.value()});
      return;
  }
}

void Walk::format(FormatSink& sink) const {
  format_to(sink, "walk of {} through root {}:\n", Hex{va.value()}, Hex{root.value()});
  for (usize i = 0; i < depth; ++i) {
    const WalkLevel& l = levels[i];
    format_to(sink, "  {:<4}[{:>3}] @{} = {}  ", l.name, l.index, Hex{l.table.value() + l.index * sizeof(u64)},
              Hex{l.entry});
    if (describe_entry) describe_entry(sink, l.entry, l.level);
    format_to(sink, "\n");
  }
  if (mapped()) {
    format_to(sink, "  -> page {} ({} KiB), {}{}\n", Hex{pa.value() & ~(page_size - 1)}, page_size / KiB, perms,
              perms.read ? "" : ", held: invalid to the MMU, the frame kept (no access)");
  } else {
    format_to(sink, "  -> stopped: ");
    format_stop(sink);
    format_to(sink, "\n");
  }
}

void explain_fault(FormatSink& sink, const Walk& walk, Access access) {
  if (!walk.mapped()) {
    walk.format_stop(sink);
  } else if (!walk.perms.read) {
    format_to(sink, "no-access page (held: invalid to the MMU, its frame kept)");
  } else if (!access.user && walk.perms.user && access.execute) {
    format_to(sink, "kernel executed user memory (SMEP/PXN: the kernel never runs user code)");
  } else if (!access.user && walk.perms.user) {
    format_to(sink, "kernel touched user memory (SMAP/PAN: only a checked copy may, with the guard lifted)");
  } else if (access.execute && !walk.perms.execute) {
    format_to(sink, "execute of NX page");
  } else if (access.write && !walk.perms.write) {
    format_to(sink, "write to read-only page");
  } else if (access.user && !walk.perms.user) {
    format_to(sink, "user access to supervisor page");
  } else {
    format_to(sink, "the page is mapped and allows this access now (a stale TLB entry, or the tables changed)");
  }
}

}  // namespace pagoda
