/// @file address_space.hpp
/// @brief AddressSpace: the kernel's and each process's mappings, over the arch's roots.
///
/// An AddressSpace owns the arch's part (arch::ArchAddressSpace: the root or roots the ISA
/// needs, and how the kernel half is shared) and offers map, unmap, protect and query on it,
/// written on Cursor<F> (mm/pt/cursor.hpp) and made consistent by a ConsistencyBatch. It is the
/// only owner of its roots: no other handle on them exists, so no second handle can forget
/// which tables are pinned.
///
///     AddressSpace& kernel = vm::kernel_space();                  // the one kernel space
///     AddressSpace user = TRY(AddressSpace::create_user(kernel));  // shares the kernel half
///     TRY(user.map_range(VirtAddr(0x400000), frame, 4 * kPageSize, kUserData));
///     user.activate();                                             // CR3 / TTBR0
///     ...                                                          // ~AddressSpace frees the
///                                                                  // user half's tables
///
/// A user space changes only its lower half (InvalidArgument otherwise); the kernel half is
/// changed through the kernel space, and every space sees it.
///
/// Every space publishes its root for the debugging tools while it lives (mm/space/debug_roots.hpp):
/// the kernel's as 'kernel', a user space as 'user' until its process names it
/// (name_for_debugging()), so that GDB's fault-why can say "mapped in root A, not in the active
/// root B" about any of them.
///
/// activate() refuses a root that would kill the CPU the instant after the switch: it walks
/// what the CPU needs then (arch::critical_ranges(): the running stack, the code, the trap
/// entry, the descriptor tables, the interrupt stacks) in the new root, and checks that a user
/// space still shares the kernel half; on failure it panics, naming the cause, while the old
/// root still works (mm/space/critical_ranges.hpp). The boot option `vm_check=off` turns this off.
/// The check lives in switch_check.cpp, the rest in address_space.cpp.
#pragma once

#include "arch_impl/address_space.hpp"
#include "mm/space/critical_ranges.hpp"
#include "mm/pt/cursor.hpp"
#include "mm/space/debug_roots.hpp"

namespace pagoda {

struct UserRegions;  // mm/space/user_regions.hpp

class AddressSpace {
 public:
  using Format = arch::PageTableFormat;
  using Tree = PageTable<Format>;
  using Cursor = pagoda::Cursor<Format>;
  using ReadCursor = pagoda::ReadCursor<Format>;

  /// The kernel's space: a fresh root (vm::init makes the one kernel space; host tests make
  /// their own over fake memory).
  [[nodiscard]] static Result<AddressSpace> create_kernel(TableMemory& memory);
  /// A process's space, sharing @p kernel's half (the arch copies or points to it).
  [[nodiscard]] static Result<AddressSpace> create_user(const AddressSpace& kernel);

  /// Moves the space: its roots, its publication, its record. Whoever keeps pointers to spaces
  /// (lab 7's reverse map) is told where it went (set_move_observer()): exec builds the new
  /// space on its stack, loads it, then moves it into the process.
  AddressSpace(AddressSpace&& other);
  AddressSpace(const AddressSpace&) = delete;
  AddressSpace& operator=(const AddressSpace&) = delete;
  AddressSpace& operator=(AddressSpace&&) = delete;
  /// Frees every table this space owns (a user space: those of its user half; never the
  /// kernel half's). It must not be live.
  ~AddressSpace();

  /// Prepares the kernel half so that user spaces made later share all of it (kernel space;
  /// on x86_64 a table for every upper-half top-level entry, the LAB 2 part).
  [[nodiscard]] Result<void> prepare_kernel_half() { return arch_.prepare_kernel_half(); }

  bool is_kernel() const { return arch_.is_kernel(); }
  /// True when the CPU translates through this space now.
  bool is_live() const { return arch_.is_live(); }
  /// Two CPUs: if this CPU only kept this space's root while idle (lazy TLB, activate()), it
  /// loads the kernel's now; otherwise nothing. For a teardown that must not find its root live.
  void leave_if_lazy() { leave_lazy(reinterpret_cast<uptr>(this)); }
  /// Makes this the live space (CR3 on x86_64; TTBR0 and the ASID on AArch64), after checking
  /// (unless switch_checks() is off) that it maps what the CPU needs right after the switch and
  /// shares the kernel half: otherwise it panics with the reason, on the old root.
  void activate();
  /// The root that identifies this space (x86_64: its CR3 value), for reports.
  PhysAddr root() const { return arch_.root(); }

  /// @name The pre-switch check
  /// @{
  /// Why this space may not be loaded now, given what the CPU needs (@p needed, normally
  /// arch::critical_ranges()): the first page of a range that it does not map, or maps without
  /// the access the range needs, or a kernel half it does not share; ok() when there is none.
  /// Walks this space's tables (a ReadCursor) and changes nothing. When this space shares the kernel half, a range of it
  /// that an earlier check walked, with no change to any table since (no ConsistencyBatch told
  /// of one), is taken as proven instead of walked again (docs/debugging.md, "Cost").
  [[nodiscard]] SwitchRefusal check_switch(Span<const CriticalRange> needed);
  /// Turns the check of activate() on or off for every space (the boot option vm_check=off).
  static void set_switch_checks(bool on) { s_switch_checks = on; }
  static bool switch_checks() { return s_switch_checks; }

  /// Who judges the kernel stack of traps from user mode at a switch into a user space: given
  /// the space's owner (the id it was named with, name_for_debugging(): a process id), the
  /// stack's top as the arch reads it (@p top, 0 when never set) and the arch's name for it
  /// (@p what: "TSS.RSP0"), it writes why that is not the owner's own kernel stack to @p why and
  /// returns true, or returns false when it is. kernel/proc sets it (it knows the processes);
  /// without one, only a top of 0 is refused.
  using TrapStackJudge = bool (*)(u32 owner, u64 top, const char* what, FormatSink& why);
  static void set_trap_stack_judge(TrapStackJudge judge) { s_trap_judge = judge; }
  /// @}

  /// Told of every move of a space, after it: @p from (owning nothing now) became @p to.
  using MoveObserver = void (*)(const AddressSpace& from, AddressSpace& to);
  static void set_move_observer(MoveObserver observer) { s_move_observer = observer; }

  /// Names this space for the debugging tools, e.g. a process's name and pid (at most 15
  /// characters are kept).
  void name_for_debugging(StringView name, u32 id) {
    published_.rename(name, id);
    owner_ = id;
  }
  /// The same, and what kind of root it is (a second kernel-like space, say, that must not be
  /// taken for the kernel's).
  void name_for_debugging(StringView name, u32 id, debug::RootKind kind) {
    published_.rename(name, id, kind);
    owner_ = id;
  }

  /// A batch for changes to this space: barrier, invalidations and frees when it goes away.
  [[nodiscard]] ConsistencyBatch batch() { return ConsistencyBatch(arch_, arch_.memory(), !arch_.is_kernel()); }
  /// A cursor at @p va on the tree that translates it, whose changes go through @p batch. The
  /// caller keeps to what may_change() allows (the range operations below check it).
  [[nodiscard]] Cursor cursor(ConsistencyBatch& batch, VirtAddr va) { return Cursor(arch_.tree_for(va), batch, va); }
  /// A cursor at @p va on the tree that translates it, for queries only: it cannot change an
  /// entry, so it needs no batch.
  [[nodiscard]] ReadCursor read_cursor(VirtAddr va) const { return ReadCursor(arch_.tree_for(va), va); }
  /// True when this space may change [va, va + size) (a user space: only its own half).
  bool may_change(VirtAddr va, u64 size) const { return arch_.may_change(va, size); }

  /// The large page one level above a page (2 MiB on x86_64 and on AArch64 with 4 KiB pages).
  static constexpr u64 kBlockSize = Format::entry_span(Format::kLevels - 2);

  /// @name Changes (each one batch; see Cursor for the errors)
  /// @{
  /// Maps the page at @p va to @p pa.
  [[nodiscard]] Result<void> map(VirtAddr va, PhysAddr pa, Perms perms);
  /// Maps one large page (a block) of @p size bytes (kBlockSize, or another size the format can
  /// hold as a block) at @p va to @p pa, both aligned to it; InvalidArgument for a size no level
  /// holds.
  [[nodiscard]] Result<void> map_block(VirtAddr va, PhysAddr pa, u64 size, Perms perms);
  /// Maps [va, va + size) to [pa, pa + size); on failure nothing of it stays mapped.
  [[nodiscard]] Result<void> map_range(VirtAddr va, PhysAddr pa, u64 size, Perms perms);
  /// Unmaps the page at @p va and returns the physical page it mapped (the caller's to free,
  /// now: the batch has flushed when this returns).
  [[nodiscard]] Result<PhysAddr> unmap(VirtAddr va);
  /// Unmaps every page of [va, va + size); NotFound at the first page not mapped. A large page
  /// the range covers only in part is split first (split_partial_blocks()).
  [[nodiscard]] Result<void> unmap_range(VirtAddr va, u64 size);
  /// Changes the permissions of every page of [va, va + size), keeping accessed, dirty and
  /// global; nothing changes unless all of it is mapped (a large page the range covers only in
  /// part is split first, which changes no translation).
  [[nodiscard]] Result<void> protect(VirtAddr va, u64 size, Perms perms);
  /// Splits the block (large page) that maps @p va into the next level's entries.
  [[nodiscard]] Result<void> split(VirtAddr va);
  /// @}

  /// The walk of @p va in this space.
  Walk query(VirtAddr va) const { return arch_.tree_for(va).query(va); }

  /// The record of this space's user half (its VMAs; lab 5), or nullptr when it has none (the
  /// kernel's space, a space made by a test). Its owner (the process) sets it and keeps it
  /// alive as long as the space; page faults consult it (vm::handle_fault()).
  UserRegions* regions() const { return regions_; }
  void set_regions(UserRegions* regions) { regions_ = regions; }

  /// The arch's part (roots, TLB maintenance).
  arch::ArchAddressSpace& arch() { return arch_; }
  const arch::ArchAddressSpace& arch() const { return arch_; }

 private:
  AddressSpace(arch::ArchAddressSpace arch, debug::RootKind kind, StringView name)
      : arch_(move(arch)), published_(arch_.root(), kind, name) {}

  /// Splits the large pages that [va, va + size) covers only in part (at its two ends), down to
  /// pages where needed, so that the cursor can change the range page by page (LAB 2).
  [[nodiscard]] Result<void> split_partial_blocks(ConsistencyBatch& batch, VirtAddr va, u64 size);

  /// Prints every critical range of @p needed with what this space does for it, then panics
  /// with @p refusal.
  [[noreturn]] void refuse(const SwitchRefusal& refusal, Span<const CriticalRange> needed);

  /// True when a switch into this space with the stacks @p now needs no walk: this space passed
  /// a whole check since the last change to any table (ConsistencyBatch::changes()), with the
  /// same kernel stack for traps from user mode, and the stack the CPU runs on is one a whole
  /// check walked in that generation (and its top-level entry is still the kernel's).
  bool proven_for(const SwitchStacks& now) const;
  /// The whole check of activate() (the kernel stack of traps from user mode, every critical
  /// range walked, the kernel half shared): panics on the first failure; on success remembers
  /// what it proved for proven_for().
  void check_and_prove(const SwitchStacks& now);
  /// Forgets every proof of the pre-switch check (a new kernel space: its root may be where a
  /// destroyed one's was).
  static void forget_switch_proofs();

  /// The space each CPU loaded last (index: arch::cpu_id()), whose root it may still hold.
  static AddressSpace* s_loaded_on[];
  /// The kernel's space, as the last lazy switch to the idle loop named it (activate()): what a
  /// CPU loads when the root it kept while idle is about to go (leave_lazy()).
  static inline AddressSpace* s_lazy_kernel = nullptr;
  /// Two CPUs: makes this CPU let go of @p space (an AddressSpace*) if it idles in its root,
  /// lazily (activate()): the kernel's root loaded, the lazy stay ended. The mailbox's
  /// MailboxOp::LeaveSpace calls it on the CPU asked; ~AddressSpace asks each such CPU.
  static void leave_lazy(uptr space);

  static inline bool s_switch_checks = true;
  static inline TrapStackJudge s_trap_judge = nullptr;
  static inline MoveObserver s_move_observer = nullptr;

  arch::ArchAddressSpace arch_;
  /// Declared after arch_, so that the root is withdrawn before its tables are freed.
  debug::PublishedRoot published_;
  UserRegions* regions_ = nullptr;
  /// The id name_for_debugging() gave (a process id; 0: none).
  u32 owner_ = 0;
  /// What the last whole check of a switch into this space proved: at which generation of the
  /// tables, with which kernel stack for traps from user mode (proven_for()).
  bool checked_ = false;
  u64 checked_generation_ = 0;
  u64 checked_trap_top_ = 0;
};

}  // namespace pagoda
