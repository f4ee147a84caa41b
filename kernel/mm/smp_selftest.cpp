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

}  // namespace pagoda
