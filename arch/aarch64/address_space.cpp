// The AArch64 address space: a TTBR0 root per space with its ASID, the one TTBR1 root of the
// kernel shared by all (see arch_impl/address_space.hpp). Pure logic over aarch64::hw
// (mmu_hw.hpp), so that the host tests run it against a recording fake.
#include "arch_impl/address_space.hpp"

#include "arch/aarch64/mmu_hw.hpp"
#include "core/arch.hpp"
#include "core/cpu.hpp"
#include "core/panic.hpp"
#include "core/stop.hpp"

namespace pagoda::aarch64 {
namespace {

/// Which ASIDs are taken (bit n: ASID n). The kernel's, 0, is never handed out.
u64 g_asids_used[Aarch64AddressSpace::kAsids / 64] = {1};

/// The lowest ASID not taken, now taken; NoMemory when every one is.
Result<u16> allocate_asid() {
  // LAB 3 BEGIN hand out the lowest free ASID
  for (u16 asid = 1; asid < Aarch64AddressSpace::kAsids; ++asid) {
    u64& word = g_asids_used[asid / 64];
    const u64 bit = u64{1} << (asid % 64);
    if (word & bit) continue;
    word |= bit;
    return asid;
  }
  return Error(Error::NoMemory, "every ASID is taken (255 address spaces live)");
  // LAB 3 SKELETON
  // (void)g_asids_used;
  // return Error(Error::NotImplemented, "lab 3: write allocate_asid() in arch/aarch64/address_space.cpp "
  //                                     "(labs/03-process-roots/README.md)");
  // LAB 3 END
}

/// Gives @p asid back (the caller has dropped every translation tagged with it).
void free_asid(u16 asid) {
  // LAB 3 BEGIN give an ASID back
  g_asids_used[asid / 64] &= ~(u64{1} << (asid % 64));
  // LAB 3 SKELETON
  // (void)asid;
  // panic("lab 3: write free_asid() in arch/aarch64/address_space.cpp (labs/03-process-roots/README.md)");
  // LAB 3 END
}

// LAB 8 BEGIN ASID generations: with two CPUs an ASID is taken until the generation rolls over, and each CPU flushes its own TLB once per generation
// With two CPUs a space's end gives no ASID back: its translations may sit in the TLB of every
// CPU that ran it, and dropping them there at every end is a broadcast (TLBI ASIDE1IS) each
// time. Instead the ASIDs run out, and then every one is free again at once, in a new
// generation: a space whose ASID is from an older generation takes a new one at its next
// switch, and each CPU flushes its own TLB (TLBI VMALLE1, local) once, at its first switch
// into a space of the new generation: until then it may hold translations that an old
// generation tagged with ASIDs the new one hands out again. (The kernel lock serializes every
// caller: create_user(), activate() and the space's end run under it.)
/// The generation the ASIDs taken in g_asids_used belong to.
u64 g_generation = 1;
/// Per CPU: the generation its TLB was last flushed for (0: none yet).
u64 g_flushed_for[kMaxCpus] = {};

/// The generation a space made now gets with its ASID.
u64 current_generation() { return g_generation; }

/// After an ASID was taken: when none is left, every one is free again in a new generation
/// (the kernel's, 0, stays taken), so that the next create_user() finds one.
void roll_over_if_full() {
  if (cpus_online() < 2) return;  // (one CPU: lab 3's allocator, ASIDs given back at the end)
  for (const u64 word : g_asids_used)
    if (word != ~u64{0}) return;
  ++g_generation;
  for (u64& word : g_asids_used) word = 0;
  g_asids_used[0] = 1;
}

/// Before this CPU loads a space's ASID: an ASID of this generation for it (@p asid and
/// @p generation are the space's, updated), and this CPU's TLB flushed if it was not since the
/// last rollover. Returns true when the ASID changed.
bool catch_up_generation(u16& asid, u64& generation) {
  bool changed = false;
  while (generation != g_generation) {  // (taking the last one may roll over again)
    Result<u16> fresh = allocate_asid();
    if (fresh.is_error()) panic("no ASID free right after a rollover check");
    asid = fresh.release_value();
    generation = g_generation;
    changed = true;
    roll_over_if_full();
  }
  u64& flushed = g_flushed_for[arch::cpu_id()];
  if (flushed != g_generation) {
    hw::invalidate_all_local();
    flushed = g_generation;
  }
  return changed;
}
// LAB 8 SKELETON
// /// The generation a space made now gets with its ASID.
// u64 current_generation() { return 1; }
// /// After an ASID was taken.
// void roll_over_if_full() {}
// /// Before this CPU loads a space's ASID: true when the ASID changed.
// bool catch_up_generation(u16& asid, u64& generation) {
//   (void)asid;
//   (void)generation;
//   return false;
// }
// LAB 8 END

/// The end of TTBR0's range: a user space may change [0, this).
constexpr u64 kLowerEnd = u64{1} << PageTableFormat::kVirtualBits;

/// Panics when @p asid, about to be loaded on this CPU for the first time by a user space, may
/// still tag another space's translations in this CPU's TLB: that space's pages would show
/// through in this one.
void check_asid_clean(u16 asid) {
  if (!hw::asid_may_be_cached(asid)) return;
  if (cpus_online() > 1)
    panic("ASID {} is loaded on CPU {} for an address space that never ran there while that CPU's TLB may still hold "
          "another space's translations tagged with it: CPU {} loaded the ASID again without flushing its own TLB "
          "since the ASID's last owner ran there (with two CPUs an ASID is given back only at a rollover, and each "
          "CPU must flush its own TLB, TLBI VMALLE1, at its first switch into a space of the new generation: "
          "catch_up_generation(), arch/aarch64/address_space.cpp)",
          asid, arch::cpu_id(), arch::cpu_id());
  panic("ASID {} is loaded for a new address space while the TLB may still hold another space's translations tagged "
        "with it (TTBR0 held it since it was last invalidated): two address spaces share the ASID (allocate_asid() "
        "must mark it taken), or its last owner gave it back without dropping them (~Aarch64AddressSpace() must "
        "invalidate it, hw::invalidate_asid, before free_asid())",
        asid);
}

}  // namespace

Aarch64AddressSpace::Aarch64AddressSpace(Tree lower, Tree upper)
    : lower_(move(lower)), kernel_(true), owns_upper_(true), asid_(kKernelAsid) {
  construct_at(&own_upper_, move(upper));
  kernel_root_ = own_upper_.root();
}

Aarch64AddressSpace::Aarch64AddressSpace(Tree lower, Tree* shared_upper, u16 asid, const Aarch64AddressSpace& kernel)
    : lower_(move(lower)), kernel_(false), owns_upper_(false), shared_upper_(shared_upper), asid_(asid),
      generation_(current_generation()), kernel_root_(kernel.kernel_root()) {
  roll_over_if_full();
}

Aarch64AddressSpace::Aarch64AddressSpace(Tree lower, Tree own_upper, u16 asid, const Aarch64AddressSpace& kernel)
    : lower_(move(lower)), kernel_(false), owns_upper_(true), asid_(asid), generation_(current_generation()),
      kernel_root_(kernel.kernel_root()) {
  roll_over_if_full();
  construct_at(&own_upper_, move(own_upper));
  upper_published_ = debug::PublishedRoot(own_upper_.root(), debug::RootKind::Other, "own ttbr1");
}

Aarch64AddressSpace::Aarch64AddressSpace(Aarch64AddressSpace&& other)
    : TlbSync(other), lower_(move(other.lower_)), kernel_(other.kernel_), owns_upper_(other.owns_upper_),
      asid_(other.asid_), generation_(other.generation_), loaded_(other.loaded_), kernel_root_(other.kernel_root_),
      upper_published_(move(other.upper_published_)) {
  if (owns_upper_) construct_at(&own_upper_, move(other.own_upper_));
  else shared_upper_ = other.shared_upper_;
}

Result<Aarch64AddressSpace> Aarch64AddressSpace::create_kernel(TableMemory& memory) {
  Tree lower = TRY(Tree::create(memory));
  Tree upper = TRY(Tree::create(memory, {.user_end = 0}));  // TTBR1: no table entry allows EL0
  return Aarch64AddressSpace(move(lower), move(upper));
}

Result<Aarch64AddressSpace> Aarch64AddressSpace::create_user(const Aarch64AddressSpace& kernel) {
  if (!kernel.kernel_) return Error(Error::InvalidArgument, "create_user() needs the kernel's address space");
  // LAB 3 BEGIN a space of its own: an ASID, a TTBR0 root, and the kernel's TTBR1 tree shared
  // The lower half is the space's own tree, tagged with an ASID of its own so that a switch
  // needs no TLB flush. The kernel half is one tree, the kernel's, held by TTBR1 for every
  // space: the new space refers to it (never a copy, never a tree of its own), so that
  // activate() changes only TTBR0, and a kernel mapping made later (a kernel stack) is in
  // every space at once.
  const u16 asid = TRY(allocate_asid());
  Result<Tree> lower = Tree::create(kernel.memory());
  if (lower.is_error()) {
    free_asid(asid);
    return lower.error();
  }
  return Aarch64AddressSpace(lower.release_value(), kernel.shared_kernel_tree(), asid, kernel);
  // LAB 3 SKELETON
  // (void)allocate_asid;
  // (void)free_asid;
  // return Error(Error::NotImplemented, "lab 3: write Aarch64AddressSpace::create_user() in "
  //                                     "arch/aarch64/address_space.cpp (labs/03-process-roots/README.md)");
  // LAB 3 END
}

Aarch64AddressSpace::~Aarch64AddressSpace() {
  if (!lower_.valid()) return;  // moved from
  if (is_live()) panic("destroying the live address space (TTBR0 root {:#x}, ASID {})", lower_.root().value(), asid_);
  upper_published_.withdraw();
  if (owns_upper_) own_upper_.~Tree();
  if (kernel_) return;  // ~Tree frees the lower tree
  // LAB 8 BEGIN with two CPUs the ASID stays taken until the generation rolls over: nothing to flush at the end
  // The CPUs that ran the space may keep its translations, tagged with the ASID: no new space
  // gets that ASID before a rollover, and no CPU loads it again before its own flush.
  if (cpus_online() > 1) return;
  // LAB 8 SKELETON
  // LAB 8 END
  // LAB 3 BEGIN nothing of this space may stay in a TLB once its tables and its ASID are reused
  hw::write_barrier();
  hw::invalidate_asid(asid_);
  free_asid(asid_);
  // LAB 3 SKELETON
  // panic("lab 3: drop this space's translations and give its ASID back in ~Aarch64AddressSpace() "
  //       "(arch/aarch64/address_space.cpp; labs/03-process-roots/README.md)");
  // LAB 3 END
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
  if (upper().root() != kernel_root_) {
    const u64* entries = upper().root_entries();
    usize valid = 0;
    for (usize i = 0; entries != nullptr && i < Format::kEntriesPerTable; ++i)
      valid += Format::is_present(entries[i], 0);
    format_to(why,
              "the space gives TTBR1_EL1 a tree of its own, root {:#x} ({} valid top-level entries), not the "
              "kernel root {:#x}: {}",
              upper().root().value(), valid, kernel_root_.value(),
              valid == 0 ? "a kernel half that was never filled in (the vectors and the kernel stacks are not there)"
                         : "a copy, frozen when it was made (what the kernel maps later is not there)");
    return false;
  }
  const PhysAddr ttbr1 = hw::read_ttbr1();
  if (ttbr1 == kernel_root_) return true;
  format_to(why, "TTBR1_EL1 holds {:#x}, not the kernel root {:#x}", ttbr1.value(), kernel_root_.value());
  return false;
}

bool Aarch64AddressSpace::shares_kernel_half_at(VirtAddr) const {
  return kernel_ || (upper().root() == kernel_root_ && hw::read_ttbr1() == kernel_root_);
}

void Aarch64AddressSpace::activate() {
  if (kernel_) {
    // The first time, off the boot tables: every translation dropped. Afterwards (a switch to
    // the idle loop) only TTBR0 changes, to the kernel's empty lower half under ASID 0, and the
    // TLB keeps what it holds, as a real kernel's lazy switch does: a process's space that ends
    // must drop its own ASID's translations (~Aarch64AddressSpace), no switch does it for it.
    // With two CPUs the empty lower half is loaded under the ASID TTBR0 held (nothing is cached
    // through it): QEMU then keeps, as hardware does, what that ASID tags in this CPU's TLB.
    if (hw::read_ttbr1() != own_upper_.root()) hw::load_kernel_roots(own_upper_.root(), lower_.root());
    else if (cpus_online() > 1) hw::load_empty_ttbr0(lower_.root());
    else hw::load_ttbr0(lower_.root(), kKernelAsid);
    return;
  }
  if (hw::read_ttbr1() != upper().root()) hw::load_ttbr1(upper().root());
  if (catch_up_generation(asid_, generation_)) loaded_ = 0;  // (each CPU checks the new ASID once)
  const u32 me = u32{1} << arch::cpu_id();
  if ((loaded_ & me) == 0) check_asid_clean(asid_);
  loaded_ |= me;
  hw::load_ttbr0(lower_.root(), asid_);
}

void Aarch64AddressSpace::write_barrier() { hw::write_barrier(); }

[[PAGODA_STOP(invalidate_page)]] void Aarch64AddressSpace::invalidate_page(VirtAddr va, bool global) {
  if (global || Format::in_upper_range(va)) hw::invalidate_va_all_asids(va);
  // LAB 8 BEGIN a user page: broadcast (IS) when another CPU may cache the space, this CPU's TLB alone otherwise
  // (ASIDs keep a space's translations in a CPU's TLB across its switches: cpus() only grows.)
  else if ((cpus() & ~(u32{1} << arch::cpu_id())) != 0) hw::invalidate_va(va, asid_);
  else hw::invalidate_va_local(va, asid_);
  // LAB 8 SKELETON
  // else hw::invalidate_va_local(va, asid_);
  // LAB 8 END
}

[[PAGODA_STOP(invalidate_all)]] void Aarch64AddressSpace::invalidate_all(bool global) {
  if (global || kernel_) hw::invalidate_all();
  else hw::flush_asid(asid_);  // (the space's end, not a batch, says its ASID is clean)
}

}  // namespace pagoda::aarch64
