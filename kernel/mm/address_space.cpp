#include "mm/address_space.hpp"

#include "core/panic.hpp"
#include "mm/mmu.hpp"

namespace pagoda {

Result<AddressSpace> AddressSpace::create_kernel(TableMemory& memory) {
  return AddressSpace(TRY(arch::ArchAddressSpace::create_kernel(memory)), debug::RootKind::Kernel, "kernel");
}

Result<AddressSpace> AddressSpace::create_user(const AddressSpace& kernel) {
  AddressSpace space(TRY(arch::ArchAddressSpace::create_user(kernel.arch_)), debug::RootKind::Process, "user");
  // A root made without the kernel half dies at its first switch, with no word (the CPU
  // cannot reach its own trap entry). Say so now, while the kernel's root is live; unless the
  // checks are off (vm_check=off), so that a lab can show the raw symptom.
  char text[SwitchRefusal::kDetailSize];
  BufferSink why(text, sizeof text);
  if (s_switch_checks && !space.arch_.shares_kernel_half(why))
    panic("AddressSpace::create_user: the new root {:#x} does not share the kernel half: {}", space.root().value(),
          why.view());
  return space;
}

// ---- The pre-switch check ------------------------------------------------------------------

namespace {

/// True when @p perms (of a mapped page) allow every access @p range needs.
bool allows(const Perms& perms, const CriticalRange& range) {
  return (!range.access.write || perms.write) && (!range.access.execute || perms.execute) &&
         (!range.access.user || perms.user);
}

}  // namespace

SwitchRefusal AddressSpace::check_switch(Span<const CriticalRange> needed) {
  SwitchRefusal out;
  out.root = root();
  const auto refuse_at = [&](const CriticalRange& range, VirtAddr va, bool before_mapped) {
    out.walk = query(va);  // the whole walk, for the report
    if (out.walk.root != PhysAddr()) out.root = out.walk.root;  // the root va is translated through (AArch64: TTBR0's or TTBR1's)
    out.kind = out.walk.mapped() ? SwitchRefusal::Kind::Denied : SwitchRefusal::Kind::NotMapped;
    out.range = range;
    out.va = va;
    out.before_mapped = before_mapped;
  };
  // A cursor re-reads only the tables below the first level whose index changed: a range costs
  // one table lookup per leaf, not a whole walk. It only reads here (the batch stays empty).
  ConsistencyBatch reads = batch();
  for (const CriticalRange& range : needed) {
    // The focus first (the stack pointer, the instruction): the address a report should name.
    Cursor c = cursor(reads, range.focus);
    if (!c.mapped() || !allows(c.perms(), range)) {
      refuse_at(range, range.focus, false);
      break;
    }
    // Then every page, a leaf at a time (a block is one step).
    const u64 start = range.start.value();
    const u64 end = start + range.size < start ? ~u64{0} : start + range.size;
    for (u64 va = start; va < end;) {
      c.find(VirtAddr(va));
      if (!c.mapped() || !allows(c.perms(), range)) {
        refuse_at(range, VirtAddr(va), va > start);
        break;
      }
      const u64 next = c.range_end().value();
      if (next <= va) break;  // the top of the address space
      va = next;
    }
    if (!out.ok()) break;
  }
  if (out.ok()) {
    BufferSink why(out.detail, sizeof out.detail);
    if (!arch_.shares_kernel_half(why)) out.kind = SwitchRefusal::Kind::KernelHalf;
  } else if (out.walk.depth == 1) {
    // Stopped at the top level, in a root that lost (some of) the kernel half: say so too.
    char text[SwitchRefusal::kDetailSize];
    BufferSink why(text, sizeof text);
    if (!arch_.shares_kernel_half(why))
      (void)format_buffer(out.detail, sizeof out.detail, "it does not share the kernel half: {}", why.view());
  }
  return out;
}

void AddressSpace::refuse(const SwitchRefusal& refusal, Span<const CriticalRange> needed) {
  println("vm: refusing to load root {:#x}: what the CPU needs right after the switch, walked in it:",
          refusal.root.value());
  for (const CriticalRange& range : needed) {
    const SwitchRefusal one = check_switch(Span<const CriticalRange>(&range, 1));
    print("  {:<40} {:#018x}-{:#018x} {}: ", range.what, range.start.value(), range.start.value() + range.size - 1,
          range.access.execute ? "r-x" : range.access.write ? "rw-" : "r--");
    if (one.kind == SwitchRefusal::Kind::NotMapped || one.kind == SwitchRefusal::Kind::Denied) {
      print("{} at {:#x}: ", one.kind == SwitchRefusal::Kind::NotMapped ? "NOT MAPPED" : "DENIED", one.va.value());
      explain_fault(console_sink(), one.walk, range.access);
      println("");
    } else {
      println("ok");
    }
  }
  if (refusal.kind != SwitchRefusal::Kind::KernelHalf) refusal.walk.format(console_sink());
  println("  (the boot option vm_check=off skips this check)");
  panic("{}", refusal);
}

void AddressSpace::activate() {
  if (s_switch_checks) {
    CriticalRanges needed;
    arch::critical_ranges(needed);
    if (needed.dropped() > 0)
      panic("arch::critical_ranges() gave more than {} ranges: {} were dropped", CriticalRanges::kMax, needed.dropped());
    const SwitchRefusal refusal = check_switch(needed.ranges());
    if (!refusal.ok()) refuse(refusal, needed.ranges());
  }
  arch_.activate();
}

Result<void> AddressSpace::map(VirtAddr va, PhysAddr pa, Perms perms) {
  if (!may_change(va, kPageSize)) return Error::InvalidArgument;
  ConsistencyBatch b = batch();
  return cursor(b, va).map(pa, perms);
}

Result<void> AddressSpace::map_range(VirtAddr va, PhysAddr pa, u64 size, Perms perms) {
  if (!may_change(va, size)) return Error::InvalidArgument;
  ConsistencyBatch b = batch();
  return cursor(b, va).map_range(pa, size, perms);
}

Result<PhysAddr> AddressSpace::unmap(VirtAddr va) {
  if (!may_change(va, kPageSize)) return Error::InvalidArgument;
  ConsistencyBatch b = batch();
  return cursor(b, va).unmap();
}

Result<void> AddressSpace::unmap_range(VirtAddr va, u64 size) {
  if (!may_change(va, size)) return Error::InvalidArgument;
  ConsistencyBatch b = batch();
  TRY(split_partial_blocks(b, va, size));
  return cursor(b, va).unmap_range(size);
}

Result<void> AddressSpace::protect(VirtAddr va, u64 size, Perms perms) {
  if (!may_change(va, size)) return Error::InvalidArgument;
  ConsistencyBatch b = batch();
  TRY(split_partial_blocks(b, va, size));
  return cursor(b, va).protect_range(size, perms);
}

Result<void> AddressSpace::map_block(VirtAddr va, PhysAddr pa, u64 size, Perms perms) {
  if (!may_change(va, size)) return Error::InvalidArgument;
  for (usize level = 1; level + 1 < Format::kLevels; ++level) {
    if (Format::entry_span(level) != size || !Format::can_hold_block(level)) continue;
    ConsistencyBatch b = batch();
    return cursor(b, va).map_block(pa, level, perms);
  }
  return Error::InvalidArgument;
}

Result<void> AddressSpace::split_partial_blocks(ConsistencyBatch& batch, VirtAddr va, u64 size) {
  if (size < kPageSize || !va.is_aligned(kPageSize)) return Error::InvalidArgument;
  // LAB 2 BEGIN split the large pages the range covers only in part
  const VirtAddr last = va.offset(size - kPageSize);  // the range's last page
  const VirtAddr ends[] = {va, last};
  for (const VirtAddr at : ends) {
    for (;;) {  // a 1 GiB block splits into 2 MiB ones, which may need splitting again
      Cursor c = cursor(batch, at);
      if (!c.mapped() || c.level() == Format::kLevels - 1) break;
      const VirtAddr first = at.align_down(c.span());
      const VirtAddr final_page = first.offset(c.span() - kPageSize);
      if (first >= va && final_page <= last) break;  // the range covers it whole: changed as one
      TRY(c.split());
    }
  }
  return {};
  // LAB 2 SKELETON
  // // Lab 1 has no large pages: the cursor refuses a range that covers one in part (Unsupported).
  // const VirtAddr ends[] = {va, va.offset(size - kPageSize)};
  // for (const VirtAddr at : ends)
  //   if (query(at).page_size > kPageSize)
  //     return Error(Error::NotImplemented, "lab 2: write AddressSpace::split_partial_blocks() in "
  //                                         "kernel/mm/address_space.cpp (labs/02-higher-half/README.md)");
  // (void)batch;
  // return {};
  // LAB 2 END
}

Result<void> AddressSpace::split(VirtAddr va) {
  if (!may_change(va, kPageSize)) return Error::InvalidArgument;
  ConsistencyBatch b = batch();
  return cursor(b, va).split();
}

}  // namespace pagoda
