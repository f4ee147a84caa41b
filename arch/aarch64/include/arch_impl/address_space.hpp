/// @file address_space.hpp
/// @brief Seam: what one address space is on AArch64, and how it shares the kernel half.
///
/// AArch64 translates the two halves through two roots. TTBR1_EL1 holds the kernel half: one
/// root, the kernel's, loaded once and never switched, so every address space shares the whole
/// kernel half by construction and nothing is copied or pinned. TTBR0_EL1 holds the lower half
/// and changes with the address space, tagged with the space's ASID so that a switch needs no
/// TLB flush.
///
///     kernel space                        user space (one per process, lab 3)
///     TTBR1 -> kernel root (owned)        TTBR1 -> the kernel's root (shared, never loaded anew)
///     TTBR0 -> kernel's lower root        TTBR0 -> the process's root (owned), ASID 1..255
///              (lab 1: the identity map;
///               from lab 2 on: empty), ASID 0
///
/// A space names the tree TTBR1 gets when it is activated (upper()): the kernel's, shared, for
/// every space made right. A space may also own a TTBR1 tree (the kernel's does): activate()
/// then loads that tree into TTBR1, and with it the kernel half the space's tree holds, which
/// for a user space is nothing: the vectors, the kernel stacks and the kernel itself are gone
/// at the next instruction. A kernel still running through TTBR0 (linked low) loses itself
/// when TTBR0 changes; a TTBR1 without the kernel's tables leaves every exception nowhere to
/// go (labs 2 and 3).
/// Generic code reaches this class as arch::ArchAddressSpace through mm/space/address_space.hpp.
#pragma once

#include "arch_impl/layout.hpp"
#include "arch_impl/page_table_format.hpp"
#include "mm/pt/consistency_batch.hpp"
#include "mm/space/debug_roots.hpp"
#include "mm/pt/page_table.hpp"

namespace pagoda::aarch64 {

class Aarch64AddressSpace final : public TlbSync {
 public:
  using Format = PageTableFormat;
  using Tree = PageTable<Format>;
  /// The first top-level entry of the kernel half: TTBR1's root is all kernel half.
  static constexpr usize kKernelHalfFirst = Format::index(VirtAddr(arch::layout::kKernelHalfBase), 0);
  /// ASIDs: 8 bits (TCR_EL1.AS = 0); 0 is the kernel's, user spaces get 1 .. kAsids - 1.
  static constexpr u16 kAsids = 256;
  static constexpr u16 kKernelAsid = 0;

  /// The kernel's space: a fresh TTBR1 root and a fresh (lower, TTBR0) root, ASID 0.
  [[nodiscard]] static Result<Aarch64AddressSpace> create_kernel(TableMemory& memory);
  /// A user space: its own TTBR0 root and ASID, sharing @p kernel's TTBR1 root. NoMemory when
  /// every ASID is taken.
  [[nodiscard]] static Result<Aarch64AddressSpace> create_user(const Aarch64AddressSpace& kernel);

  Aarch64AddressSpace(Aarch64AddressSpace&& other);
  Aarch64AddressSpace(const Aarch64AddressSpace&) = delete;
  Aarch64AddressSpace& operator=(const Aarch64AddressSpace&) = delete;
  Aarch64AddressSpace& operator=(Aarch64AddressSpace&&) = delete;
  /// Frees the tables this space owns (a user space: its lower half only) after dropping what
  /// the TLB holds under its ASID, and gives the ASID back. It must not be live.
  ~Aarch64AddressSpace();

  /// Nothing to prepare: TTBR1 is one root for every space, so tables the kernel half gets
  /// later are seen by all of them. (x86_64's kernel half needs every top-level table made at
  /// boot, since each process root holds copies of those entries.)
  [[nodiscard]] Result<void> prepare_kernel_half();

  bool is_kernel() const { return kernel_; }
  /// The tree that translates @p va: the kernel's TTBR1 tree for the upper half (shared),
  /// this space's TTBR0 tree for the lower.
  Tree& tree_for(VirtAddr va) { return Format::in_upper_range(va) ? upper() : lower_; }
  const Tree& tree_for(VirtAddr va) const { return Format::in_upper_range(va) ? upper() : lower_; }
  /// True when this space may change the mappings of [va, va + size): the kernel's anything,
  /// a user space only its lower half (the kernel half is changed through the kernel space).
  bool may_change(VirtAddr va, u64 size) const;
  /// The root that identifies this space in reports: the kernel's TTBR1 root, a process's TTBR0.
  PhysAddr root() const { return kernel_ ? upper().root() : lower_.root(); }
  /// The TTBR0 root of this space (for the kernel, its lower half).
  PhysAddr lower_root() const { return lower_.root(); }
  /// The kernel's TTBR1 root, the one every space must share.
  PhysAddr kernel_root() const { return kernel_root_; }
  /// The root activate() loads into TTBR1: kernel_root() for every space made right.
  PhysAddr upper_root() const { return upper().root(); }
  u16 asid() const { return asid_; }
  /// Where this space's tables live.
  TableMemory& memory() const { return lower_.memory(); }

  /// True when the CPU translates through this space now (TTBR0 is its root with its ASID,
  /// and TTBR1 the kernel's).
  bool is_live() const;
  /// True when this space shares the kernel's half: the kernel space always does; a user space
  /// when the tree it gives TTBR1 is the kernel's and TTBR1_EL1 holds it (otherwise says which
  /// is not to @p why). AddressSpace::activate() checks it before a switch, with the critical
  /// ranges.
  bool shares_kernel_half(FormatSink& why) const;
  /// The same, for a switch a whole check proved already (AddressSpace::activate()): TTBR1 still
  /// holds the kernel's root (@p va is not needed: the whole kernel half is one root).
  bool shares_kernel_half_at(VirtAddr va) const;
  /// Makes this the live space, unchecked (AddressSpace::activate() checks the critical ranges
  /// and shares_kernel_half() first). The kernel space loads both TTBRs (the switch from the
  /// boot tables); a user space loads TTBR0 with its ASID, and TTBR1 with upper_root() when
  /// TTBR1 holds another root (never, for a space made right: TTBR1 keeps the kernel's).
  void activate();
  /// Whether loading another root drops this one's translations from the CPU's TLB: never on
  /// AArch64 (they stay, tagged with the ASID), so a CPU stays in cpus() once it loaded the space.
  static constexpr bool kSwitchDropsTranslations = false;

  // TlbSync. Translations of the kernel half, and global ones, may be cached under any ASID;
  // a user space's lower half only under its own.
  void write_barrier() override;
  void invalidate_page(VirtAddr va, bool global) override;
  void invalidate_all(bool global) override;

 private:
  /// A user space with TTBR0 root @p lower and @p asid whose TTBR1 gets @p shared_upper (the
  /// kernel's tree, @p kernel).
  Aarch64AddressSpace(Tree lower, Tree* shared_upper, u16 asid, const Aarch64AddressSpace& kernel);
  /// A user space that owns the tree TTBR1 gets (@p own_upper), beside the kernel's (@p kernel).
  Aarch64AddressSpace(Tree lower, Tree own_upper, u16 asid, const Aarch64AddressSpace& kernel);
  /// The kernel's space.
  Aarch64AddressSpace(Tree lower, Tree upper);

  Tree& upper() { return owns_upper_ ? own_upper_ : *shared_upper_; }
  const Tree& upper() const { return owns_upper_ ? own_upper_ : *shared_upper_; }
  /// The kernel's TTBR1 tree (this must be the kernel's space), for a user space to refer to:
  /// shared, never copied; kernel mappings change it only through the kernel's space.
  Tree* shared_kernel_tree() const { return const_cast<Tree*>(&own_upper_); }

  Tree lower_;
  bool kernel_;
  bool owns_upper_;
  union {
    Tree own_upper_;      ///< the TTBR1 tree this space owns (owns_upper_: the kernel space's)
    Tree* shared_upper_;  ///< the kernel's, which this space shares (!owns_upper_)
  };
  u16 asid_;
  /// A user space with two CPUs online: the ASID generation asid_ was taken in (lab 8; an older
  /// one than the allocator's means asid_ may belong to another space now).
  u64 generation_ = 0;
  /// A user space: the CPUs whose TTBR0 has held it (bit c: CPU c; each one's first activate()
  /// checks the ASID there).
  u32 loaded_ = 0;
  PhysAddr kernel_root_;  ///< the kernel's TTBR1 root
  /// A user space's own TTBR1 tree is published for the debugger and the grader (the registry
  /// lists every root the kernel builds, mm/space/debug_roots.hpp), as "own ttbr1".
  debug::PublishedRoot upper_published_;
};

}  // namespace pagoda::aarch64

namespace pagoda::arch {
/// The ISA's address space (see aarch64::Aarch64AddressSpace).
using ArchAddressSpace = aarch64::Aarch64AddressSpace;
}  // namespace pagoda::arch
