/// @file arch_impl/address_space.hpp
/// @brief Seam: what one address space is on x86_64, and how it shares the kernel half.
///
/// An x86_64 address space is one root (CR3). The kernel's root owns the tables of both halves;
/// every top-level entry of its upper half (PML4 256..511) gets a table once at boot
/// (prepare_kernel_half) and those tables are pinned: no unmap ever frees them. A user space's
/// root copies those 256 entries when it is made, so kernel mappings made later, through the
/// kernel space, appear in every root at once; the user space owns only the tables of its
/// lower half and frees exactly those when it is destroyed.
///
///     kernel root                      user root (one per process, lab 3)
///     PML4[0..255]   kernel's own      PML4[0..255]   the process's own tables (owned)
///     PML4[256..511] -> pinned tables  PML4[256..511] copies -> the same pinned tables
///
/// Generic code reaches this class as arch::ArchAddressSpace through mm/space/address_space.hpp.
/// (AArch64's will hold a TTBR0 user root, the single TTBR1 kernel root, and an ASID.)
#pragma once

#include "arch_impl/layout.hpp"
#include "arch_impl/page_table_format.hpp"
#include "mm/pt/consistency_batch.hpp"
#include "mm/pt/page_table.hpp"

namespace pagoda::x86 {

class X86AddressSpace final : public TlbSync {
 public:
  using Format = PageTableFormat;
  using Tree = PageTable<Format>;
  /// The first top-level entry of the kernel half (PML4 256).
  static constexpr usize kKernelHalfFirst = Format::index(VirtAddr(arch::layout::kKernelHalfBase), 0);

  /// The kernel's space: a fresh root owning both halves, the kernel half's tables pinned.
  [[nodiscard]] static Result<X86AddressSpace> create_kernel(TableMemory& memory);
  /// A user space whose root shares @p kernel's upper half (its top-level entries copied).
  /// Unsupported when the kernel half was not prepared: the new root would miss every kernel
  /// table made later.
  [[nodiscard]] static Result<X86AddressSpace> create_user(const X86AddressSpace& kernel);

  X86AddressSpace(X86AddressSpace&&) = default;
  X86AddressSpace(const X86AddressSpace&) = delete;
  X86AddressSpace& operator=(const X86AddressSpace&) = delete;
  X86AddressSpace& operator=(X86AddressSpace&&) = delete;
  /// Frees the tables this space owns (a user space: its lower half; nothing of the kernel
  /// half). It must not be live.
  ~X86AddressSpace();

  /// Gives every kernel-half top-level entry of the kernel's root its table (kernel space only).
  [[nodiscard]] Result<void> prepare_kernel_half();

  bool is_kernel() const { return kernel_; }
  /// The tree that translates @p va in this space (on x86_64 the one root, for both halves).
  Tree& tree_for(VirtAddr) { return tree_; }
  const Tree& tree_for(VirtAddr) const { return tree_; }
  /// True when this space may change the mappings of [va, va + size): the kernel's anything,
  /// a user space only its lower half (the kernel half is changed through the kernel space).
  bool may_change(VirtAddr va, u64 size) const;
  /// The root (CR3 value) of this space.
  PhysAddr root() const { return tree_.root(); }
  /// The root of the kernel half this space shares: the kernel space's own root (for a user
  /// space, the one whose top-level entries it copied).
  PhysAddr kernel_root() const { return kernel_root_; }
  /// Where this space's tables live.
  TableMemory& memory() const { return tree_.memory(); }

  /// True when the CPU translates through this space now.
  bool is_live() const;
  /// True when this space shares the kernel's half (the kernel space always does); otherwise
  /// prints which top-level entry differs to @p why. AddressSpace::activate() checks it before
  /// a switch: a root without the kernel half loses the kernel at the next instruction.
  bool shares_kernel_half(FormatSink& why) const;
  /// The same for the one top-level entry over @p va (a kernel-half address): what a switch
  /// compares at every switch once a whole check proved the rest (AddressSpace::activate()).
  bool shares_kernel_half_at(VirtAddr va) const {
    if (kernel_) return true;
    const usize i = Format::index(va, 0);
    return i >= kKernelHalfFirst && ((top_[i] ^ kernel_top_[i]) & ~(Format::kAccessed | Format::kDirty)) == 0;
  }
  /// Loads this space's root into CR3, unchecked (AddressSpace::activate() checks first).
  void activate();
  /// Whether loading another root drops this one's translations from the CPU's TLB (x86_64
  /// without PCIDs: every CR3 write does, global entries aside): AddressSpace::activate() then
  /// takes the CPU out of the old space's cpus().
  static constexpr bool kSwitchDropsTranslations = true;

  // TlbSync: without PCIDs only the live root's translations, global ones and the kernel half
  // (shared by every root) can be in the TLB.
  void write_barrier() override { Format::write_barrier(); }
  void invalidate_page(VirtAddr va, bool global) override;
  void invalidate_all(bool global) override;

 private:
  X86AddressSpace(Tree tree, bool kernel, PhysAddr kernel_root, const u64* kernel_top)
      : tree_(move(tree)), kernel_(kernel), kernel_root_(kernel_root), kernel_top_(kernel_top),
        top_(tree_.root_entries()) {
    if (!kernel_) check_user_shape();
  }

  /// Panics when a user space's tree owns a top-level entry of the kernel half: its teardown
  /// (~Tree frees what the tree owns) would free the tables every root shares.
  void check_user_shape() const;

  /// True when @p va is in the kernel half, which every root shares.
  static bool in_kernel_half(VirtAddr va) { return va.value() >= arch::layout::kKernelHalfBase; }

  Tree tree_;
  bool kernel_;
  PhysAddr kernel_root_;   ///< the kernel root (this space's own root for the kernel space)
  const u64* kernel_top_;  ///< the kernel root's entries (what a user root must share)
  const u64* top_;         ///< this root's entries
};

}  // namespace pagoda::x86

namespace pagoda::arch {
/// The ISA's address space (see x86::X86AddressSpace).
using ArchAddressSpace = x86::X86AddressSpace;
}  // namespace pagoda::arch
