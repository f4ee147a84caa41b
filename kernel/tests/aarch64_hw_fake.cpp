#include "aarch64_hw_fake.hpp"

#include "mm/space/mmu.hpp"
#include "core/cpu.hpp"
#include "host_support.hpp"
#include "page_table_fakes.hpp"

namespace pagoda::aarch64::hw {

namespace fake {
Cpu& cpu() {
  static Cpu state[kMaxCpus];
  return state[host::g_cpu % kMaxCpus];
}
}  // namespace fake

using fake::cpu;
using test::hex;

Ttbr0 read_ttbr0() { return cpu().ttbr0; }
PhysAddr read_ttbr1() { return cpu().ttbr1; }

void load_kernel_roots(PhysAddr kernel_root, PhysAddr lower_root) {
  cpu().ttbr1 = kernel_root;
  cpu().ttbr0 = {lower_root, 0};
  cpu().wxn = true;
  cpu().cached_asids.reset();
  cpu().log.push_back("kernel roots " + hex(kernel_root.value()) + " " + hex(lower_root.value()));
}

void load_ttbr0(PhysAddr root, u16 asid) {
  cpu().ttbr0 = {root, asid};
  cpu().cached_asids.set(asid % Aarch64AddressSpace::kAsids);
  cpu().log.push_back("ttbr0 " + hex(root.value()) + " asid " + std::to_string(asid));
}

void load_empty_ttbr0(PhysAddr root) {
  cpu().ttbr0.root = root;
  cpu().log.push_back("ttbr0 " + hex(root.value()) + " asid kept");
}

void load_ttbr1(PhysAddr root) {
  cpu().ttbr1 = root;
  cpu().cached_asids.reset();
  cpu().log.push_back("ttbr1 " + hex(root.value()));
}

void write_barrier() { cpu().log.push_back("barrier"); }
void invalidate_va_all_asids(VirtAddr va) { cpu().log.push_back("tlbi va " + hex(va.value())); }
void invalidate_va(VirtAddr va, u16 asid) {
  cpu().log.push_back("tlbi va " + hex(va.value()) + " asid " + std::to_string(asid));
}
void invalidate_va_local(VirtAddr va, u16 asid) { invalidate_va(va, asid); }  // (one CPU)
void invalidate_asid(u16 asid) {
  cpu().cached_asids.reset(asid % Aarch64AddressSpace::kAsids);
  cpu().log.push_back("tlbi asid " + std::to_string(asid));
}
void flush_asid(u16 asid) { cpu().log.push_back("tlbi asid " + std::to_string(asid) + " (a batch)"); }
void invalidate_all() {
  cpu().cached_asids.reset();
  cpu().log.push_back("tlbi all");
}
void invalidate_all_local() {
  cpu().cached_asids.reset();
  cpu().log.push_back("tlbi all (this CPU)");
}
bool asid_may_be_cached(u16 asid) { return cpu().cached_asids.test(asid % Aarch64AddressSpace::kAsids); }

}  // namespace pagoda::aarch64::hw

namespace pagoda::arch {

void critical_ranges(CriticalRanges& out) {
  for (const CriticalRange& r : aarch64::hw::fake::cpu().critical) out.add(r.what, r.start, r.size, r.access, r.focus);
}

SwitchStacks switch_stacks() { return aarch64::hw::fake::cpu().stacks; }

}  // namespace pagoda::arch
