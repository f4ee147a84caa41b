// The AArch64 address space: a TTBR0 root per space with its ASID, the one TTBR1 root of the
// kernel shared by all (see arch_impl/address_space.hpp). Pure logic over aarch64::hw
// (mmu_hw.hpp), so that the host tests run it against a recording fake.
#include "arch_impl/address_space.hpp"

#include "arch/aarch64/mmu_hw.hpp"
#include "core/panic.hpp"

namespace pagoda::aarch64 {
namespace {

/// Which ASIDs are taken (bit n: ASID n). The kernel's, 0, is never handed out.
u64 g_asids_used[Aarch64AddressSpace::kAsids / 64] = {1};

Result<u16> allocate_asid() {
  for (u16 asid = 1; asid < Aarch64AddressSpace::kAsids; ++asid) {
    u64& word = g_asids_used[asid / 64];
    const u64 bit = u64{1} << (asid % 64);
    if (word & bit) continue;
    word |= bit;
    return asid;
  }
  return Error(Error::NoMemory, "every ASID is taken (255 address spaces live)");
}

void free_asid(u16 asid) { g_asids_used[asid / 64] &= ~(u64{1} << (asid % 64)); }

/// The end of TTBR0's range: a user space may change [0, this).
constexpr u64 kLowerEnd = u64{1} << PageTableFormat::kVirtualBits;

}  // namespace

Aarch64AddressSpace::Aarch64AddressSpace(Tree lower, Tree upper)
    : lower_(move(lower)), kernel_(true), asid_(kKernelAsid) {
  construct_at(&own_upper_, move(upper));
}

Aarch64AddressSpace::Aarch64AddressSpace(Tree lower, Tree* shared_upper, u16 asid)
    : lower_(move(lower)), kernel_(false), shared_upper_(shared_upper), asid_(asid) {}

Aarch64AddressSpace::Aarch64AddressSpace(Aarch64AddressSpace&& other)
    : lower_(move(other.lower_)), kernel_(other.kernel_), asid_(other.asid_) {
  if (kernel_) construct_at(&own_upper_, move(other.own_upper_));
  else shared_upper_ = other.shared_upper_;
}

Result<Aarch64AddressSpace> Aarch64AddressSpace::create_kernel(TableMemory& memory) {
  Tree lower = TRY(Tree::create(memory));
  Tree upper = TRY(Tree::create(memory, {.user_end = 0}));  // TTBR1: no table entry allows EL0
  return Aarch64AddressSpace(move(lower), move(upper));
}

Result<Aarch64AddressSpace> Aarch64AddressSpace::create_user(const Aarch64AddressSpace& kernel) {
  if (!kernel.kernel_) return Error(Error::InvalidArgument, "create_user() needs the kernel's address space");
  const u16 asid = TRY(allocate_asid());
  Result<Tree> lower = Tree::create(kernel.memory());
  if (lower.is_error()) {
    free_asid(asid);
    return lower.error();
  }
  // LAB 3 BEGIN share the kernel half: the new space's TTBR1 root is the kernel's own tree
  // The kernel half is one tree, the kernel's, held by TTBR1 for every address space: the new
  // space refers to it (never a copy, never a tree of its own), so that activate() changes
  // only TTBR0, and a kernel mapping made later (a kernel stack) is in every space at once.
  return Aarch64AddressSpace(lower.release_value(), const_cast<Tree*>(&kernel.own_upper_), asid);
  // LAB 3 SKELETON
  // free_asid(asid);
  // return Error(Error::NotImplemented, "lab 3: share the kernel half in Aarch64AddressSpace::create_user() in "
  //                                     "arch/aarch64/address_space.cpp (labs/03-process-roots/README.md)");
  // LAB 3 END
}

Aarch64AddressSpace::~Aarch64AddressSpace() {
  if (!lower_.valid()) return;  // moved from
  if (is_live()) panic("destroying the live address space (TTBR0 root {:#x}, ASID {})", lower_.root().value(), asid_);
  if (kernel_) {
    own_upper_.~Tree();
    return;  // ~Tree frees the lower tree
  }
  // Nothing this space mapped may stay in a TLB once its tables and its ASID are reused.
  hw::write_barrier();
  hw::invalidate_asid(asid_);
  free_asid(asid_);
}

Result<void> Aarch64AddressSpace::prepare_kernel_half() {
  if (!kernel_) return Error::InvalidArgument;
  return {};
}

bool Aarch64AddressSpace::may_change(VirtAddr va, u64 size) const {
  if (kernel_) return true;
  return va.value() < kLowerEnd && size <= kLowerEnd - va.value();
}

bool Aarch64AddressSpace::is_live() const {
  const hw::Ttbr0 ttbr0 = hw::read_ttbr0();
  return ttbr0.root == lower_.root() && ttbr0.asid == asid_ && hw::read_ttbr1() == upper().root();
}

bool Aarch64AddressSpace::shares_kernel_half(FormatSink& why) const {
  if (kernel_) return true;
  const PhysAddr ttbr1 = hw::read_ttbr1();
  if (ttbr1 == shared_upper_->root()) return true;
  format_to(why, "TTBR1_EL1 holds {:#x}, not the kernel root {:#x}", ttbr1.value(), shared_upper_->root().value());
  return false;
}

bool Aarch64AddressSpace::shares_kernel_half_at(VirtAddr) const {
  return kernel_ || hw::read_ttbr1() == shared_upper_->root();
}

void Aarch64AddressSpace::activate() {
  if (kernel_) {
    hw::load_kernel_roots(own_upper_.root(), lower_.root());
    return;
  }
  hw::load_ttbr0(lower_.root(), asid_);
}

void Aarch64AddressSpace::write_barrier() { hw::write_barrier(); }

void Aarch64AddressSpace::invalidate_page(VirtAddr va, bool global) {
  if (global || Format::in_upper_range(va)) hw::invalidate_va_all_asids(va);
  else hw::invalidate_va(va, asid_);
}

void Aarch64AddressSpace::invalidate_all(bool global) {
  if (global || kernel_) hw::invalidate_all();
  else hw::invalidate_asid(asid_);
}

}  // namespace pagoda::aarch64
