// Lab 1 self-tests: what the kernel's own page tables translate, what they refuse, and that
// mapping and unmapping many pages gives every frame back. The grader (grade/test_lab1.py)
// checks the printed values against the ELF's symbols and this boot's token.
#include "core/kmain.hpp"
#include "core/panic.hpp"
#include "core/selftest.hpp"
#include "lib/proof.hpp"
#include "mm/vm.hpp"

namespace pagoda {
namespace {

/// Something in .data for the translate test (initialised, so not in .bss).
[[gnu::used]] u64 g_selftest_data = 0x5041474f44415441;  // "PAGODATA"
/// A `ret` instruction in .data, for the NX test.
[[gnu::used]] u8 g_data_code[16] = {0xC3};

constexpr u64 kRet = 0xC3;
constexpr u64 kPage = 4 * KiB;
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
  vm::KernelPageTable table = vm::kernel_table();
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
