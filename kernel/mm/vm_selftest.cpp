// Lab 1 self-tests: what the kernel's own page tables translate, what they refuse, and that
// mapping and unmapping many pages gives every frame back. The grader (grade/test_lab1.py) chooses
// their inputs at run time (command-line words, or values it writes into guest RAM while the
// guest is stopped) and checks their effects from outside: QEMU's exception log, and the live
// page tables it walks itself.
#include "core/arch.hpp"
#include "core/cmdline.hpp"
#include "core/kmain.hpp"
#include "core/panic.hpp"
#include "core/selftest.hpp"
#include "lib/facts.hpp"
#include "lib/proof.hpp"
#include "lib/random.hpp"
#include "mm/heap.hpp"
#include "mm/base/layout.hpp"
#include "mm/space/mmu.hpp"
#include "mm/vm.hpp"
#include "mm/vmprint.hpp"

namespace pagoda {
namespace {

/// Something in .data for the translate test (initialised, so not in .bss).
[[gnu::used]] u64 g_selftest_data = 0x5041474f44415441;  // "PAGODATA"
/// Code in .data, for the NX test: the ISA's return instruction is copied in at run time (the
/// initialiser only keeps the array out of .bss).
[[gnu::used]] u8 g_data_code[16] = {0xff};

constexpr u64 kPage = kPageSize;

void require_vm() {
  if (!vm::ready()) panic("lab 1 is not done: the kernel has no page tables of its own (see the LAB TODO above)");
}

void print_translation(VirtAddr va) {
  const Walk w = vm::walk_active(va);
  if (w.mapped()) {
    println("translate: {} -> {} ({} KiB) {}", Hex{va.value()}, Hex{w.pa.value()}, w.page_size / KiB, w.perms);
  } else {
    print("translate: {} -> stopped: ", Hex{va.value()});
    w.format_stop(console_sink());
    println("");
  }
}

using Code = void (*)();

/// Checks that every page of the frame test holds its value.
void frames_check_pages(VirtAddr base, u64 pages, u64 seed) {
  for (u64 i = 0; i < pages; ++i)
    if (*reinterpret_cast<volatile u64*>(base.value() + i * kPage) != (i ^ seed)) panic("page {} lost its data", i);
}

/// Copies the ISA's return instruction to @p code (memory the test then tries to execute).
void place_return_instruction(volatile u8* code) {
  const Span<const u8> ret = arch::return_instruction();
  for (usize i = 0; i < ret.size(); ++i) code[i] = ret[i];
}

/// The address this function returns to: an address in its caller's code, wherever that runs.
[[gnu::noinline]] u64 caller_pc() { return reinterpret_cast<u64>(__builtin_return_address(0)); }

}  // namespace

/// Translates the addresses the grader delivers while the guest runs (it picks them from its own
/// walk of the live tables: kernel text and data, addresses unmapped at various levels); run by
/// hand, kmain, some data and an unmapped address.
PAGODA_SELFTEST(vm_translate) {
  require_vm();
  const usize n = await_grader_inputs();
  for (usize i = 0; i < n; ++i) print_translation(VirtAddr(pagoda_grader_inbox.values[i]));
  if (n == 0) {
    print_translation(VirtAddr(reinterpret_cast<u64>(&kmain)));
    print_translation(VirtAddr(reinterpret_cast<u64>(&g_selftest_data)));
    print_translation(VirtAddr(0x0000'2000'0000'0000ull));
  }
  print("translate: walk of kmain: ");
  vm::walk_active(VirtAddr(reinterpret_cast<u64>(&kmain))).format(console_sink());
}

/// Writes to addr=ADDRESS in kernel text (the grader picks it; kmain by default).
PAGODA_SELFTEST(vm_write_text) {
  require_vm();
  *reinterpret_cast<volatile u8*>(ctx.arg("addr", reinterpret_cast<uptr>(&kmain))) = 0xCC;
  panic("the write to kernel text did not fault");
}

PAGODA_SELFTEST(vm_exec_stack) {
  require_vm();
  u8 code[16];
  place_return_instruction(code);  // written at run time, into this stack frame
  asm volatile("" ::"r"(code) : "memory");
  reinterpret_cast<Code>(reinterpret_cast<uptr>(code))();
  panic("executing from the stack did not fault");
}

PAGODA_SELFTEST(vm_exec_data) {
  require_vm();
  place_return_instruction(g_data_code);
  reinterpret_cast<Code>(reinterpret_cast<uptr>(g_data_code))();
  panic("executing from .data did not fault");
}

/// Reads addr=ADDRESS inside page 0 (a null pointer plus a field offset the grader picks).
PAGODA_SELFTEST(vm_null) {
  require_vm();
  const volatile uptr address = ctx.arg("addr", 0);  // volatile: hides the null from the compiler
  const u64 value = *reinterpret_cast<volatile u64*>(address);
  panic("reading address {:#x} did not fault (it read {:#x})", address, value);
}

/// Maps pages=N fresh frames from base=VA (the grader picks both, the range crossing a 1 GiB
/// boundary so that it needs tables at every level below the root), writes page i's index xor
/// seed=S into it, reads it all back, unmaps everything and gives every frame back.
PAGODA_SELFTEST(vm_frames) {
  require_vm();
  FrameAllocator& frames = vm::frames();
  AddressSpace& table = vm::kernel_space();
  const VirtAddr base(ctx.arg("base", 0x0000'3001'0000'0000ull - 3 * MiB));
  const u64 pages = ctx.arg("pages", 1536);
  const u64 seed = ctx.arg("seed", 0);
  if (!is_aligned(base.value(), kPage) || pages == 0 || pages > frames.free_frames() / 2)
    panic("vm_frames: base={} pages={} is not a page-aligned range of a usable size", Hex{base.value()}, pages);

  const usize before = frames.free_frames();
  for (u64 i = 0; i < pages; ++i) {
    const PhysAddr frame = frames.allocate().value();
    const Result<void> r = table.map(base.offset(i * kPage), frame, kKernelData);
    if (r.is_error()) panic("map of page {} failed: {}", i, error_name(r.error()));
  }
  for (u64 i = 0; i < pages; ++i) *reinterpret_cast<volatile u64*>(base.value() + i * kPage) = i ^ seed;
  frames_check_pages(base, pages, seed);
  pagoda_grader_checkpoint(base.value(), pages, seed);  // all mapped: the grader walks them itself
  const usize during = frames.free_frames();
  for (u64 i = 0; i < pages; ++i) {
    const Result<PhysAddr> r = table.unmap(base.offset(i * kPage));
    if (r.is_error()) panic("unmap of page {} failed: {}", i, error_name(r.error()));
    frames.free(r.value());
  }
  const usize after = frames.free_frames();
  println("frames: {} pages at {}: free before {} during {} after {}", pages, Hex{base.value()}, before, during, after);
  print("frames: after unmapping, the walk of the first page stops: ");
  vm::walk_active(base).format_stop(console_sink());
  println("");
}

/// vmprint() of the live kernel space over [lo, hi): the grader stops the guest, picks the range
/// from its own walk of the live tables and delivers it; it walks the tables again at the
/// checkpoint, just before the print, and compares every line with what guest RAM holds. Run by
/// hand, the first 64 pages of the kernel text.
PAGODA_SELFTEST(vm_print) {
  require_vm();
  const usize n = await_grader_inputs();
  const VirtAddr text(align_down(reinterpret_cast<u64>(&kmain), kPage));
  const VirtAddr lo(n >= 2 ? pagoda_grader_inbox.values[0] : text.value());
  const VirtAddr hi(n >= 2 ? pagoda_grader_inbox.values[1] : text.value() + 64 * kPage);
  AddressSpace& space = vm::kernel_space();
  pagoda_grader_checkpoint(lo.value(), hi.value(), space.arch().tree_for(lo).root().value());
  vmprint(console_sink(), space.arch().tree_for(lo), lo, hi);
  println("vmprint: end");
}

namespace {
// How many pages a consistency batch lists before its flush invalidates everything: the grader's
// stale-TLB range is longer (grade/test_lab1.py).
PAGODA_FACT(batch_max_pages, ConsistencyBatch::kMaxPages)
}  // namespace

/// A stale TLB, made visible. Maps pages=N pages from base=VA (the grader picks both) to fresh
/// frames X_i holding x_i, reads each through its address (now the TLB holds the translation),
/// unmaps it and maps it to a second frame Y_i holding y_i, and reads it again: a read that still
/// gives x_i went through a TLB entry the unmap did not invalidate. (x_i and y_i come from
/// seed=S.) The grader stops at the checkpoint and compares each read with what the live tables
/// map now (grade/pagoda_grade/tlb.py). Then the same for a range of range=R pages (the grader
/// picks R, more than a batch lists page by page) above page N + 1, unmapped with one
/// unmap_range(): one batch whose flush must invalidate everything (its list overflowed); a second
/// checkpoint. Then the same for protect: page N is mapped rw-, written
/// (the TLB now holds a writable translation), protected r--, and written again, which must
/// fault; without the invalidation the write goes through the stale entry.
PAGODA_SELFTEST(vm_stale_tlb) {
  require_vm();
  constexpr u64 kMaxPages = 16, kMaxRange = 4 * ConsistencyBatch::kMaxPages;
  FrameAllocator& frames = vm::frames();
  AddressSpace& space = vm::kernel_space();
  const VirtAddr base(ctx.arg("base", 0x0000'3001'0000'0000ull));
  const u64 pages = ctx.arg("pages", 8);
  const u64 seed = ctx.arg("seed", 0x5a5a);
  if (!is_aligned(base.value(), kPage) || pages < 2 || pages > kMaxPages)
    panic("vm_stale_tlb: base={} pages={}: a page-aligned base and 2..{} pages", Hex{base.value()}, pages, kMaxPages);
  const auto x_value = [&](u64 i) { return (seed ^ (i << 8)) * 2 + 1; };
  const auto y_value = [&](u64 i) { return (seed ^ (i << 8)) * 2 + 2; };
  static u64 read[kMaxPages];
  for (u64 i = 0; i < pages; ++i) {
    const VirtAddr va = base.offset(i * kPage);
    const PhysAddr x = MUST(frames.allocate()), y = MUST(frames.allocate());
    *static_cast<volatile u64*>(vm::phys_to_ptr(x, kPage)) = x_value(i);
    *static_cast<volatile u64*>(vm::phys_to_ptr(y, kPage)) = y_value(i);
    MUST(space.map(va, x, kKernelData));
    if (*reinterpret_cast<volatile u64*>(va.value()) != x_value(i)) panic("page {} does not read its first frame", i);
    frames.free(MUST(space.unmap(va)));
    MUST(space.map(va, y, kKernelData));
    read[i] = *reinterpret_cast<volatile u64*>(va.value());
  }
  pagoda_grader_checkpoint(base.value(), pages, reinterpret_cast<u64>(read));  // the grader compares
  for (u64 i = 0; i < pages; ++i)
    println("stale: page {} remapped, read {:#x} ({})", i, read[i], read[i] == y_value(i) ? "its new frame" : "STALE");
  for (u64 i = 0; i < pages; ++i) frames.free(MUST(space.unmap(base.offset(i * kPage))));

  const u64 range = ctx.arg("range", 0);
  if (range > kMaxRange) panic("vm_stale_tlb: range={}: at most {} pages", range, kMaxRange);
  if (range > 0) {
    // Both frames of every page are filled first: the remap then touches nothing but the tables
    // between the unmap and the reads, and a TLB entry the flush left stays where it was.
    static u64 old_frames[kMaxRange], new_frames[kMaxRange], range_read[kMaxRange];
    const VirtAddr first = base.offset((pages + 1) * kPage);
    const auto at = [&](u64 i) { return reinterpret_cast<volatile u64*>(first.offset(i * kPage).value()); };
    for (u64 i = 0; i < range; ++i) {
      const PhysAddr x = MUST(frames.allocate()), y = MUST(frames.allocate());
      *static_cast<volatile u64*>(vm::phys_to_ptr(x, kPage)) = x_value(kMaxPages + i);
      *static_cast<volatile u64*>(vm::phys_to_ptr(y, kPage)) = y_value(kMaxPages + i);
      MUST(space.map(first.offset(i * kPage), x, kKernelData));
      old_frames[i] = x.value();
      new_frames[i] = y.value();
    }
    for (u64 i = 0; i < range; ++i)
      if (*at(i) != x_value(kMaxPages + i)) panic("range page {} does not read its first frame", i);
    MUST(space.unmap_range(first, range * kPage));  // one batch, one flush
    for (u64 i = 0; i < range; ++i) MUST(space.map(first.offset(i * kPage), PhysAddr(new_frames[i]), kKernelData));
    for (u64 i = 0; i < range; ++i) range_read[i] = *at(i);
    usize fresh = 0;
    for (u64 i = 0; i < range; ++i) {
      fresh += range_read[i] == y_value(kMaxPages + i);
      frames.free(PhysAddr(old_frames[i]));
    }
    pagoda_grader_checkpoint(first.value(), range, reinterpret_cast<u64>(range_read));  // the grader compares
    println("stale: {} pages unmapped as one range and remapped, {} read their new frame", range, fresh);
    for (u64 i = 0; i < range; ++i) frames.free(MUST(space.unmap(first.offset(i * kPage))));
  }

  const VirtAddr page = base.offset(pages * kPage);
  MUST(space.map(page, MUST(frames.allocate()), kKernelData));
  volatile u64* p = reinterpret_cast<volatile u64*>(page.value());
  *p = seed;  // the TLB now holds a writable translation
  MUST(space.protect(page, kPage, kKernelReadOnly));
  println("stale: {} protected read-only; writing it", Hex{page.value()});
  *p = ~seed;
  panic("the write to {} after protecting it read-only did not fault: a stale TLB entry still allows writes",
        Hex{page.value()});
}

/// The frame allocator's next-fit cursor, its limit and its refusals. Allocates count=N frames
/// (the grader picks N), frees the first 128 of them and allocates one more: next fit continues
/// after the last frame it handed out instead of going back to the freed ones. The grader checks
/// that at a checkpoint. Then the search's wrap: the grader delivers a limit above the last frame
/// handed out with no free frame between the two, and one allocate_below(limit) must wrap around to
/// the frames given back below (its frame, or kRefused, at a checkpoint; given back at once). Then
/// the grader delivers a limit (an address among the freed frames); the test then
/// allocates below=M frames with allocate_below(limit), which must all lie below it, and stops
/// at a second checkpoint. Then the limit's edge: the grader delivers a limit L and a count k
/// (from the allocator's bitmap in guest RAM, k free frames lie below L, and the frame at L is
/// free too); k + 1 calls of allocate_below(L) are noted (a refusal as kRefused), and a third
/// checkpoint shows them. Then check_free() of each address the grader delivers (frames the test
/// holds, gave back, never had; misaligned; not the allocator's), its answers at a fourth
/// checkpoint. Then everything is given back. The grader judges every answer.
PAGODA_SELFTEST(frames_fit) {
  require_vm();
  constexpr u64 kMaxFrames = 1024, kFreed = 128, kMaxEdge = 8;
  constexpr u64 kRefused = ~u64{0};  // not a frame's address
  static u64 got[kMaxFrames], below[kFreed], edge[kMaxEdge + 1], answers[kGraderInboxSize];
  FrameAllocator& frames = vm::frames();
  const u64 count = ctx.arg("count", 400);
  const u64 wanted = ctx.arg("below", 32);
  if (count < 2 * kFreed || count > kMaxFrames || wanted == 0 || wanted > kFreed / 2)
    panic("frames_fit: count={} below={}: count in [{}, {}], below in [1, {}]", count, wanted, 2 * kFreed, kMaxFrames,
          kFreed / 2);
  const usize before = frames.free_frames();
  for (u64 i = 0; i < count; ++i) got[i] = MUST(frames.allocate()).value();
  for (u64 i = 0; i < kFreed; ++i) frames.free(PhysAddr(got[i]));
  const PhysAddr next = MUST(frames.allocate());
  pagoda_grader_checkpoint(reinterpret_cast<u64>(got), count, next.value());
  println("fit: {} frames from {:#x} to {:#x}; after freeing the first {}, the next is {:#x}", count, got[0],
          got[count - 1], kFreed, next.value());
  // The search's wrap: a limit the grader delivers above the cursor with no free frame between the
  // cursor's frame and it, the free frames all below the cursor's word (the first ones given back).
  // Next fit finds nothing after the cursor, wraps around to word 0 and finds one there; the frame
  // goes back at once.
  if (await_grader_inputs() >= 1) {
    const PhysAddr wrap_limit(pagoda_grader_inbox.values[0]);
    const Result<PhysAddr> f = frames.allocate_below(wrap_limit);
    pagoda_grader_checkpoint(f.is_error() ? kRefused : f.value().value(), 1, wrap_limit.value());
    if (!f.is_error()) frames.free(f.value());
  }
  const usize n = await_grader_inputs();
  const PhysAddr limit(n > 0 ? pagoda_grader_inbox.values[0] : got[kFreed / 2]);
  u64 taken = 0;  // a refusal ends the round: the grader knows what was free below the limit, and says why
  for (; taken < wanted; ++taken) {
    const Result<PhysAddr> f = frames.allocate_below(limit);
    if (f.is_error()) {
      println("fit: allocate_below({:#x}) refused after {} frames: {}", limit.value(), taken, f.error());
      break;
    }
    below[taken] = f.value().value();
  }
  pagoda_grader_checkpoint(reinterpret_cast<u64>(below), taken, limit.value());
  usize edges = 0;
  if (await_grader_inputs() >= 2) {
    const PhysAddr edge_limit(pagoda_grader_inbox.values[0]);
    const u64 below_edge = pagoda_grader_inbox.values[1];
    edges = usize(min<u64>(below_edge, kMaxEdge)) + 1;
    for (usize i = 0; i < edges; ++i) {
      const Result<PhysAddr> f = frames.allocate_below(edge_limit);
      edge[i] = f.is_error() ? kRefused : f.value().value();
    }
    pagoda_grader_checkpoint(reinterpret_cast<u64>(edge), edges, edge_limit.value());
  }
  const usize asked = await_grader_inputs();
  for (usize i = 0; i < asked; ++i) answers[i] = u64(frames.check_free(PhysAddr(pagoda_grader_inbox.values[i])));
  pagoda_grader_checkpoint(reinterpret_cast<u64>(answers), asked, 0);
  for (usize i = 0; i < edges; ++i)
    if (edge[i] != kRefused) frames.free(PhysAddr(edge[i]));
  for (u64 i = 0; i < taken; ++i) frames.free(PhysAddr(below[i]));
  for (u64 i = kFreed; i < count; ++i) frames.free(PhysAddr(got[i]));
  frames.free(next);
  println("fit: {} frames below {:#x}; free frames before {} after {}", taken, limit.value(), before,
          frames.free_frames());
}

}  // namespace pagoda

// ---- Lab 2: the higher half -------------------------------------------------------------------

namespace pagoda {
namespace {

using Format = arch::PageTableFormat;
constexpr usize kHeapMaxObject = 3000;
constexpr usize kHeapLargeObject = 5 * FrameAllocator::kFrameSize + 100;

struct Counted {
  explicit Counted(u64 v) : value(v) {}
  u64 value;
  u64 padding[5] = {};
};

}  // namespace

PAGODA_SELFTEST(vm_high) {
  require_vm();
  const u64 rip = caller_pc();
  u64 on_stack = 0;
  println("high: rip {} kmain {} data {} stack {} proof={:016x}", Hex{rip}, Hex{reinterpret_cast<u64>(&kmain)},
          Hex{reinterpret_cast<u64>(&g_selftest_data)}, Hex{reinterpret_cast<u64>(&on_stack)}, proof(ctx.token, rip));
  // The lower half's top-level entries are the first ones of the root that translates address 0,
  // up to the one of its last address; the kernel half's run from kKernelHalfBase's entry to the
  // end of the root that translates it. One root on x86_64 (PML4 0..255 and 256..511), two on
  // AArch64 (all 512 of TTBR0, all 512 of TTBR1).
  const auto live_top = [](VirtAddr va) {
    const u64* root = static_cast<const u64*>(vm::phys_to_ptr(arch::live_root_for(va), Format::kPageSize));
    if (root == nullptr) panic("the live root for {} is not reachable through the window", Hex{va.value()});
    return root;
  };
  const VirtAddr last_low(~Format::kUpperHalfStart.value());
  const usize low_entries = Format::index(last_low, 0) + 1;
  const usize first_kernel = Format::index(VirtAddr(layout::kKernelHalfBase), 0);
  const u64* low_root = live_top(VirtAddr(0));
  const u64* high_root = live_top(VirtAddr(layout::kKernelHalfBase));
  usize low = 0, high = 0;
  for (usize i = 0; i < low_entries; ++i) low += Format::is_present(low_root[i], 0);
  for (usize i = first_kernel; i < Format::kEntriesPerTable; ++i) high += Format::is_present(high_root[i], 0);
  println("high: top-level entries present: {} of {} in the lower half, {} of {} in the kernel half proof={:016x}", low,
          low_entries, high, Format::kEntriesPerTable - first_kernel, proof(ctx.token, high * 1000 + low));
}

/// Lab 2's step out of the boot stub, for the grader to witness: stops at the checkpoint with
/// the frame allocator's managed and used bitmaps and their length in words, from which it
/// reads whether the boot tables and the entry stack are the allocator's again; it reads the
/// stack pointer and the live roots there itself.
PAGODA_SELFTEST(vm_boot_memory) {
  require_vm();
  const FrameAllocator& frames = vm::frames();
  const PhysRange tables = arch::boot_page_tables(), stack = arch::boot_entry_stack();
  println("boot memory: tables at {} ({} KiB), entry stack at {} ({} KiB), stack now at {}", Hex{tables.base.value()},
          tables.size / KiB, Hex{stack.base.value()}, stack.size / KiB,
          Hex{reinterpret_cast<u64>(__builtin_frame_address(0))});
  pagoda_grader_checkpoint(reinterpret_cast<u64>(frames.managed_bitmap().data()),
                           reinterpret_cast<u64>(frames.used_bitmap().data()), frames.used_bitmap().size());
}

PAGODA_SELFTEST(vm_low) {
  require_vm();
  const CmdlineValue arg = cmdline_get(ctx.boot.cmdline(), "addr");
  const Result<u64> addr = parse_u64(arg.value);
  if (!arg.found || addr.is_error()) panic("vm_low needs addr=NUMBER on the command line");
  println("low: reading {}", Hex{addr.value()});
  const u64 value = *reinterpret_cast<volatile u64*>(addr.value());
  panic("reading {} did not fault (it read {:#x})", Hex{addr.value()}, value);
}

/// Converts pa1= and pa2= (RAM in the window, chosen by the grader) to window addresses and
/// back, writes value= xor the physical address through each window address (the grader reads
/// it back from guest RAM), says whether hole= (no usable RAM, inside the window's span) is
/// refused, then shows that RAM above the window is refused and unmapped.
PAGODA_SELFTEST(vm_window) {
  require_vm();
  const u64 value = ctx.arg("value", 0x57494e444f57);  // "WINDOW"
  const PhysAddr probes[] = {PhysAddr(ctx.arg("pa1", layout::kLowMemoryEnd)),
                             PhysAddr(ctx.arg("pa2", vm::reachable_limit().value() - FrameAllocator::kFrameSize))};
  // The window's size, and the window address of physical 0 as the first probe (usable RAM)
  // converts (RAM starts at kWindowPhysBase; on AArch64 its first MiB is the device tree).
  println("window: {} KiB of RAM at {}", (vm::reachable_limit().value() - layout::kWindowPhysBase) / KiB,
          Hex{vm::phys_to_virt(probes[0]).value() - probes[0].value()});
  for (const PhysAddr pa : probes) {
    const VirtAddr va = vm::phys_to_virt(pa);
    const PhysAddr back = vm::virt_to_phys(va);
    *reinterpret_cast<volatile u64*>(va.value()) = value ^ pa.value();  // reachable for real
    println("window: pa {} -> va {} -> pa {}", Hex{pa.value()}, Hex{va.value()}, Hex{back.value()});
  }
  if (const u64 hole = ctx.arg("hole", 0); hole != 0) {  // no usable RAM, inside the window's span
    const Result<VirtAddr> converted = vm::try_phys_to_virt(PhysAddr(hole));
    println("window: pa {} (no usable RAM) -> {}", Hex{hole}, converted.ok() ? "ACCEPTED" : "refused");
  }
  const PhysAddr above = vm::reachable_limit();
  const Result<VirtAddr> refused = vm::try_phys_to_virt(above);
  println("window: pa {} -> {}", Hex{above.value()}, refused.ok() ? "ACCEPTED" : "refused");
  const VirtAddr above_va(layout::kWindowBase + (above.value() - layout::kWindowPhysBase));
  print("window: the walk of {} stops: ", Hex{above_va.value()});
  vm::walk_active(above_va).format_stop(console_sink());
  println("");
  (void)vm::phys_to_virt(above);  // must panic
  panic("phys_to_virt({}) did not refuse an address above the window", Hex{above.value()});
}

/// A large page split by a partial protect and a partial unmap. Maps blocks=B (1 to 5) adjacent
/// blocks (2 MiB each) at base=VA (the grader picks it) to fresh, physically contiguous frames
/// and writes page i's index xor seed=S into it; the grader checks the blocks at a checkpoint.
/// Then protects pages=N pages from page first=F read-only (a range that may start in one block
/// and end in another), and as many as pages2=N2 from first2=F2 when N2 is not 0, and unmaps
/// page hole=H: a block the range covers in part must become a
/// table of 4 KiB pages mapping the same frames, one it covers whole stays a block, with the
/// changes and the data intact; the grader checks every page when the test stops for it
/// (pagoda_grader_stop). Then everything is given back.
PAGODA_SELFTEST(vm_split) {
  require_vm();
  constexpr u64 kBlock = AddressSpace::kBlockSize, kPages = kBlock / kPage;
  FrameAllocator& frames = vm::frames();
  AddressSpace& space = vm::kernel_space();
  const VirtAddr base(ctx.arg("base", 0x0000'3000'0000'0000ull));
  const u64 first = ctx.arg("first", 3), count = ctx.arg("pages", 5), hole = ctx.arg("hole", 100);
  const u64 seed = ctx.arg("seed", 0x5e5e), blocks = ctx.arg("blocks", 1), all = blocks * kPages;
  const u64 first2 = ctx.arg("first2", 0), count2 = ctx.arg("pages2", 0);
  if (!base.is_aligned(kBlock) || blocks == 0 || blocks > 5 || count == 0 || first + count > all || hole >= all ||
      (first <= hole && hole < first + count) || first2 + count2 > all || (first2 <= hole && hole < first2 + count2))
    panic("vm_split: base={} blocks={} first={} pages={} first2={} pages2={} hole={}: a block-aligned base, 1 to 5 "
          "blocks, ranges inside them, the hole outside the protected pages",
          Hex{base.value()}, blocks, first, count, first2, count2, hole);
  const usize before = frames.free_frames();
  const PhysAddr run = MUST(frames.allocate_contiguous_below((blocks + 1) * kPages, vm::reachable_limit()));
  const PhysAddr pa = run.align_up(kBlock);  // block-aligned 2 MiB pieces inside the run
  for (u64 b = 0; b < blocks; ++b)
    MUST(space.map_block(base.offset(b * kBlock), pa.offset(b * kBlock), kBlock, kKernelData));
  for (u64 i = 0; i < all; ++i) *reinterpret_cast<volatile u64*>(base.value() + i * kPage) = i ^ seed;
  pagoda_grader_checkpoint(base.value(), pa.value(), 0);  // whole blocks
  if (const Result<void> done = space.protect(base.offset(first * kPage), count * kPage, kKernelReadOnly); !done.ok())
    panic("split: protecting pages {}..{} read-only ({} to {}, {} block(s)) failed: {}", first, first + count - 1,
          Hex{base.value() + first * kPage}, Hex{base.value() + (first + count) * kPage}, blocks, done.error());
  if (count2 != 0)
    if (const Result<void> done = space.protect(base.offset(first2 * kPage), count2 * kPage, kKernelReadOnly);
        !done.ok())
      panic("split: protecting pages {}..{} read-only ({} to {}, {} block(s)) failed: {}", first2, first2 + count2 - 1,
            Hex{base.value() + first2 * kPage}, Hex{base.value() + (first2 + count2) * kPage}, blocks, done.error());
  if (const Result<void> done = space.unmap_range(base.offset(hole * kPage), kPage); !done.ok())
    panic("split: unmapping page {} ({}) failed: {}", hole, Hex{base.value() + hole * kPage}, done.error());
  for (u64 i = 0; i < all; ++i)
    if (i != hole && *reinterpret_cast<volatile u64*>(base.value() + i * kPage) != (i ^ seed))
      panic("page {} of the split block lost its data", i);
  pagoda_grader_stop();  // pages now (a second stop at the checkpoint would be the same instant to a debugger)
  for (u64 b = 0; b < blocks; ++b) {
    const VirtAddr block = base.offset(b * kBlock);
    if (space.query(block).page_size == kBlock) {  // a block the range covered whole
      MUST(space.unmap_range(block, kBlock));
      continue;
    }
    for (u64 i = b * kPages; i < (b + 1) * kPages; ++i)
      if (i != hole) (void)MUST(space.unmap(base.offset(i * kPage)));
  }
  for (u64 i = 0; i < (blocks + 1) * kPages; ++i) frames.free(run.offset(i * kPage));
  println(
      "split: {} block(s) at {} -> {} split; pages {}..{} read-only, page {} unmapped; free frames before {} after {}",
      blocks, Hex{base.value()}, Hex{pa.value()}, first, first + count - 1, hole, before, frames.free_frames());
}

/// Allocates objects=N objects of random sizes (seed=S chosen by the grader), fills object i with
/// bytes u8(i + j + S), checks them, frees them in a scrambled order and reports the heap's
/// counters before, at the peak and after.
PAGODA_SELFTEST(heap_cycle) {
  require_vm();
  const usize count = ctx.arg("objects", 3000);
  const u64 seed = ctx.arg("seed", 0);
  if (count == 0 || count > 100000 || count % 7919 == 0) panic("heap_cycle: objects={} is not a usable count", count);
  const heap::Stats before = heap::stats();
  TestRandom random{seed | 1};
  u8** objects = new u8*[count];
  usize* sizes = new usize[count];  // (the 16 KiB boot stack is no place for this)
  for (usize i = 0; i < count; ++i) {
    sizes[i] = 1 + usize(random.next() % kHeapMaxObject);
    objects[i] = new u8[sizes[i]];
    for (usize j = 0; j < sizes[i]; ++j) objects[i][j] = u8(i + j + seed);
  }
  Counted* counted = try_new<Counted>(u64(42)).value();
  u8* large = new u8[kHeapLargeObject];
  large[kHeapLargeObject - 1] = 1;
  const heap::Stats peak = heap::stats();
  // At the peak the grader reads every object itself: a = the objects, b = their sizes, c = count.
  pagoda_grader_checkpoint(reinterpret_cast<u64>(objects), reinterpret_cast<u64>(sizes), count);
  for (usize i = 0; i < count; ++i)  // check, then free in a scrambled order
    for (usize j = 0; j < sizes[i]; ++j)
      if (objects[i][j] != u8(i + j + seed)) panic("heap object {} was overwritten at byte {}", i, j);
  for (usize k = 0; k < count; ++k) {
    const usize i = (k * 7919) % count;
    delete[] objects[i];
  }
  delete[] objects;
  delete[] sizes;
  delete counted;
  delete[] large;
  const heap::Stats after = heap::stats();
  println("heap: before {} objects {} bytes; peak {} objects {} bytes; after {} objects {} bytes",
          before.live_allocations, before.live_bytes, peak.live_allocations, peak.live_bytes, after.live_allocations,
          after.live_bytes);
}

/// The heap's free path and refill: allocates objects=N small objects of random sizes (seed=S),
/// frees them in a scrambled order, and allocates the same sizes again. Freed blocks go back on
/// the front of their class's list, so the second round gets exactly the blocks of the first
/// (and no new frame): the grader reads both rounds' addresses from guest RAM at the checkpoint.
PAGODA_SELFTEST(heap_reuse) {
  require_vm();
  constexpr usize kMaxObjects = 3000, kSmall = 2000;  // kSmall: below the largest size class
  static u64 first[kMaxObjects], second[kMaxObjects];
  static usize sizes[kMaxObjects];
  const usize count = ctx.arg("objects", 1000);
  const u64 seed = ctx.arg("seed", 0);
  if (count == 0 || count > kMaxObjects || count % 7919 == 0)
    panic("heap_reuse: objects={} is not a usable count", count);
  TestRandom random{seed | 1};
  for (usize i = 0; i < count; ++i) {
    sizes[i] = 1 + usize(random.next() % kSmall);
    first[i] = reinterpret_cast<u64>(MUST(heap::allocate(sizes[i])));
  }
  const heap::Stats grown = heap::stats();
  for (usize k = 0; k < count; ++k) heap::free(reinterpret_cast<void*>(first[(k * 7919) % count]));
  for (usize i = 0; i < count; ++i) second[i] = reinterpret_cast<u64>(MUST(heap::allocate(sizes[i])));
  const heap::Stats again = heap::stats();
  pagoda_grader_checkpoint(reinterpret_cast<u64>(first), reinterpret_cast<u64>(second), count);
  for (usize i = 0; i < count; ++i) heap::free(reinterpret_cast<void*>(second[i]));
  println("heap_reuse: {} objects; heap frames {} after the first round, {} after the second; {} objects live", count,
          grown.frames, again.frames, heap::stats().live_allocations);
}

}  // namespace pagoda

namespace pagoda {
namespace {

/// How many times the kernel's root can be reloaded in @p ticks timer ticks.
u64 activates_in(AddressSpace& space, u64 ticks) {
  const u64 start = arch::timer_ticks();
  while (arch::timer_ticks() == start) arch::wait_for_interrupt();  // start on a tick
  const u64 from = arch::timer_ticks();
  u64 n = 0;
  while (arch::timer_ticks() - from < ticks) {
    space.activate();
    ++n;
  }
  return n;
}

}  // namespace

/// The cost of the pre-switch check (mm/space/critical_ranges.hpp) for `./pagoda bench switch`:
/// reloads the kernel's root for `ticks=N` timer ticks (default 100) with the check on, then as
/// long with it off, and prints how many reloads each managed and what the check walks.
PAGODA_SELFTEST(vm_switch_cost) {
  require_vm();
  const CmdlineValue given = cmdline_get(ctx.boot.cmdline(), "ticks");
  const u64 ticks = given.found ? MUST(parse_u64(given.value)) : 100;
  CriticalRanges needed;
  arch::critical_ranges(needed);
  u64 pages = 0;
  for (const CriticalRange& r : needed.ranges())
    pages += (align_up(r.start.value() + r.size, kPageSize) - align_down(r.start.value(), kPageSize)) / kPageSize;
  const bool was = AddressSpace::switch_checks();
  AddressSpace& kernel = vm::kernel_space();
  arch::interrupts_enable();
  AddressSpace::set_switch_checks(true);
  const u64 on = activates_in(kernel, ticks);
  AddressSpace::set_switch_checks(false);
  const u64 off = activates_in(kernel, ticks);
  AddressSpace::set_switch_checks(was);
  arch::interrupts_disable();
  println("vm_switch_cost: {} ranges, {} pages; in {} ticks of {} Hz: {} activates with the check, {} without",
          needed.ranges().size(), pages, ticks, kTimerHz, on, off);
}

}  // namespace pagoda
