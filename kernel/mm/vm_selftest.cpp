// Lab 1 self-tests: what the kernel's own page tables translate, what they refuse, and that
// mapping and unmapping many pages gives every frame back. The grader (grade/test_lab1.py)
// checks the printed values against the ELF's symbols and this boot's token.
#include "core/arch.hpp"
#include "core/cmdline.hpp"
#include "core/kmain.hpp"
#include "core/panic.hpp"
#include "core/selftest.hpp"
#include "lib/proof.hpp"
#include "mm/heap.hpp"
#include "mm/layout.hpp"
#include "mm/mmu.hpp"
#include "mm/vm.hpp"

namespace pagoda {
namespace {

/// Something in .data for the translate test (initialised, so not in .bss).
[[gnu::used]] u64 g_selftest_data = 0x5041474f44415441;  // "PAGODATA"
/// A `ret` instruction in .data, for the NX test.
[[gnu::used]] u8 g_data_code[16] = {0xC3};

constexpr u64 kRet = 0xC3;
constexpr u64 kPage = kPageSize;
/// Lower-half addresses nothing maps: the translate test picks a page here from the token.
constexpr u64 kUnmappedBase = 0x0000'2000'0000'0000ull;
constexpr u64 kUnmappedPages = 1u << 20;
constexpr u64 kTranslateTag = 0x5452;  // "TR"
/// The frame test maps this many pages around a 1 GiB boundary chosen from the token.
constexpr u64 kFrameTestPages = 1536;
constexpr u64 kFrameTestBase = 0x0000'3000'0000'0000ull;
constexpr u64 kFrameTestSlots = 256;
constexpr u64 kFrameTestTag = 0x4652;  // "FR"

void require_vm() {
  if (!vm::ready()) panic("lab 1 is not done: the kernel has no page tables of its own (see the LAB TODO above)");
}

void print_translation(const char* what, VirtAddr va, StringView token) {
  const Walk w = vm::walk_active(va);
  if (w.mapped()) {
    println("translate: {} {} -> {} ({} KiB) {} proof={:016x}", what, Hex{va.value()}, Hex{w.pa.value()},
            w.page_size / KiB, w.perms, proof(token, w.pa.value()));
  } else {
    print("translate: {} {} -> stopped: ", what, Hex{va.value()});
    w.format_stop(console_sink());
    println(" proof={:016x}", proof(token, w.last().level));
  }
}

using Code = void (*)();

}  // namespace

PAGODA_SELFTEST(vm_translate) {
  require_vm();
  const u64 page = proof(ctx.token, kTranslateTag) % kUnmappedPages;
  print_translation("text", VirtAddr(reinterpret_cast<u64>(&kmain)), ctx.token);
  print_translation("data", VirtAddr(reinterpret_cast<u64>(&g_selftest_data)), ctx.token);
  print_translation("unmapped", VirtAddr(kUnmappedBase + page * kPage), ctx.token);
  print("translate: walk of kmain: ");
  vm::walk_active(VirtAddr(reinterpret_cast<u64>(&kmain))).format(console_sink());
}

PAGODA_SELFTEST(vm_write_text) {
  require_vm();
  *reinterpret_cast<volatile u8*>(reinterpret_cast<uptr>(&kmain)) = 0xCC;
  panic("the write to kernel text did not fault");
}

PAGODA_SELFTEST(vm_exec_stack) {
  require_vm();
  u8 code[16];
  *static_cast<volatile u8*>(code) = u8(kRet);  // written at run time, into this stack frame
  asm volatile("" ::"r"(code) : "memory");
  reinterpret_cast<Code>(reinterpret_cast<uptr>(code))();
  panic("executing from the stack did not fault");
}

PAGODA_SELFTEST(vm_exec_data) {
  require_vm();
  reinterpret_cast<Code>(reinterpret_cast<uptr>(g_data_code))();
  panic("executing from .data did not fault");
}

PAGODA_SELFTEST(vm_null) {
  require_vm();
  volatile uptr zero = 0;  // hides the null from the compiler, which may not dereference it
  const u64 value = *reinterpret_cast<volatile u64*>(zero);
  panic("reading address 0 did not fault (it read {:#x})", value);
}

PAGODA_SELFTEST(vm_frames) {
  require_vm();
  FrameAllocator& frames = vm::frames();
  AddressSpace& table = vm::kernel_space();
  // Start 3 MiB below a 1 GiB boundary: the range needs tables at every level below the root.
  const u64 slot = proof(ctx.token, kFrameTestTag) % kFrameTestSlots;
  const VirtAddr base(kFrameTestBase + (slot + 1) * GiB - 3 * MiB);

  const usize before = frames.free_frames();
  for (u64 i = 0; i < kFrameTestPages; ++i) {
    const PhysAddr frame = frames.allocate().value();
    const Result<void> r = table.map(base.offset(i * kPage), frame, kKernelData);
    if (r.is_error()) panic("map of page {} failed: {}", i, error_name(r.error()));
  }
  for (u64 i = 0; i < kFrameTestPages; ++i) *reinterpret_cast<volatile u64*>(base.value() + i * kPage) = i ^ slot;
  for (u64 i = 0; i < kFrameTestPages; ++i)
    if (*reinterpret_cast<volatile u64*>(base.value() + i * kPage) != (i ^ slot)) panic("page {} lost its data", i);
  const usize during = frames.free_frames();
  for (u64 i = 0; i < kFrameTestPages; ++i) {
    const Result<PhysAddr> r = table.unmap(base.offset(i * kPage));
    if (r.is_error()) panic("unmap of page {} failed: {}", i, error_name(r.error()));
    frames.free(r.value());
  }
  const usize after = frames.free_frames();
  println("frames: {} pages at {}: free before {} during {} after {} proof={:016x}", kFrameTestPages,
          Hex{base.value()}, before, during, after, proof(ctx.token, during));
  print("frames: after unmapping, the walk of the first page stops: ");
  vm::walk_active(base).format_stop(console_sink());
  println("");
}

}  // namespace pagoda

// ---- Lab 2: the higher half -------------------------------------------------------------------

namespace pagoda {
namespace {

using Format = arch::PageTableFormat;
constexpr u64 kWindowTag = 0x5749;  // "WI"
constexpr usize kHeapObjects = 3000;
constexpr usize kHeapMaxObject = 3000;
constexpr usize kHeapLargeObject = 5 * FrameAllocator::kFrameSize + 100;

struct Counted {
  explicit Counted(u64 v) : value(v) {}
  u64 value;
  u64 padding[5] = {};
};

/// A small deterministic generator (xorshift64*), seeded from the token.
struct Random {
  u64 state;
  u64 next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Dull;
  }
};

}  // namespace

PAGODA_SELFTEST(vm_high) {
  require_vm();
  u64 rip;
  asm volatile("lea 0(%%rip), %0" : "=r"(rip));
  u64 on_stack = 0;
  println("high: rip {} kmain {} data {} stack {} proof={:016x}", Hex{rip}, Hex{reinterpret_cast<u64>(&kmain)},
          Hex{reinterpret_cast<u64>(&g_selftest_data)}, Hex{reinterpret_cast<u64>(&on_stack)}, proof(ctx.token, rip));
  const PhysAddr live = arch::live_root_for(VirtAddr(layout::kKernelHalfBase));
  const u64* root = static_cast<const u64*>(vm::phys_to_ptr(live, Format::kPageSize));
  if (root == nullptr) panic("the active root is not reachable through the window");
  const usize first_kernel = Format::index(VirtAddr(layout::kKernelHalfBase), 0);
  usize low = 0, high = 0;
  for (usize i = 0; i < Format::kEntriesPerTable; ++i)
    if (Format::is_present(root[i], 0)) ++(i < first_kernel ? low : high);
  println("high: top-level entries present: {} of {} in the lower half, {} of {} in the kernel half proof={:016x}",
          low, first_kernel, high, Format::kEntriesPerTable - first_kernel, proof(ctx.token, high * 1000 + low));
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

PAGODA_SELFTEST(vm_window) {
  require_vm();
  const u64 pages = (layout::kWindowSize - layout::kLowMemoryEnd) / FrameAllocator::kFrameSize;
  const PhysAddr probes[] = {
      PhysAddr(layout::kLowMemoryEnd + (proof(ctx.token, kWindowTag) % pages) * FrameAllocator::kFrameSize),
      PhysAddr(vm::reachable_limit().value() - FrameAllocator::kFrameSize)};
  println("window: {} KiB of RAM at {}", vm::reachable_limit().value() / KiB, Hex{vm::phys_to_virt(PhysAddr(layout::kLowMemoryEnd)).value() - layout::kLowMemoryEnd});
  for (const PhysAddr pa : probes) {
    const VirtAddr va = vm::phys_to_virt(pa);
    const PhysAddr back = vm::virt_to_phys(va);
    *reinterpret_cast<volatile u64*>(va.value()) = pa.value();  // reachable for real
    println("window: pa {} -> va {} -> pa {} proof={:016x}", Hex{pa.value()}, Hex{va.value()}, Hex{back.value()},
            proof(ctx.token, va.value()));
  }
  const PhysAddr above = vm::reachable_limit();
  const Result<VirtAddr> refused = vm::try_phys_to_virt(above);
  println("window: pa {} -> {}", Hex{above.value()}, refused.ok() ? "ACCEPTED" : "refused");
  print("window: the walk of {} stops: ", Hex{layout::kWindowBase + above.value()});
  vm::walk_active(VirtAddr(layout::kWindowBase + above.value())).format_stop(console_sink());
  println("");
  (void)vm::phys_to_virt(above);  // must panic
  panic("phys_to_virt({}) did not refuse an address above the window", Hex{above.value()});
}

PAGODA_SELFTEST(heap_cycle) {
  require_vm();
  const heap::Stats before = heap::stats();
  Random random{proof(ctx.token, 0x4845) | 1};
  u8** objects = new u8*[kHeapObjects];
  usize* sizes = new usize[kHeapObjects];  // (the 16 KiB boot stack is no place for this)
  for (usize i = 0; i < kHeapObjects; ++i) {
    sizes[i] = 1 + usize(random.next() % kHeapMaxObject);
    objects[i] = new u8[sizes[i]];
    for (usize j = 0; j < sizes[i]; ++j) objects[i][j] = u8(i + j);
  }
  Counted* counted = try_new<Counted>(u64(42)).value();
  u8* large = new u8[kHeapLargeObject];
  large[kHeapLargeObject - 1] = 1;
  const heap::Stats peak = heap::stats();
  for (usize i = 0; i < kHeapObjects; ++i)  // check, then free in a scrambled order
    for (usize j = 0; j < sizes[i]; ++j)
      if (objects[i][j] != u8(i + j)) panic("heap object {} was overwritten at byte {}", i, j);
  for (usize k = 0; k < kHeapObjects; ++k) {
    const usize i = (k * 7919) % kHeapObjects;
    delete[] objects[i];
  }
  delete[] objects;
  delete[] sizes;
  delete counted;
  delete[] large;
  const heap::Stats after = heap::stats();
  println("heap: before {} objects {} bytes; peak {} objects {} bytes; after {} objects {} bytes proof={:016x}",
          before.live_allocations, before.live_bytes, peak.live_allocations, peak.live_bytes, after.live_allocations,
          after.live_bytes, proof(ctx.token, peak.live_bytes));
}

}  // namespace pagoda

namespace pagoda {

/// Halts, with the kernel's own tables live, for the grader to inspect them from outside
/// (grade/pagoda_grade/inspect.py): it reads CR3 from QEMU and the tables from guest RAM.
PAGODA_SELFTEST(vm_inspect) {
  require_vm();
  arch::interrupts_disable();
  println("inspect: ready");
  for (;;) arch::wait_for_interrupt();
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

/// The cost of the pre-switch check (mm/critical_ranges.hpp) for `./pagoda bench switch`:
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
  println("vm_switch_cost: {} ranges, {} pages; in {} ticks of {} Hz: {} activates with the check, {} without", needed.ranges().size(),
          pages, ticks, kTimerHz, on, off);
}

}  // namespace pagoda
