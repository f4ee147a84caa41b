/// @file consistency_batch.hpp
/// @brief Keeping the TLB consistent with the tables: a write barrier, invalidations, then the
/// frees of table frames and the release of user frames, in that order, once per batch of changes.
///
/// Changing a page table is three steps that must happen in order, and the third must not
/// come before the second:
///
///     1. write the entries                      (Cursor::map/unmap/protect/split)
///     2. barrier: the table walker sees them;   (x86: compiler barrier; AArch64: DSB ISHST)
///        invalidate what the TLB may cache      (x86: INVLPG; AArch64: TLBI VAE1IS, DSB, ISB)
///     3. free the table frames the change unlinked, release the user frames it unmapped
///
/// A table frame freed before step 2 can be reused (as a new table, or as anything else) while
/// a TLB or a walk cache still holds a walk through it: the CPU then translates through
/// whatever the new owner writes there. A user frame released before step 2 is the same hazard
/// one level down: a stale translation still reaches the frame its next owner fills.
/// ConsistencyBatch collects steps 2 and 3 and does them on flush() or when it goes out of scope
/// (user frames: only when it goes out of scope or its list is full, always after a flush), so
/// that no caller can forget or reorder them.
#pragma once

#include "core/cpu.hpp"
#include "core/shootdown.hpp"
#include "lib/result.hpp"
#include "lib/types.hpp"
#include "mm/base/addr.hpp"
#include "mm/base/layout.hpp"
#include "mm/base/page.hpp"
#include "mm/pt/table_memory.hpp"

namespace pagoda {

/// The TLB maintenance of one address space, implemented by the arch (arch::ArchAddressSpace)
/// and by recording fakes in host tests. The space decides whether a change can be cached at
/// all (on x86_64 without PCIDs a space that is not live has nothing in the TLB, except its
/// global and kernel-half translations, which are shared).
///
/// With two CPUs a change must also leave the other CPUs' TLBs: the space keeps the set of CPUs
/// whose TLB may hold its translations (cpus(), kept by AddressSpace::activate()), the arch's
/// invalidations tell remote() what the others must drop (an ISA whose invalidations reach every
/// CPU, AArch64's IS forms, needs none), and finish() sends it, once per batch, before the batch
/// gives any frame away.
class TlbSync {
 public:
  /// The CPUs whose TLB may hold this space's translations (bit c: CPU c).
  u32 cpus() const { return __atomic_load_n(&cpus_, __ATOMIC_ACQUIRE); }
  void add_cpu(u32 cpu) { __atomic_fetch_or(&cpus_, u32{1} << cpu, __ATOMIC_ACQ_REL); }
  void remove_cpu(u32 cpu) { __atomic_fetch_and(&cpus_, ~(u32{1} << cpu), __ATOMIC_ACQ_REL); }

  /// Lazy TLB: the CPUs of cpus() that idle with this space's root still loaded (lazy()), and
  /// those of them a shootdown left alone since (missed()): no IPI goes to an idle CPU for a
  /// user page; it drops every translation of the space when it switches back in instead
  /// (AddressSpace::activate). Kept under the kernel lock, like every change and switch.
  u32 lazy() const { return __atomic_load_n(&lazy_, __ATOMIC_ACQUIRE); }
  void set_lazy(u32 cpu) { __atomic_fetch_or(&lazy_, u32{1} << cpu, __ATOMIC_ACQ_REL); }
  /// Ends @p cpu's lazy stay; true when a shootdown left it alone meanwhile (it must catch up).
  bool end_lazy(u32 cpu) {
    __atomic_fetch_and(&lazy_, ~(u32{1} << cpu), __ATOMIC_ACQ_REL);
    return (__atomic_fetch_and(&missed_, ~(u32{1} << cpu), __ATOMIC_ACQ_REL) >> cpu & 1) != 0;
  }
  u32 missed() const { return __atomic_load_n(&missed_, __ATOMIC_ACQUIRE); }

  /// The batch gives back a table frame once finish() returns (ConsistencyBatch's held tables):
  /// every CPU with the root loaded must be told, the lazy ones too. A CPU walks the tables of
  /// the root it holds whenever it likes (speculatively, even in the idle loop), and its walk
  /// caches may keep a walk through the table until it drops them.
  void freeing_table() { tables_ = true; }

  /// The other CPUs must drop @p va too: every online CPU when @p everywhere (the kernel half
  /// and global entries, in every root), otherwise those of cpus(). Sent by finish().
  /// The list: remote_pages_ counts the pages asked for (each once), remote_page_ holds the first
  /// kShootdownPages of them; a count past kShootdownPages means every translation (finish()).
  void remote(VirtAddr va, bool everywhere) {
    everywhere_ = everywhere_ || everywhere;
    // LAB 8 BEGIN the batch's list for the other CPUs: each page once, at most kShootdownPages kept, none lost
    for (usize i = 0; i < remote_pages_ && i < kShootdownPages; ++i)
      if (remote_page_[i] == va.value()) return;
    if (remote_pages_ < kShootdownPages) remote_page_[remote_pages_] = va.value();
    ++remote_pages_;  // (past kShootdownPages: every translation)
    // LAB 8 SKELETON
    // (void)va;  // (nothing listed: finish() sends nothing)
    // LAB 8 END
  }
  /// The other CPUs must drop every translation (of this space; @p everywhere as remote()).
  void remote_all(bool everywhere) {
    everywhere_ = everywhere_ || everywhere;
    // LAB 8 BEGIN every translation: the list's count past its bound
    remote_pages_ = kShootdownPages + 1;
    // LAB 8 SKELETON
    // (void)this;  // (nothing asked: finish() sends nothing)
    // LAB 8 END
  }
  /// Sends what remote() gathered as one shootdown, and returns once every target acknowledged.
  /// Which CPUs are told is the lazy-TLB rule: the kernel half and global entries go to every
  /// online CPU, idle or not (the idle loop runs on them); a user page to the CPUs of cpus() that
  /// run the space now, and the lazy ones are left alone but marked in missed(), so that their
  /// switch back into the kept root drops everything (end_lazy()); but when the batch frees a
  /// table (freeing_table()), they are told as well. The list is emptied either way.
  void finish() {
    if (remote_pages_ == 0) return;
    const usize count = remote_pages_ > kShootdownPages ? kShootdownAll : remote_pages_;
    // LAB 8 BEGIN who is told: the kernel half every CPU; a user page the mask's busy CPUs (lazy ones marked), all when a table goes
    const u32 lazy = everywhere_ || tables_ ? 0 : cpus() & this->lazy();
    const u32 targets = everywhere_ ? ~u32{0} : cpus() & ~lazy;
    __atomic_fetch_or(&missed_, lazy, __ATOMIC_ACQ_REL);
    // LAB 8 SKELETON
    // const u32 targets = 0;  // (no one told: the other CPUs keep what they cached)
    // LAB 8 END
    remote_pages_ = 0;
    everywhere_ = tables_ = false;
    shootdown(targets, remote_page_, count);
    for (uptr& page : remote_page_) page = 0;  // (emptied: a later batch's list holds only its own pages)
  }

  /// Makes this CPU's earlier table writes visible to its table walker before anything after
  /// it (the format's write_barrier()).
  virtual void write_barrier() = 0;
  /// Drops what the TLB may hold for @p va in this space: the translation, and any walk-cache
  /// entry through the tables above it. @p global: the old entry was global.
  virtual void invalidate_page(VirtAddr va, bool global) = 0;
  /// Drops every translation of this space (and global ones too when @p global).
  virtual void invalidate_all(bool global) = 0;

 protected:
  ~TlbSync() = default;

 private:
  u32 cpus_ = 0;
  u32 lazy_ = 0;
  u32 missed_ = 0;
  bool everywhere_ = false;
  bool tables_ = false;
  usize remote_pages_ = 0;
  uptr remote_page_[kShootdownPages] = {};
};

/// Collects the invalidations and the table frees of a change to one address space, and issues
/// them in order (barrier, invalidations, frees) on flush() and when it goes out of scope.
/// Past kMaxPages pages one full invalidation is cheaper than many single ones: the range is
/// flushed whole, once; past kMaxTables tables it flushes early (always safe: it only does
/// sooner what it would do later).
///
/// A batch is made for every change, however small (a fork makes several, a fault one), so making
/// one costs next to nothing: its lists are not filled when it is made, only written as they
/// grow, and their limits are compile-time facts.
class [[nodiscard]] ConsistencyBatch {
 public:
  /// Past how many pages one full invalidation replaces the single ones. One number for both
  /// ISAs (x86_64: INVLPG against a CR3 reload; AArch64: TLBI VAE1IS against TLBI ASIDE1IS);
  /// an ISA that wants another would set it in its arch_impl/ and this would read it there.
  static constexpr usize kMaxPages = 32;
  static constexpr usize kMaxTables = 32;
  static constexpr usize kMaxFrames = 64;

  /// How a user frame is given back once no TLB can reach it (the kernel: vm::put_user_frame,
  /// which drops one reference; host tests: a recorder). Set once, before any release_frame().
  using FrameRelease = void (*)(PhysAddr frame);
  static void set_frame_release(FrameRelease release) { s_release = release; }

  /// @p user_half_only: the batch of a user space, which changes only its own lower half (its
  /// changes there start no new generation of the kernel half: see changes()).
  ConsistencyBatch(TlbSync& tlb, TableMemory& memory, bool user_half_only = false)
      : tlb_(tlb), memory_(memory, tlb), user_half_only_(user_half_only) {}
  ConsistencyBatch(const ConsistencyBatch&) = delete;
  ConsistencyBatch& operator=(const ConsistencyBatch&) = delete;
  ~ConsistencyBatch() {
    flush();
    // A flush that leaves its lists behind does it all again at the next one: the same tables
    // freed twice. Said here, at the first batch that ends, not at that double free.
    if (pages_ != 0 || tables_ != 0 || all_ || wrote_)
      MUST(Result<void>(Error(Error::InvalidArgument,
                              "ConsistencyBatch: flush() did not empty the batch (its pages, tables or flags are still "
                              "set after it): a second flush would invalidate and free the same tables again (reset "
                              "the lists at the end of flush())")));
    release_after_acks();
  }

  /// @p frame, which a change through this batch unmapped, is given back (set_frame_release())
  /// only after the batch's invalidations: when the batch goes out of scope, or earlier when
  /// kMaxFrames are held (a flush first). Until then no one else can be handed it while a stale
  /// translation still reaches it.
  void release_frame(PhysAddr frame) {
    if (frames_ == kMaxFrames) {
      flush();
      release_after_acks();
    }
    frame_[frames_++] = frame;
  }

  /// How many changes batches have been told of since boot that could take away something the
  /// kernel needs (entries written, translations invalidated, tables unlinked): a generation of
  /// the page tables. What the pre-switch check proved holds while it stays the same
  /// (AddressSpace::check_switch, activate). Every change through a batch of the kernel's space
  /// counts; through a user space's batch (user_half_only), only an invalidation in the kernel
  /// half or of a global entry: its own lower half holds nothing a switch needs (a page mapped
  /// where nothing was, the only change that invalidates nothing, takes nothing away). It counts
  /// when the change is made, not at the flush.
  static u64 changes() { return s_changes; }

  /// Table entries were written: the next flush issues the write barrier (also what makes a
  /// new mapping usable on AArch64), even with nothing to invalidate.
  void wrote() {
    if (!user_half_only_) ++s_changes;
    wrote_ = true;
  }

  /// The translation of @p va changed or went away (@p global: the old entry was global).
  void invalidate(VirtAddr va, bool global) {
    count_change(va, global);
    any_global_ = any_global_ || global;
    if (all_) return;
    for (usize i = 0; i < pages_; ++i)
      if (page_[i].va == va) {
        page_[i].global = page_[i].global || global;
        return;
      }
    if (pages_ >= kMaxPages) {
      all_ = true;
      return;
    }
    page_[pages_++] = Page{va, global};
  }

  /// Every page of [va, va + size) (a block that was split or remapped).
  void invalidate_range(VirtAddr va, u64 size, bool global) {
    count_change(va.offset(size - 1), global);
    if (size / kPageSize > kMaxPages - pages_) {
      any_global_ = any_global_ || global;
      all_ = true;
      return;
    }
    for (u64 off = 0; off < size; off += kPageSize) invalidate(va.offset(off), global);
  }

  // LAB 1 BEGIN free_table() and flush(): the walk caches, and the order of barrier, invalidations and frees
  /// @p table was unlinked from its tree; it is freed after the invalidations. @p covered is
  /// an address it translated: its invalidation also drops walk-cache entries through it.
  void free_table(PhysAddr table, VirtAddr covered) {
    if (tables_ == kMaxTables) flush();
    invalidate(covered, false);
    table_[tables_++] = table;
  }

  /// Barrier, invalidations, frees; now (the destructor calls this).
  void flush() {
    if (!wrote_ && pages_ == 0 && !all_ && tables_ == 0) return;
    tlb_.write_barrier();
    if (all_) tlb_.invalidate_all(any_global_);
    else
      for (usize i = 0; i < pages_; ++i) tlb_.invalidate_page(page_[i].va, page_[i].global);
    for (usize i = 0; i < tables_; ++i) memory_.free_table(table_[i]);
    wrote_ = all_ = any_global_ = false;
    pages_ = tables_ = 0;
  }
  // LAB 1 SKELETON
  // /// @p table was unlinked from its tree: remember it (table_[], tables_), to be freed by flush().
  // void free_table(PhysAddr table, VirtAddr covered) {
  //   (void)table;
  //   (void)covered;
  //   MUST(Result<void>(Error(Error::NotImplemented, "lab 1: write ConsistencyBatch::free_table() in "
  //                                                  "kernel/mm/pt/consistency_batch.hpp (labs/01-identity-map/README.md)")));
  // }
  //
  // /// The barrier, the invalidations (page_[], all_), the frees (table_[]); then empty again.
  // void flush() {
  //   if (!wrote_ && pages_ == 0 && !all_ && tables_ == 0) return;
  //   (void)memory_;
  //   MUST(Result<void>(Error(Error::NotImplemented, "lab 1: write ConsistencyBatch::flush() in "
  //                                                  "kernel/mm/pt/consistency_batch.hpp (labs/01-identity-map/README.md)")));
  // }
  // LAB 1 END

  /// Break-before-make: replaces the live entry @p slot, which maps [va, va + size), by
  /// @p entry with an invalid entry in between that no TLB still holds (write invalid,
  /// barrier, invalidate, write new). What an ISA whose format has kBreakBeforeMake requires
  /// when a live entry changes its output address or its size.
  void break_before_make(u64& slot, u64 entry, VirtAddr va, u64 size, bool global) {
    slot = 0;
    wrote();
    invalidate_range(va, size, global);
    flush();
    tlb_.finish();
    slot = entry;
    wrote();
  }

  TlbSync& tlb() const { return tlb_; }

 private:
  struct Page {
    VirtAddr va;
    bool global;
  };

  /// @p kN places for a T that nothing fills when the batch is made: the first `count` of them
  /// (pages_, tables_, frames_) are the list, each written before it is read. (Plain arrays of
  /// addresses would be zeroed at every batch, 1,280 bytes, more than most batches ever hold.)
  /// Their bytes make a T where one is written (C++20: a T that needs no constructor to begin its
  /// life, such as an address or a Page, begins it in a byte array when it is assigned there).
  template <class T, usize kN> class Slots {
    static_assert(__is_trivially_copyable(T) && __is_trivially_destructible(T),
                  "a T that begins its life when written");

   public:
    T& operator[](usize i) { return __builtin_launder(reinterpret_cast<T*>(bytes_))[i]; }

   private:
    alignas(T) u8 bytes_[sizeof(T) * kN];
  };

  /// A change at @p va: a new generation, unless a user space's batch changed its own half.
  void count_change(VirtAddr va, bool global) {
    if (!user_half_only_ || global || va.value() >= layout::kKernelHalfBase) ++s_changes;
  }

  /// After a flush(): the other CPUs' part of its invalidations (TlbSync::finish(), a shootdown
  /// that returns once every target acknowledged), then the held user frames given back.
  void release_after_acks() {
    // LAB 8 BEGIN the held frames go only once every CPU that may cache the space dropped them
    tlb_.finish();
    release_frames();
    // LAB 8 SKELETON
    // release_frames();
    // LAB 8 END
  }

  /// Gives back the held table frames and user frames; only right after a flush(), which
  /// covered every change made before they were handed over.
  void release_frames() {
    memory_.give_back();
    for (usize i = 0; i < frames_; ++i) {
      if (s_release == nullptr)
        MUST(Result<void>(Error(Error::InvalidArgument, "ConsistencyBatch: no frame release set")));
      s_release(frame_[i]);
    }
    frames_ = 0;
  }

  /// Where flush() gives an unlinked table frame back (lab 1's memory_.free_table()). With one
  /// CPU online, at once: the flush's invalidations were the only TLB's. With two, held until
  /// release_frames(), after TlbSync::finish() (release_after_acks()): until every other CPU that
  /// holds the root acknowledged, it may still walk through the table, and a frame given away
  /// meanwhile would be walked as a table by the CPU whatever its next owner writes there. Past
  /// kMaxTables held (flushes within one batch), the shootdown is sent first and they go then.
  class HeldTables {
   public:
    HeldTables(TableMemory& memory, TlbSync& tlb) : memory_(memory), tlb_(tlb) {}
    void free_table(PhysAddr table) {
      if (cpus_online() < 2) {
        memory_.free_table(table);
        return;
      }
      tlb_.freeing_table();
      if (held_ == kMaxTables) {
        tlb_.finish();
        give_back();
      }
      table_[held_++] = table;
    }
    /// Frees what free_table() held: only once the batch's shootdown returned.
    void give_back() {
      for (usize i = 0; i < held_; ++i) memory_.free_table(table_[i]);
      held_ = 0;
    }

   private:
    TableMemory& memory_;
    TlbSync& tlb_;
    Slots<PhysAddr, kMaxTables> table_;
    usize held_ = 0;
  };

  static inline u64 s_changes = 0;
  static inline FrameRelease s_release = nullptr;

  TlbSync& tlb_;
  HeldTables memory_;
  Slots<Page, kMaxPages> page_;
  // Read and written only inside lab 1's region: a skeleton tree (lab 0, lab 1) leaves it unused.
  [[maybe_unused]] Slots<PhysAddr, kMaxTables> table_;
  Slots<PhysAddr, kMaxFrames> frame_;
  usize pages_ = 0;
  usize tables_ = 0;
  usize frames_ = 0;
  bool wrote_ = false;
  bool all_ = false;
  bool any_global_ = false;
  bool user_half_only_ = false;
};

}  // namespace pagoda
