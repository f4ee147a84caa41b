// One shootdown of one page, on two CPUs (issue 53's prototype gate): CPU 1 reads a temporary
// mapping's slot through frame A, CPU 0 maps frame B at the same slot (invalidating only its own
// TLB), CPU 1 reads again (the stale entry gives A's word), then one shootdown (a request in CPU
// 1's mailbox, one IPI, the invalidation there, the end of the interrupt, the ack), and CPU 1
// reads B's word. Given code: it prints what CPU 1 read; grade/harness_tests/test_smp.py
// compares those words with the frames' and counts the IPIs CPU 1 took in QEMU's log.
#include "core/arch.hpp"
#include "core/cpu.hpp"
#include "core/panic.hpp"
#include "core/selftest.hpp"
#include "lib/console.hpp"
#include "mm/tempmap/temp_map.hpp"
#include "mm/space/address_space.hpp"
#include "mm/vm.hpp"

namespace pagoda {

PAGODA_SELFTEST(smp_shootdown) {
  if (cpus_online() < 2) panic("smp_shootdown: needs two CPUs online (QEMU's -smp 2)");
  constexpr u64 kWordA = 0xa11ce0000000000a, kWordB = 0xb0b0000000000b;
  const PhysAddr a = vm::frames().allocate().value(), b = vm::frames().allocate().value();
  vm::write_frame(a, 0, &kWordA, sizeof kWordA);
  vm::write_frame(b, 0, &kWordB, sizeof kWordB);
  uptr slot = 0;
  u64 first = 0, stale = 0, fresh = 0;
  {
    const TempMap map_a(a);
    slot = map_a.address().value();
    first = cpu_request(1, MailboxOp::Read, slot);  // CPU 1's TLB now holds slot -> A
  }
  {
    const TempMap map_b(b);  // CPU 0 invalidates its own entry only
    if (map_b.address().value() != slot) panic("smp_shootdown: the second mapping took another slot");
    stale = cpu_request(1, MailboxOp::Read, slot);
    cpu_request(1, MailboxOp::InvalidatePage, slot);  // the shootdown
    fresh = cpu_request(1, MailboxOp::Read, slot);
  }
  vm::frames().free(a);
  vm::frames().free(b);
  println("smp_shootdown: slot {:#x}: CPU 1 read {:#x}, then {:#x} after CPU 0's local invalidation, then {:#x} "
          "after the shootdown; CPU 1 took {} IPIs",
          slot, first, stale, fresh, cpu(1).ipis);
  arch::shutdown(ExitStatus::Success);
}

namespace {

PhysAddr g_cpu1_frame;  ///< smp_temp_maps: the frame CPU 1 maps

/// smp_temp_maps on CPU 1, in its IPI handler (no kernel lock): maps g_cpu1_frame through this
/// CPU's own temporary mapping, and stops at checkpoint 1 while it and CPU 0's are both live.
u64 map_on_cpu1() {
  const TempMap map(g_cpu1_frame);
  const u64 word = *reinterpret_cast<const volatile u64*>(map.address().value());
  pagoda_grader_checkpoint(1, map.address().value(), word);
  return word;
}

}  // namespace

// Lab 8's per-CPU temporary mappings, for the grader (grade/test_lab8.py per_cpu_temp_maps): CPU 0
// puts mark=A in frame A and mark=B in frame B, maps A with a TempMap and, while it is live, asks
// CPU 1 (an IPI: CPU 0 waits for the ack) to map B with one of its own: CPU 1 stops at checkpoint
// 1 with its map live, both CPUs' maps live at once. CPU 0 then reads A's word through its map
// again (checkpoint 2: what CPU 0 and CPU 1 read, the kernel's words).
PAGODA_SELFTEST(smp_temp_maps) {
  if (cpus_online() < 2) panic("smp_temp_maps: needs two CPUs online (QEMU's -smp 2)");
  const u64 mark_a = ctx.arg("a", 0xa), mark_b = ctx.arg("b", 0xb);
  const PhysAddr a = MUST(vm::frames().allocate()), b = MUST(vm::frames().allocate());
  vm::write_frame(a, 0, &mark_a, sizeof mark_a);
  vm::write_frame(b, 0, &mark_b, sizeof mark_b);
  g_cpu1_frame = b;
  u64 mine = 0, theirs = 0;
  {
    const TempMap map(a);
    theirs = cpu_request(1, MailboxOp::Call, reinterpret_cast<uptr>(&map_on_cpu1));
    mine = *reinterpret_cast<const volatile u64*>(map.address().value());
  }
  pagoda_grader_checkpoint(2, mine, theirs);
  vm::frames().free(a);
  vm::frames().free(b);
  println("smp_temp_maps: CPU 0 read {:#x} through its map of frame {:#x}, CPU 1 {:#x} through its of {:#x}", mine,
          a.value(), theirs, b.value());
  arch::shutdown(ExitStatus::Success);
}

}  // namespace pagoda

namespace pagoda {
namespace {

/// smp_two_initiators: CPU 0's temporary-mapping slot, whose entry CPU 0 moved from frame A to
/// frame B without dropping its own translation; how many times CPU 1 started its shootdown.
uptr g_two_slot;
u64 g_cpu1_shootdowns;

/// Points the kernel's entry for @p va (mapped) at @p to instead of @p from, its flags kept,
/// invalidating no TLB.
void move_kernel_entry(uptr va, PhysAddr from, PhysAddr to) {
  ConsistencyBatch batch = vm::kernel_space().batch();
  AddressSpace::Cursor c = vm::kernel_space().cursor(batch, VirtAddr(va));
  u64* leaf = c.page_entry();
  if (leaf == nullptr) panic("smp_two_initiators: slot {:#x} has no entry", va);
  *leaf = *leaf ^ from.value() ^ to.value();
  batch.wrote();
}

/// smp_two_initiators on CPU 1, in its IPI handler (a Call: CPU 0 waits for its ack): a
/// shootdown toward CPU 0 of kShootdownPages + 1 pages (every translation), CPU 0's slot the last.
/// CPU 0 is itself an initiator waiting for this CPU's ack meanwhile.
}  // namespace

/// (Outside the anonymous namespace: the grader stops at it by name.)
[[gnu::noinline]] u64 smp_two_initiators_cpu1() {
  g_cpu1_shootdowns = g_cpu1_shootdowns + 1;
  uptr pages[kShootdownPages + 1];
  for (usize i = 0; i < kShootdownPages; ++i) pages[i] = g_two_slot + (i + 1) * kPageSize;
  pages[kShootdownPages] = g_two_slot;
  shootdown(u32{1} << 0, pages, kShootdownPages + 1);
  pagoda_grader_checkpoint(3, g_two_slot, 0);  // (on CPU 1: its shootdown acknowledged)
  return g_cpu1_shootdowns;
}

// Lab 8's two initiators, for the grader (grade/test_lab8.py two_initiators): CPU 0 maps frame A
// (a temporary mapping) and writes through it (its TLB holds the slot's translation, writable),
// (stage 1: argument the slot), then points the slot's entry at frame B and drops nothing. CPU 0 then asks CPU 1 (a Call: one request in CPU 1's mailbox, one IPI, CPU 0 waits
// for the ack) to run smp_two_initiators_cpu1(): CPU 1, inside its handler, starts a shootdown toward
// CPU 0 of the slot, the last of kShootdownPages + 1 pages, and waits for CPU 0's ack while CPU 0
// waits for CPU 1's; stage 3 on CPU 1 once CPU 0 acknowledged. Once both are done CPU 0 writes mark=M through the slot (stage 2: arguments
// the slot and the number of times CPU 1 started its shootdown): into frame B only if CPU 0 served
// CPU 1's request while it waited. Then the entry goes back to A.
PAGODA_SELFTEST(smp_two_initiators) {
  if (cpus_online() < 2) panic("smp_two_initiators: needs two CPUs online (QEMU's -smp 2)");
  const u64 mark = ctx.arg("mark", 0x2be);
  const PhysAddr a = MUST(vm::frames().allocate()), b = MUST(vm::frames().allocate());
  const u64 zero = 0;
  vm::write_frame(a, 0, &zero, sizeof zero);
  vm::write_frame(b, 0, &zero, sizeof zero);
  u64 runs = 0;
  {
    const TempMap map(a);
    g_two_slot = map.address().value();
    volatile u64* word = reinterpret_cast<volatile u64*>(g_two_slot);
    *word = ~mark;  // CPU 0's TLB: the slot -> A, writable
    pagoda_grader_checkpoint(1, g_two_slot, 0);
    move_kernel_entry(g_two_slot, a, b);
    runs = cpu_request(1, MailboxOp::Call, reinterpret_cast<uptr>(&smp_two_initiators_cpu1));
    *word = mark;
    pagoda_grader_checkpoint(2, g_two_slot, g_cpu1_shootdowns);
    move_kernel_entry(g_two_slot, b, a);
    arch::invalidate_page_local(g_two_slot);
  }
  vm::frames().free(a);
  vm::frames().free(b);
  println("smp_two_initiators: CPU 1 started {} shootdown(s) toward CPU 0 while CPU 0 waited for it", runs);
  arch::shutdown(ExitStatus::Success);
}

}  // namespace pagoda
