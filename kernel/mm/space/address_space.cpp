/// @file address_space.cpp
/// @brief An address space's making and its changes: map, unmap, protect, and splitting the
/// large pages a range covers only in part (lab 2). The check that activate() makes before it
/// loads a root, and its proofs, are switch_check.cpp's.

#include "mm/space/address_space.hpp"

#include "core/arch.hpp"
#include "core/cpu.hpp"
#include "core/panic.hpp"
#include "mm/base/layout.hpp"
#include "mm/space/mmu.hpp"

namespace pagoda {

AddressSpace::AddressSpace(AddressSpace&& other)
    : arch_(move(other.arch_)), published_(move(other.published_)), regions_(other.regions_), owner_(other.owner_),
      checked_(other.checked_), checked_generation_(other.checked_generation_),
      checked_trap_top_(other.checked_trap_top_) {
  for (usize cpu = 0; cpu < kMaxCpus; ++cpu)
    if (s_loaded_on[cpu] == &other) s_loaded_on[cpu] = this;
  if (s_move_observer != nullptr) s_move_observer(other, *this);
}

AddressSpace::~AddressSpace() {
  // LAB 8 BEGIN a CPU idling in this root (lazy TLB) loads the kernel's before the tables go: this one at once, another by a request
  for (u32 cpu = 0; cpu < kMaxCpus; ++cpu) {
    if (s_loaded_on[cpu] != this || (arch_.lazy() >> cpu & 1) == 0) continue;
    if (cpu == arch::cpu_id()) {
      leave_lazy(reinterpret_cast<uptr>(this));
    } else {
      cpu_set_leave_space(&leave_lazy);
      (void)cpu_request(cpu, MailboxOp::LeaveSpace, reinterpret_cast<uptr>(this));
    }
  }
  // LAB 8 SKELETON
  // // (a CPU that idles with this root still loaded must let go of it before its tables are freed)
  // LAB 8 END
  for (usize cpu = 0; cpu < kMaxCpus; ++cpu)
    if (s_loaded_on[cpu] == this) s_loaded_on[cpu] = nullptr;
}

AddressSpace* AddressSpace::s_loaded_on[kMaxCpus] = {};

void AddressSpace::leave_lazy(uptr space) {
  // LAB 8 BEGIN leaving a root kept only while idle: the kernel's loaded (its CPUs joined first), the lazy stay ended, the old mask left where a load drops its translations
  const u32 me = arch::cpu_id();
  AddressSpace* const lazy = reinterpret_cast<AddressSpace*>(space);
  if (s_loaded_on[me] != lazy || s_lazy_kernel == nullptr || (lazy->arch_.lazy() >> me & 1) == 0) return;
  s_lazy_kernel->arch_.add_cpu(me);
  s_lazy_kernel->arch_.activate();
  (void)lazy->arch_.end_lazy(me);
  if (arch::ArchAddressSpace::kSwitchDropsTranslations) lazy->arch_.remove_cpu(me);
  s_loaded_on[me] = s_lazy_kernel;
  // LAB 8 SKELETON
  // (void)space;
  // LAB 8 END
}

Result<AddressSpace> AddressSpace::create_kernel(TableMemory& memory) {
  AddressSpace space(TRY(arch::ArchAddressSpace::create_kernel(memory)), debug::RootKind::Kernel, "kernel");
  forget_switch_proofs();  // its root may be where a destroyed kernel space's was
  return space;
}

Result<AddressSpace> AddressSpace::create_user(const AddressSpace& kernel) {
  AddressSpace space(TRY_DURING(arch::ArchAddressSpace::create_user(kernel.arch_), "making the user root"),
                     debug::RootKind::Process, "user");
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

Result<void> AddressSpace::map(VirtAddr va, PhysAddr pa, Perms perms) {
  if (!may_change(va, kPageSize))
    return Error(Error::InvalidArgument, "this space may not change the page (misaligned, or the other half)")
        .at(va.value());
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
  Cursor c = cursor(b, va);
  // What the leaf maps, read before the unmap: the frame unmap() must hand back (its caller frees
  // it). A wrong answer is caught here, at its producer, not later where the frame is freed.
  const PhysAddr mapped = c.mapped() ? c.pa() : PhysAddr(0);
  const Result<PhysAddr> was = c.unmap();
  if (!was.is_error() && was.value() != mapped)
    panic("unmap of {:#x}: Cursor::unmap() returned {:#x}, not the frame {:#x} the leaf mapped before the unmap "
          "(read the frame out of the entry before clearing it)",
          va.value(), was.value().value(), mapped.value());
  return was;
}

Result<void> AddressSpace::unmap_range(VirtAddr va, u64 size) {
  if (!may_change(va, size)) return Error::InvalidArgument;
  ConsistencyBatch b = batch();
  TRY(split_partial_blocks(b, va, size));
  return cursor(b, va).unmap_range(size);
}

Result<void> AddressSpace::protect(VirtAddr va, u64 size, Perms perms) {
  if (!may_change(va, size))
    return Error(Error::InvalidArgument, "this space may not change the range (misaligned, or the other half)")
        .at(va.value());
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
  //                                         "kernel/mm/space/address_space.cpp (labs/02-higher-half/README.md)");
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
