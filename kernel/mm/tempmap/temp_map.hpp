/// @file temp_map.hpp
/// @brief Temporary mappings: any physical frame, reachable for a moment, from any root.
///
/// The kernel's window (mm/base/layout.hpp) shows only the first kWindowSize bytes of RAM. A frame
/// above it has no kernel address until something maps it; TempMap maps one frame for the
/// life of a guard object, in a slot of the kTempMapBase area:
///
///     {
///       TempMap map(frame);          // the frame appears at map.address() on this CPU
///       memset(map.bytes(), 0, kPageSize);
///     }                              // unmapped and invalidated here, whatever path leaves
///
/// Where the slots live decides whether this works while a process runs. The slots are entries
/// of ONE page-level table under the kernel half, reached through the kernel's address space,
/// which every root shares (x86_64: the same PML4 entries in every root; AArch64: TTBR1, one
/// root for all). A slot written while process A's root is live is therefore the same entry the
/// CPU walks in A's root, in B's root and in the kernel's:
///
///     CR3 = A's root                      A's root      B's root      kernel root
///       [256..511] -------------------->  same tables   same tables   same tables
///                                                \           |           /
///                                      temp-map page table: CPU 0's slots 0..7, CPU 1's 8..15, ...
///
/// Written into a root's own tables instead (say, the kernel root's copy while A is live, or a
/// table only B's root points to), the access through the slot faults or reads another frame,
/// and only when a process is running (labs/04-temp-mappings).
///
/// Each CPU has an area of its own (lab 8): its own slots and its own stack of them, taken with
/// no lock, since no other CPU ever touches them. Two CPUs sharing one area would each write
/// entries the other may be reading through (the kernel lock hides it only where both take it).
///
/// The slots of a CPU are a stack: a new guard takes the lowest free slot above the ones in
/// use, and guards must be released in reverse order (nesting, an interrupt that maps a frame
/// while the code it interrupted holds one). Misuse is caught and named, never silently
/// allowed: running out of slots, releasing a guard while a later one is still live, and using
/// a guard after it was released (reset() or moved from) each panic with the cause. A raw
/// pointer kept past its guard faults on its next use: the slot is unmapped (fault reports say
/// which slot, and whether it is live: describe_temp_map_address()).
///
/// No temporary mapping may be held across a context switch (the stack is per CPU, not per
/// thread): the scheduler checks TempMapArea::depth() == 0 when it switches.
#pragma once

#include "lib/format.hpp"
#include "lib/result.hpp"
#include "lib/types.hpp"
#include "mm/base/addr.hpp"
#include "mm/base/layout.hpp"
#include "mm/base/page.hpp"

namespace pagoda {

class AddressSpace;
class TlbSync;

/// The slots of one CPU in the kTempMapBase area, and their page-level entries.
class TempMapArea {
 public:
  /// Slots per CPU: the deepest nesting of temporary mappings.
  static constexpr usize kSlots = 8;
  /// CPUs the area has room for (slots of CPU c start at slot c * kSlots).
  static constexpr usize kMaxCpus = 8;

  constexpr TempMapArea() = default;
  TempMapArea(const TempMapArea&) = delete;
  TempMapArea& operator=(const TempMapArea&) = delete;

  /// Reserves the entries of CPU @p cpu's slots in @p kernel, the kernel's address space (its
  /// half is the one every root shares), creating the tables above them once. Must be called
  /// before the first TempMap on this area; InvalidArgument for a user space or a bad CPU,
  /// NoMemory when a table cannot be made.
  [[nodiscard]] Result<void> init(AddressSpace& kernel, usize cpu);
  bool ready() const { return tlb_ != nullptr; }

  /// The virtual address of slot @p slot of this CPU.
  VirtAddr slot_address(usize slot) const {
    return VirtAddr(layout::kTempMapBase + (cpu_ * kSlots + slot) * kPageSize);
  }
  /// Slots in use now (0 when no guard is live).
  usize depth() const { return depth_; }
  /// The frame slot @p slot maps now (only meaningful for slot < depth()).
  PhysAddr frame(usize slot) const { return frames_[slot]; }
  /// Maps made since init() (for the benchmark and the stress test).
  u64 maps() const { return maps_; }

  /// The boot CPU's area (the one the grader and GDB read); nullptr before vm::init() made it.
  static TempMapArea* current() { return s_current; }
  /// The area of the CPU running this code, for TempMap's default constructor: its own (lab 8).
  static TempMapArea* here();
  /// Makes @p area the boot CPU's (vm::init(); host tests).
  static void set_current(TempMapArea* area) { s_current = s_areas[0] = area; }
  /// Makes @p area CPU @p cpu's (vm::init(), for each CPU the kernel may bring up).
  static void set_area_of(usize cpu, TempMapArea* area) { s_areas[cpu] = area; }

 private:
  friend class TempMap;
  friend struct TempMapAreaFacts;  // exports the field offsets the grader and GDB read
  friend bool describe_temp_map_address(FormatSink& sink, VirtAddr va);

  /// Maps @p frame in the next free slot and returns that slot; panics when none is free.
  usize push(PhysAddr frame);
  /// Unmaps slot @p slot, which must be the last one pushed; panics otherwise.
  void pop(usize slot);
  /// True when push() gave @p slot for @p frame as it should: the top of the stack, counted
  /// taken, its entry mapping @p frame (a few compares, after every push).
  bool pushed_right(usize slot, PhysAddr frame) const;
  /// After push() gave @p slot for @p frame: panics, naming the slip, unless @p slot is the top
  /// of the stack, counted taken, and its entry maps @p frame (temp_map_report.cpp).
  void check_pushed(usize slot, PhysAddr frame) const;
  /// After pop() of @p slot: panics, naming the slip, unless the slot was given back and its
  /// entry cleared.
  void check_popped(usize slot) const;

  static inline TempMapArea* s_current = nullptr;
  static inline TempMapArea* s_areas[kMaxCpus] = {};

  TlbSync* tlb_ = nullptr;       ///< the kernel space's TLB maintenance
  u64* entries_[kSlots] = {};    ///< each slot's page-level entry
  PhysAddr frames_[kSlots];      ///< what each slot in use maps
  u32 generation_[kSlots] = {};  ///< bumped at every push: tells a guard its slot was reused
  usize cpu_ = 0;
  usize depth_ = 0;
  u64 maps_ = 0;
};

/// One physical frame mapped at a kernel address for the life of this object (see the file
/// comment). Move-only: exactly one guard owns a slot, and its destructor releases it.
class [[nodiscard]] TempMap {
 public:
  /// Maps the page at @p frame (page aligned) in this CPU's area.
  explicit TempMap(PhysAddr frame);
  /// Maps the page at @p frame in @p area.
  TempMap(TempMapArea& area, PhysAddr frame);
  TempMap(TempMap&& other);
  TempMap(const TempMap&) = delete;
  TempMap& operator=(const TempMap&) = delete;
  TempMap& operator=(TempMap&&) = delete;
  ~TempMap() { reset(); }

  /// The first byte of the frame; panics when this guard was released.
  u8* bytes() const { return reinterpret_cast<u8*>(address().value()); }
  /// The frame's kernel address now; panics when this guard was released.
  VirtAddr address() const;
  /// The frame it maps; panics when this guard was released.
  PhysAddr frame() const;
  /// The slot it holds (for reports).
  usize slot() const { return slot_; }
  /// True until reset() or a move.
  bool live() const { return area_ != nullptr; }

  /// Unmaps now instead of at the end of scope (the guard is released from then on).
  void reset();

 private:
  void check_live(const char* what) const;

  TempMapArea* area_ = nullptr;
  usize slot_ = 0;
  u32 generation_ = 0;
};

/// When @p va lies in the temp-map area: prints which CPU's slot it is and whether that slot is
/// live (the frame it maps) or free, e.g. "temp-map slot 2 of CPU 0: free (a pointer kept
/// after its TempMap was released?)", and returns true; false for any other address.
bool describe_temp_map_address(FormatSink& sink, VirtAddr va);

}  // namespace pagoda
