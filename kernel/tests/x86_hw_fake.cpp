#include "x86_hw_fake.hpp"

#include "arch/x86_64/mmu_hw.hpp"
#include "mm/space/mmu.hpp"
#include "page_table_fakes.hpp"

namespace pagoda::x86::hw {

namespace fake {
Cpu& cpu() {
  static Cpu state;
  return state;
}
}  // namespace fake

PhysAddr read_root() { return fake::cpu().cr3; }

void load_root(PhysAddr root) {
  fake::cpu().cr3 = root;
  fake::cpu().log.push_back("load " + test::hex(root.value()));
}

void invalidate_page(VirtAddr va) { fake::cpu().log.push_back("invlpg " + test::hex(va.value())); }

void flush_tlb(bool global) { fake::cpu().log.push_back(global ? "flush global" : "flush"); }

}  // namespace pagoda::x86::hw

namespace pagoda::arch {

void critical_ranges(CriticalRanges& out) {
  for (const CriticalRange& r : x86::hw::fake::cpu().critical) out.add(r.what, r.start, r.size, r.access, r.focus);
}

SwitchStacks switch_stacks() { return x86::hw::fake::cpu().stacks; }

}  // namespace pagoda::arch
