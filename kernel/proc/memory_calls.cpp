// The memory system calls of lab 5 (see memory_calls.hpp).
#include "proc/memory_calls.hpp"

#include "arch_impl/user_space.hpp"
#include "core/lab.hpp"
#include "lib/abi.hpp"
#include "lib/console.hpp"
#include "lib/facts.hpp"
#include "mm/vm.hpp"
#include "proc/loader.hpp"
#include "proc/user_memory.hpp"

namespace pagoda::proc {
namespace {

using abi::Errno;

constexpr i64 fail(Errno e) { return abi::error_result(e); }

PAGODA_FACT(mmap_base, kMmapBase)

/// The region permissions of protection bits @p prot (already checked): write implies read, as
/// every page the MMU uses is readable (PROT_NONE's pages are held instead: page_perms_of()).
[[maybe_unused]] Perms perms_of(u64 prot) {
  const bool w = prot & abi::kProtWrite;
  return Perms{.read = w || (prot & abi::kProtRead), .write = w, .execute = bool(prot & abi::kProtExec), .user = true};
}

/// EINVAL unless @p prot is valid; EACCES for write with execute (W^X).
i64 check_prot(u64 prot) {
  if (prot & ~abi::kProtMask) return fail(Errno::Inval);
  if ((prot & abi::kProtWrite) && (prot & abi::kProtExec)) return fail(Errno::Access);
  return 0;
}

/// True when [addr, addr + length) is page aligned, non-empty, does not wrap and lies in the
/// part of the user half mappings may use; @p end receives addr + length rounded up to a page.
bool range_ok(u64 addr, u64 length, u64& end) {
  if (length == 0 || !is_aligned(addr, kPageSize) || length > arch::UserSpace::kEnd) return false;
  end = addr + align_up(length, kPageSize);
  return end > addr && addr >= kMmapMin && end <= arch::UserSpace::kEnd;
}

Errno errno_of(Error e) { return e == Error::NoMemory ? Errno::NoMem : Errno::Inval; }

/// The permissions a page of @p vma already mapped to @p frame gets now: page_perms_of(), except
/// that a frame shared copy-on-write (lab 6: its reference count is above 1) stays read-only:
/// the first write copies it.
[[maybe_unused]] Perms mapped_page_perms(const Vma& vma, PhysAddr frame) {
  Perms perms = page_perms_of(vma);
  if (perms.write && vm::frame_refs().count(frame) > 1) perms.write = false;
  return perms;
}

/// Gives every page already brought in in [start, end) its region's permissions
/// (mapped_page_perms()): under PROT_NONE the pages become held (invalid to the MMU, frames and
/// contents kept), and back to present under an accessible region. The batch invalidates the
/// TLB entries of the pages it changed. NotFound for a mapped page no region covers.
[[maybe_unused]] Result<void> reprotect_pages(Process& p, u64 start, u64 end) {
  // LAB 5 BEGIN give every mapped page of [start, end) its region's permissions
  ConsistencyBatch batch = p.space().batch();
  for (AddressSpace::Cursor c = p.space().cursor(batch, VirtAddr(start)); c.next_mapped(VirtAddr(end)); c.next()) {
    const Vma* vma = p.regions().vmas.find(c.va().value());
    if (vma == nullptr) return Error(Error::NotFound, "a mapped page outside every region");
    TRY(c.protect(mapped_page_perms(*vma, c.pa())));
  }
  return {};
  // LAB 5 SKELETON
  // (void)p;
  // (void)start;
  // (void)end;
  // return lab_not_done("lab 5: write reprotect_pages() in kernel/proc/memory_calls.cpp (labs/05-vmas/README.md)");
  // LAB 5 END
}

/// Removes [start, end) from the record, then unmaps its pages and frees their frames
/// (release_pages()). The record changes first: a failure there (NoMemory, splitting a region)
/// leaves everything as it was.
Result<void> remove_range(Process& p, u64 start, u64 end) {
  // LAB 5 BEGIN forget [start, end): the record first, then the pages
  TRY(p.regions().vmas.remove(start, end));
  usize pages = 0;
  return release_pages(p.space(), start, end, pages);
  // LAB 5 SKELETON
  // (void)p;
  // (void)start;
  // (void)end;
  // return lab_not_done("lab 5: write remove_range() in kernel/proc/memory_calls.cpp (labs/05-vmas/README.md)");
  // LAB 5 END
}

}  // namespace

Result<void> release_pages(AddressSpace& space, u64 start, u64 end, usize& pages) {
  pages = 0;
  // Lab 7: the swapped-out pages' slots given back, the mapped pages forgotten by the reverse map.
  TRY(vm::forget_user_pages(space, VirtAddr(start), VirtAddr(end)));
  return free_user_pages(space, VirtAddr(start), VirtAddr(end), pages);  // lab 3's
}

i64 sys_mmap(Process& p, u64 addr, u64 length, u64 prot, u64 flags) {
  if (const i64 bad = check_prot(prot)) return bad;
  if ((flags & ~abi::kMapMask) || (flags & abi::kMapFixed && flags & abi::kMapFixedNoReplace))
    return fail(Errno::Inval);
  if (length == 0 || length > arch::UserSpace::kEnd) return fail(Errno::Inval);
  const bool fixed = flags & (abi::kMapFixed | abi::kMapFixedNoReplace);
  u64 end = 0;
  if (fixed && !range_ok(addr, length, end)) return fail(Errno::Inval);
  // LAB 5 BEGIN place the mapping, replace what a fixed one covers, record it (nothing is mapped)
  const u64 size = align_up(length, kPageSize);
  VmaSet& vmas = p.regions().vmas;
  u64 start = 0;
  if (fixed) {
    start = addr;
    if (!vmas.overlapping(start, end).empty()) {
      if (flags & abi::kMapFixedNoReplace) return fail(Errno::Exist);
      const Result<void> removed = remove_range(p, start, end);
      if (removed.is_error()) return fail(errno_of(removed.error()));
    }
  } else {
    // A hint that is free is taken; otherwise the lowest free range above kMmapBase, below
    // the stack's gap.
    const u64 high = kUserStackTop - kUserStackLimit - kUserStackGap;
    if (range_ok(addr, length, end) && end <= high && vmas.overlapping(addr, end).empty()) {
      start = addr;
    } else {
      const Result<u64> found = vmas.find_free(size, kMmapBase, high);
      if (found.is_error()) return fail(Errno::NoMem);
      start = found.value();
      end = start + size;
    }
  }
  const Result<void> inserted = vmas.insert(Vma{.start = start, .end = end, .perms = perms_of(prot)});
  if (inserted.is_error()) return fail(errno_of(inserted.error()));
  return i64(start);
  // LAB 5 SKELETON
  // (void)p;
  // (void)addr;
  // (void)lab_not_done("lab 5: write sys_mmap() in kernel/proc/memory_calls.cpp (labs/05-vmas/README.md)");
  // return fail(Errno::NoSys);
  // LAB 5 END
}

i64 sys_munmap(Process& p, u64 addr, u64 length) {
  u64 end = 0;
  if (!range_ok(addr, length, end)) return fail(Errno::Inval);
  const Result<void> removed = remove_range(p, addr, end);
  return removed.is_error() ? fail(errno_of(removed.error())) : 0;
}

i64 sys_mprotect(Process& p, u64 addr, u64 length, u64 prot) {
  if (const i64 bad = check_prot(prot)) return bad;
  u64 end = 0;
  if (!range_ok(addr, length, end)) return fail(Errno::Inval);
  // LAB 5 BEGIN mprotect: the record first (a range not wholly mapped is ENOMEM), then the pages
  const Result<void> changed = p.regions().vmas.protect(addr, end, perms_of(prot));
  if (changed.is_error()) return fail(changed.error() == Error::NotFound ? Errno::NoMem : errno_of(changed.error()));
  const Result<void> pages = reprotect_pages(p, addr, end);
  return pages.is_error() ? fail(Errno::NoMem) : 0;
  // LAB 5 SKELETON
  // (void)p;
  // (void)lab_not_done("lab 5: write sys_mprotect() in kernel/proc/memory_calls.cpp (labs/05-vmas/README.md)");
  // return fail(Errno::NoSys);
  // LAB 5 END
}

i64 sys_brk(Process& p, u64 new_break) {
  UserRegions& r = p.regions();
  if (new_break == 0 || new_break < r.heap_start) return i64(r.brk);
  // LAB 5 BEGIN brk: grow the heap region (nothing mapped) or shrink it (its pages freed)
  const u64 old_top = align_up(r.brk, kPageSize);
  if (new_break > kMmapBase) return i64(r.brk);  // the heap stays below the mmap area
  const u64 new_top = align_up(new_break, kPageSize);
  if (new_top > old_top) {
    if (!r.vmas.overlapping(old_top, new_top).empty()) return i64(r.brk);  // a mapping is in the way
    const Result<void> grown = r.vmas.insert(Vma{.start = old_top,
                                                 .end = new_top,
                                                 .perms = Perms{.read = true, .write = true, .user = true},
                                                 .kind = VmaKind::Heap});
    if (grown.is_error()) return i64(r.brk);
  } else if (new_top < old_top) {
    if (remove_range(p, new_top, old_top).is_error()) return i64(r.brk);
  }
  r.brk = new_break;
  return i64(r.brk);
  // LAB 5 SKELETON
  // (void)lab_not_done("lab 5: write sys_brk() in kernel/proc/memory_calls.cpp (labs/05-vmas/README.md)");
  // return i64(r.brk);
  // LAB 5 END
}

i64 sys_sbrk(Process& p, i64 increment) {
  const u64 old = p.regions().brk;
  const u64 wanted = old + u64(increment);
  if ((increment > 0 && wanted < old) || (increment < 0 && wanted > old)) return fail(Errno::NoMem);
  if (increment == 0) return i64(old);
  if (u64(sys_brk(p, wanted)) != wanted) return fail(Errno::NoMem);
  return i64(old);
}

i64 sys_vma_list(Process& p, u64 out, u64 max_count) {
  // The test call also runs the debug check of the record against the page tables, once there is
  // a record (before lab 5 the loader records no region, and every mapped page would be "not
  // covered": a complaint about a lab not begun, which would take a failure's first line).
  const Span<const Vma> all = p.regions().vmas.regions();
  char problem[256];
  BufferSink report(problem, sizeof problem);
  if (!all.empty() && !check_vmas(p, &report)) println("proc {} ({}): {}", p.pid, p.name_view(), StringView(problem));
  for (usize i = 0; i < all.size() && i < max_count; ++i) {
    const Vma& v = all[i];
    const abi::VmaInfo info{.start = v.start,
                            .end = v.end,
                            .prot = u32((v.perms.read ? abi::kProtRead : 0) | (v.perms.write ? abi::kProtWrite : 0) |
                                        (v.perms.execute ? abi::kProtExec : 0)),
                            .kind = u32(v.kind),
                            .offset = v.offset};
    if (copy_to_user(p.space(), out + i * sizeof info, &info, sizeof info).is_error()) return fail(Errno::Fault);
  }
  return i64(all.size());
}

}  // namespace pagoda::proc
