// The VMA set in the kernel, on the kernel heap: a few regions split and merged, then the set
// destroyed; the heap must be back where it started.
#include "core/panic.hpp"
#include "core/selftest.hpp"
#include "lib/console.hpp"
#include "lib/proof.hpp"
#include "mm/heap.hpp"
#include "mm/heap_allocator.hpp"
#include "mm/base/page.hpp"
#include "mm/vm.hpp"
#include "mm/space/vma.hpp"

namespace pagoda {
namespace {

constexpr u64 kPage = kPageSize;
constexpr u64 kBase = 0x40'0000;
constexpr u64 kVmaTag = 0x564d;  // "VM"
constexpr u64 kRegions = 40;

void must(Result<void> r, const char* what) {
  if (r.is_error()) panic("vma: {} failed: {}", what, error_name(r.error()));
}

}  // namespace

PAGODA_SELFTEST(vma_heap) {
  if (!vm::ready()) panic("vma_heap needs the kernel heap (labs 1 and 2)");
  const heap::Stats before = heap::stats();
  const u64 hole = 1 + proof(ctx.token, kVmaTag) % (kRegions - 2);  // which region loses its middle
  usize peak_regions = 0;
  heap::Stats during;
  {
    VmaSet set(heap::allocator(), kPage);
    const Perms rw{.read = true, .write = true, .user = true};
    const Perms ro{.read = true, .user = true};
    for (u64 i = 0; i < kRegions; ++i)  // alternating permissions: nothing merges
      must(
          set.insert(Vma{.start = kBase + i * 4 * kPage, .end = kBase + (i + 1) * 4 * kPage, .perms = i % 2 ? ro : rw}),
          "insert");
    must(set.remove(kBase + hole * 4 * kPage + kPage, kBase + hole * 4 * kPage + 3 * kPage), "remove");
    peak_regions = set.size();
    during = heap::stats();
    const Result<void> across = set.protect(kBase, kBase + kRegions * 4 * kPage, rw);  // a range with a hole
    if (across.ok() || across.error() != Error::NotFound) panic("vma: protect across the hole was not refused");
    println("vma: {} regions after the hole in region {}; protect across the hole refused", peak_regions, hole);
    must(set.protect(kBase, kBase + hole * 4 * kPage, rw), "protect");
    if (!set.check(&console_sink())) panic("vma: the set is broken");
    print("vma:");
    for (const Vma& v : set.overlapping(kBase, kBase + (hole + 2) * 4 * kPage)) {
      print(" ");
      v.format(console_sink());
    }
    println("");
  }
  const heap::Stats after = heap::stats();
  println("vma: heap objects before {} during {} after {}; bytes before {} during {} after {} proof={:016x}",
          before.live_allocations, during.live_allocations, after.live_allocations, before.live_bytes,
          during.live_bytes, after.live_bytes, proof(ctx.token, peak_regions));
}

}  // namespace pagoda
