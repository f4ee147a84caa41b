/// @file switch_check.cpp
/// @brief The pre-switch check: AddressSpace::activate() walks, in the root it is about to load,
/// what the CPU needs the instant after the switch (arch::critical_ranges(), the kernel stack of
/// traps from user mode, the kernel half shared), and refuses the switch with a panic that names
/// the cause while the old root still works (mm/space/critical_ranges.hpp); and its proof cache,
/// which spares a switch the walks an earlier check of the same tables already did
/// (docs/debugging.md, "Cost"). address_space.cpp is the space's changes: map, unmap, protect.

#include "mm/space/address_space.hpp"

#include "core/arch.hpp"
#include "core/cpu.hpp"
#include "core/panic.hpp"
#include "mm/base/layout.hpp"
#include "mm/space/mmu.hpp"

namespace pagoda {

namespace {

/// What the pre-switch check has proven of one kernel half: ranges of it whose every page its
/// tables map with (at least) the access recorded, as of one generation of the page tables
/// (ConsistencyBatch::changes()). A space that shares that kernel half (shares_kernel_half():
/// on x86_64 its 256 upper top-level entries equal the kernel root's; on AArch64 TTBR1 still
/// holds the kernel root) translates those ranges through the same tables, so the check walks
/// them again only after a change to some table. Most of what the CPU needs at a switch is in
/// the kernel half and the same at every switch (the text, the trap entry, the descriptor
/// tables, the interrupt stacks, each process's kernel stack): in steady state a switch walks
/// none of it. Any change through any ConsistencyBatch, in any tree, starts a new generation;
/// so does a new kernel space (its root may be a freed one's).
class KernelHalfProofs {
 public:
  static constexpr usize kMax = 32;

  /// Makes these the proofs of the kernel half under @p root at @p generation: those of
  /// another root or generation are forgotten.
  void use(PhysAddr root, u64 generation) {
    if (root == root_ && generation == generation_) return;
    root_ = root;
    generation_ = generation;
    count_ = next_ = hint_ = 0;
  }

  /// Forgets every proof.
  void forget() { count_ = next_ = hint_ = 0; }

  /// True when a proof covers the whole of @p range with the access it needs. The search
  /// starts after the proof found last: a switch asks for its ranges in the order of the last.
  bool covers(const CriticalRange& range) {
    const u64 first = range.start.value(), last = last_of(range);
    const u8 needs = bits(range.access);
    const auto fits = [&](usize i) {
      const Proof& p = proofs_[i];
      return p.first <= first && last <= p.last && (needs & ~p.allows) == 0;
    };
    for (usize i = hint_; i < count_; ++i)
      if (fits(i)) return hint_ = i + 1, true;
    for (usize i = 0; i < hint_; ++i)
      if (fits(i)) return hint_ = i + 1, true;
    return false;
  }

  /// Records that every page of @p range (walked) allows its access; the oldest proof makes
  /// room when the list is full.
  void add(const CriticalRange& range) {
    const Proof p{range.start.value(), last_of(range), bits(range.access)};
    if (count_ < kMax) {
      proofs_[count_++] = p;
      return;
    }
    proofs_[next_] = p;
    next_ = (next_ + 1) % kMax;
  }

  /// True when the check may take @p range from these proofs and record it in them: it lies
  /// wholly in the kernel half, its focus in it (a hand-made range may name one outside).
  static bool in_kernel_half(const CriticalRange& range) {
    const u64 start = range.start.value();
    return range.size > 0 && start >= layout::kKernelHalfBase && range.focus.value() >= start &&
           range.focus.value() <= last_of(range);
  }

 private:
  struct Proof {
    u64 first;  ///< the first address of the range
    u64 last;   ///< its last (so that a range up to the top of the address space fits)
    u8 allows;  ///< bits() of the access every page of it allows
  };

  static u8 bits(const Access& a) { return u8(a.write) | u8(a.execute) << 1 | u8(a.user) << 2; }

  static u64 last_of(const CriticalRange& range) {
    const u64 start = range.start.value();
    return range.size - 1 > ~u64{0} - start ? ~u64{0} : start + (range.size - 1);
  }

  PhysAddr root_;
  u64 generation_ = 0;
  Proof proofs_[kMax] = {};
  usize count_ = 0;
  usize next_ = 0;  ///< the proof the next one replaces once the list is full
  usize hint_ = 0;  ///< where covers() starts looking
};

constinit KernelHalfProofs g_proofs;

/// The kernel stacks a whole check of a switch walked (rw- in every page) in one generation of
/// the tables, under one kernel root: a switch made later on one of them (or with one as the
/// kernel stack of traps from user mode) needs no walk of it while nothing changed. Direct
/// mapped by the stack's bottom: kernel stacks are 32 KiB apart, so 16 consecutive ones never
/// share an entry.
class StackProofs {
 public:
  static constexpr usize kEntries = 16;

  bool proves(PhysAddr root, u64 generation, u64 bottom, u64 top) const {
    if (root != root_ || generation != generation_ || top <= bottom) return false;
    const Entry& e = entries_[index(bottom)];
    return e.bottom == bottom && e.top == top;
  }

  void add(PhysAddr root, u64 generation, u64 bottom, u64 top) {
    if (top <= bottom || bottom < layout::kKernelHalfBase) return;
    if (root != root_ || generation != generation_) {
      for (Entry& e : entries_) e = Entry{};
      root_ = root;
      generation_ = generation;
    }
    entries_[index(bottom)] = Entry{bottom, top};
  }

  void forget() { root_ = PhysAddr(); }

 private:
  struct Entry {
    u64 bottom = 0;
    u64 top = 0;
  };
  static usize index(u64 bottom) { return usize(bottom >> 15) % kEntries; }

  PhysAddr root_;
  u64 generation_ = 0;
  Entry entries_[kEntries] = {};
};

constinit StackProofs g_stack_proofs;

}  // namespace

void AddressSpace::forget_switch_proofs() {
  g_proofs.forget();
  g_stack_proofs.forget();
}

// ---- The pre-switch check ------------------------------------------------------------------

namespace {

/// True when @p perms (of a mapped page) allow every access @p range needs.
bool allows(const Perms& perms, const CriticalRange& range) {
  return perms.read && (!range.access.write || perms.write) && (!range.access.execute || perms.execute) &&
         (!range.access.user || perms.user);
}

}  // namespace

SwitchRefusal AddressSpace::check_switch(Span<const CriticalRange> needed) {
  SwitchRefusal out;
  out.root = root();
  // The kernel half first: a space that shares it may take what was proven of it before
  // (KernelHalfProofs); one that does not is walked everywhere, and told so below.
  char half[SwitchRefusal::kDetailSize];
  BufferSink why(half, sizeof half);
  const bool shares = arch_.shares_kernel_half(why);
  if (shares) g_proofs.use(arch_.kernel_root(), ConsistencyBatch::changes());
  const auto refuse_at = [&](const CriticalRange& range, VirtAddr va, bool before_mapped) {
    out.walk = query(va);  // the whole walk, for the report
    if (out.walk.root != PhysAddr())
      out.root = out.walk.root;  // the root va is translated through (AArch64: TTBR0's or TTBR1's)
    out.kind = out.walk.mapped() ? SwitchRefusal::Kind::Denied : SwitchRefusal::Kind::NotMapped;
    out.range = range;
    out.va = va;
    out.before_mapped = before_mapped;
  };
  // A cursor re-reads only the tables below the first level whose index changed: a range costs
  // one table lookup per leaf, not a whole walk. It only reads here (a ReadCursor: no batch).
  for (const CriticalRange& range : needed) {
    const bool provable = shares && KernelHalfProofs::in_kernel_half(range);
    if (provable && g_proofs.covers(range)) continue;  // walked since the last change to any table
    // The focus first (the stack pointer, the instruction): the address a report should name.
    ReadCursor c = read_cursor(range.focus);
    if (!c.mapped() || !allows(c.perms(), range)) {
      refuse_at(range, range.focus, false);
      break;
    }
    // Then every page, a leaf at a time (a block is one step).
    const u64 start = range.start.value();
    const u64 end = start + range.size < start ? ~u64{0} : start + range.size;
    for (u64 va = start; va < end;) {
      c.find(VirtAddr(va));
      if (!c.mapped() || !allows(c.perms(), range)) {
        refuse_at(range, VirtAddr(va), va > start);
        break;
      }
      const u64 next = c.range_end().value();
      if (next <= va) break;  // the top of the address space
      va = next;
    }
    if (!out.ok()) break;
    if (provable) g_proofs.add(range);
  }
  if (out.ok()) {
    if (!shares) {
      out.kind = SwitchRefusal::Kind::KernelHalf;
      (void)format_buffer(out.detail, sizeof out.detail, "{}", why.view());
    }
  } else if (out.walk.depth == 1 && !shares) {
    // Stopped at the top level, in a root that lost (some of) the kernel half: say so too.
    (void)format_buffer(out.detail, sizeof out.detail, "it does not share the kernel half: {}", why.view());
  }
  return out;
}

void AddressSpace::refuse(const SwitchRefusal& refusal, Span<const CriticalRange> needed) {
  println("vm: refusing to load root {:#x}: what the CPU needs right after the switch, walked in it:",
          refusal.root.value());
  for (const CriticalRange& range : needed) {
    const SwitchRefusal one = check_switch(Span<const CriticalRange>(&range, 1));
    print("  {:<40} {:#018x}-{:#018x} {}: ", range.what, range.start.value(), range.start.value() + range.size - 1,
          range.access.execute ? "r-x"
          : range.access.write ? "rw-"
                               : "r--");
    if (one.kind == SwitchRefusal::Kind::NotMapped || one.kind == SwitchRefusal::Kind::Denied) {
      print("{} at {:#x}: ", one.kind == SwitchRefusal::Kind::NotMapped ? "NOT MAPPED" : "DENIED", one.va.value());
      explain_fault(console_sink(), one.walk, range.access);
      println("");
    } else {
      println("ok");
    }
  }
  if (refusal.kind == SwitchRefusal::Kind::TrapStack)
    println("  and the kernel stack for traps from user mode: {}", StringView(refusal.detail));
  else if (refusal.kind != SwitchRefusal::Kind::KernelHalf) refusal.walk.format(console_sink());
  println("  (the boot option vm_check=off skips this check)");
  panic("{}", refusal);
}

bool AddressSpace::proven_for(const SwitchStacks& now) const {
  if (!checked_ || checked_generation_ != ConsistencyBatch::changes()) return false;
  if (!arch_.is_kernel() && now.user_trap_top != checked_trap_top_) return false;
  if (!g_stack_proofs.proves(arch_.kernel_root(), checked_generation_, now.stack_bottom, now.stack_top)) return false;
  // The top-level entry over the running stack is what a root loses first when a kernel half is
  // copied instead of shared; it is cheap to compare at every switch (the others were compared
  // by the whole check of this generation).
  return arch_.shares_kernel_half_at(VirtAddr(now.stack_bottom));
}

void AddressSpace::check_and_prove(const SwitchStacks& now) {
  const u64 generation = ConsistencyBatch::changes();
  CriticalRanges needed;
  arch::critical_ranges(needed);
  if (needed.dropped() > 0)
    panic("arch::critical_ranges() gave more than {} ranges: {} were dropped", CriticalRanges::kMax, needed.dropped());
  if (!arch_.is_kernel()) {
    // The next trap from user mode runs on the kernel stack set for it: the process of this
    // root's own. Judged first: a wrong one is often still mapped (another process's stack).
    SwitchRefusal refusal;
    refusal.root = root();
    BufferSink why(refusal.detail, sizeof refusal.detail);
    // Only a space some process owns is judged: one made for a self-test never enters user mode.
    if (s_trap_judge != nullptr && owner_ != 0 && s_trap_judge(owner_, now.user_trap_top, now.user_trap_what, why))
      refusal.kind = SwitchRefusal::Kind::TrapStack;
    if (!refusal.ok()) refuse(refusal, needed.ranges());
  }
  const SwitchRefusal refusal = check_switch(needed.ranges());
  if (!refusal.ok()) refuse(refusal, needed.ranges());
  // Passed: every range walked (or proven) in this generation, the kernel half shared.
  checked_ = true;
  checked_generation_ = generation;
  checked_trap_top_ = now.user_trap_top;
  if (now.stack_top > now.stack_bottom && now.sp >= now.stack_bottom && now.sp <= now.stack_top)
    g_stack_proofs.add(arch_.kernel_root(), generation, now.stack_bottom, now.stack_top);
  // The kernel stack of traps from user mode was walked as a range of its own (the arch's list
  // names it by its top, the focus being the top's last byte): proven too.
  if (!arch_.is_kernel() && now.user_trap_top != 0)
    for (const CriticalRange& r : needed.ranges())
      if (r.focus.value() == now.user_trap_top - 1 && r.start.value() + r.size == now.user_trap_top)
        g_stack_proofs.add(arch_.kernel_root(), generation, r.start.value(), now.user_trap_top);
}

void AddressSpace::activate() {
  if (s_switch_checks) {
    const SwitchStacks now = arch::switch_stacks();
    if (!proven_for(now)) check_and_prove(now);
  }
  // LAB 8 BEGIN this CPU joins the space's CPUs before its root is loaded; it leaves the old space's only when the load dropped that one's translations; idle keeps the last user root (lazy TLB), and the switch back into it catches up
  const u32 me = arch::cpu_id();
  AddressSpace* const before = s_loaded_on[me];
  if (arch_.is_kernel() && before != nullptr && !before->arch_.is_kernel() && cpus_online() > 1) {
    // To the idle loop: the user root stays loaded (the kernel half is in it), and this CPU
    // stays in that space's mask, lazy: shootdowns leave it alone and mark what it missed.
    before->arch_.set_lazy(me);
    s_lazy_kernel = this;
    return;
  }
  if (before == this && (arch_.lazy() >> me & 1) != 0) {
    // Back into the root it kept: no load, but what the shootdowns skipped is dropped now.
    if (arch_.end_lazy(me)) arch::invalidate_all_local();
    return;
  }
  // Joined first: a shootdown that an other CPU starts in between must already reach this one.
  arch_.add_cpu(me);
  arch_.activate();
  if (before != nullptr && before != this) {
    (void)before->arch_.end_lazy(me);  // (what it missed went with the load, on an ISA that drops it)
    if (arch::ArchAddressSpace::kSwitchDropsTranslations) before->arch_.remove_cpu(me);
  }
  s_loaded_on[me] = this;
  // LAB 8 SKELETON
  // arch_.activate();
  // LAB 8 END
}

}  // namespace pagoda
