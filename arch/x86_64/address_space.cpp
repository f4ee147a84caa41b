// The x86_64 address space: one root, the kernel half shared by copying its pinned top-level
// entries (see arch_impl/address_space.hpp). Pure logic over x86::hw (mmu_hw.hpp), so that the
// host tests run it against a recording fake.
#include "arch_impl/address_space.hpp"

#include "arch/x86_64/mmu_hw.hpp"
#include "core/panic.hpp"
#include "core/stop.hpp"

namespace pagoda::x86 {

Result<X86AddressSpace> X86AddressSpace::create_kernel(TableMemory& memory) {
  Tree tree = TRY(Tree::create(memory, {.owned_first = 0,
                                        .owned_end = Format::kEntriesPerTable,
                                        .pinned_first = kKernelHalfFirst,
                                        .user_end = kKernelHalfFirst}));
  const u64* top = tree.root_entries();
  const PhysAddr root = tree.root();
  return X86AddressSpace(move(tree), true, root, top);
}

Result<X86AddressSpace> X86AddressSpace::create_user(const X86AddressSpace& kernel) {
  if (!kernel.kernel_) return Error(Error::InvalidArgument, "create_user() needs the kernel's address space");
  const u64* shared = kernel.tree_.root_entries();
  // LAB 3 BEGIN a root of its own whose upper entries are the kernel root's
  // Every upper entry must already lead to a table (prepare_kernel_half()): an entry still
  // empty now would stay empty here when the kernel fills it later.
  for (usize i = kKernelHalfFirst; i < Format::kEntriesPerTable; ++i)
    if (!Format::is_present(shared[i], 0))
      return Error(Error::Unsupported, "the kernel half is not prepared (prepare_kernel_half): a new root would "
                                       "miss every kernel table made after it");
  // The new tree owns its lower half; its upper entries are pinned, never freed by it.
  Tree tree = TRY(Tree::create(kernel.tree_.memory(), {.owned_first = 0,
                                                       .owned_end = kKernelHalfFirst,
                                                       .pinned_first = kKernelHalfFirst,
                                                       .user_end = kKernelHalfFirst}));
  // The same entries, pointing to the same (pinned) tables: a mapping the kernel makes later
  // under any of them (a kernel stack, say) is in this root at once. Copying the tables
  // instead would freeze this root's view of the kernel half.
  u64* top = tree.root_entries();
  for (usize i = kKernelHalfFirst; i < Format::kEntriesPerTable; ++i) top[i] = shared[i];
  return X86AddressSpace(move(tree), false, kernel.tree_.root(), shared);
  // LAB 3 SKELETON
  // (void)shared;
  // return Error(Error::NotImplemented, "lab 3: write X86AddressSpace::create_user() in arch/x86_64/address_space.cpp "
  //                                     "(labs/03-process-roots/README.md)");
  // LAB 3 END
}

void X86AddressSpace::check_user_shape() const {
  const Tree::Shape& shape = tree_.shape();
  if (shape.owned_end > kKernelHalfFirst)
    panic("a process's tree owns top-level entries {}..{}, the kernel half's among them: its teardown would free the "
          "kernel's tables, which every root shares; create_user() must make a tree that owns only entries 0..{} and "
          "pins {}..{}",
          shape.owned_first, shape.owned_end - 1, kKernelHalfFirst - 1, kKernelHalfFirst, Format::kEntriesPerTable - 1);
}

X86AddressSpace::~X86AddressSpace() {
  if (!tree_.valid()) return;  // moved from
  if (is_live()) panic("destroying the live address space (root {:#x})", tree_.root().value());
  // ~Tree frees the owned tables: a user space's lower half, never the shared kernel half.
}

Result<void> X86AddressSpace::prepare_kernel_half() {
  if (!kernel_) return Error::InvalidArgument;
  return tree_.populate_top_level(kKernelHalfFirst, Format::kEntriesPerTable);
}

bool X86AddressSpace::may_change(VirtAddr va, u64 size) const {
  if (kernel_) return true;
  return va.value() < arch::layout::kKernelHalfBase && size <= arch::layout::kKernelHalfBase - va.value();
}

bool X86AddressSpace::is_live() const { return hw::read_root() == tree_.root(); }

bool X86AddressSpace::shares_kernel_half(FormatSink& why) const {
  if (kernel_) return true;
  // The CPU sets the accessed bit of an entry in whichever root it walks through: a shared
  // entry may differ there, and only there.
  constexpr u64 kSetByCpu = Format::kAccessed | Format::kDirty;
  const u64* top = tree_.root_entries();
  // Every checked switch into a process's root comes here: all 256 entries, as one pass that
  // only gathers the differing bits; the count and the first difference only when there is one.
  u64 differing_bits = 0;
  for (usize i = kKernelHalfFirst; i < Format::kEntriesPerTable; ++i) differing_bits |= top[i] ^ kernel_top_[i];
  if ((differing_bits & ~kSetByCpu) == 0) return true;
  usize differ = 0, first = 0;
  for (usize i = kKernelHalfFirst; i < Format::kEntriesPerTable; ++i)
    if (((top[i] ^ kernel_top_[i]) & ~kSetByCpu) != 0 && differ++ == 0) first = i;
  if (differ == 0) return true;
  format_to(why, "{} entry {} is {:#x}, the kernel's is {:#x}", Format::level_name(0), first, top[first],
            kernel_top_[first]);
  if (differ > 1) format_to(why, " ({} of its {} entries differ)", differ, Format::kEntriesPerTable - kKernelHalfFirst);
  if (!Format::is_present(top[first], 0)) {
    format_to(why, ": {}",
              differ == Format::kEntriesPerTable - kKernelHalfFirst
                  ? "a new root whose kernel half was never filled in"
                  : "kernel-half entries left empty, as by a copy that skipped them");
  } else if (Format::output_address(top[first], 0) != Format::output_address(kernel_top_[first], 0)) {
    // Present, but another table: a copy made when this root was. What the kernel maps later
    // under that entry (a kernel stack, a heap page) goes into its own table, not the copy.
    const bool stacks = first == Format::index(VirtAddr(arch::layout::kStackBase), 0);
    format_to(why,
              ": a copy of the kernel's table{}, not the shared one: what the kernel maps there later is "
              "only in the root where it was allocated",
              stacks ? " of the kernel stacks" : "");
  }
  return false;
}

void X86AddressSpace::activate() { hw::load_root(tree_.root()); }

[[PAGODA_STOP(invalidate_page)]] void X86AddressSpace::invalidate_page(VirtAddr va, bool global) {
  if (global || in_kernel_half(va) || is_live()) hw::invalidate_page(va);
  // LAB 8 BEGIN the other CPUs: INVLPG is this CPU's alone
  // The kernel half and global entries are in every root: every online CPU drops them, except
  // a temporary mapping's slot, which only the CPU that mapped it uses (it drops it itself when
  // it lets the slot go). A user page only where the space may be cached (cpus(): the CPUs that
  // loaded its root since their last switch to another).
  const bool temp_slot = va.value() >= arch::layout::kTempMapBase && va.value() < arch::layout::kStackBase;
  if (!temp_slot) remote(va, global || in_kernel_half(va));
  // LAB 8 SKELETON
  // (void)va;
  // LAB 8 END
}

[[PAGODA_STOP(invalidate_all)]] void X86AddressSpace::invalidate_all(bool global) {
  if (global || kernel_ || is_live()) hw::flush_tlb(global);
  // LAB 8 BEGIN the other CPUs: a CR3 reload is this CPU's alone
  remote_all(global || kernel_);
  // LAB 8 SKELETON
  // (void)global;
  // LAB 8 END
}

}  // namespace pagoda::x86
