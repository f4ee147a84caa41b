/// @file critical_ranges.hpp
/// @brief What the CPU needs mapped the instant after a switch of roots, and why a switch was
/// refused.
///
/// Loading a root that lacks the running stack, the code after the switch or the exception
/// vectors kills the machine at once, and usually without a word: the fault that follows
/// cannot be delivered either (a triple fault on x86_64, a loop on the vector on AArch64). So
/// AddressSpace::activate() asks the arch what the CPU needs (arch::critical_ranges(), in
/// mm/space/mmu.hpp) and walks each range in the new root *before* loading it; a root that does not
/// map one of them is refused with a panic while the old root still works:
///
///     PANIC: new root 0x25c000 does not map the running stack 0xffffff0000004fd0 (PML4 entry 510 not present)
///
/// Each range says what it is, where, and the access it needs (a stack must be writable, code
/// executable); its focus is the address a report names first (the stack pointer, the
/// instruction). The boot option `vm_check=off` turns the check off, so that a lab can show
/// the raw symptom on purpose.
#pragma once

#include "lib/format.hpp"
#include "lib/types.hpp"
#include "mm/base/addr.hpp"
#include "mm/base/perms.hpp"
#include "mm/pt/walk.hpp"

namespace pagoda {

/// One range of virtual memory the CPU needs right after a switch of roots.
struct CriticalRange {
  const char* what = "";  ///< for messages: "the running stack", "the IDT", ...
  VirtAddr start;
  u64 size = 0;
  Access access;          ///< what it must allow beyond reading (write, execute)
  VirtAddr focus;         ///< the address in it to check and name first (e.g. the stack pointer)
  const char* note = "";  ///< what a refusal adds about this range (why it is there), or ""
};

/// The note of the running stack when it is the boot stub's low entry stack: a root without it
/// is the kernel's own root loaded before the kernel left that stack (lab 2's order).
inline constexpr const char* kBootEntryStackNote =
    "it is the boot stub's low entry stack: the kernel still runs on it, and the kernel's own root maps nothing "
    "low (move to boot_stack first, then load the root)";

/// The arch's list of critical ranges, in the order they are checked (the most telling first).
class CriticalRanges {
 public:
  static constexpr usize kMax = 16;

  /// Adds [start, start + size) (nothing when size is 0); @p focus defaults to @p start. A
  /// list that is full counts the range as dropped (a bug in the arch's list: the check panics).
  void add(const char* what, VirtAddr start, u64 size, Access access, VirtAddr focus = VirtAddr());
  /// Gives the range added last the refusal note @p note (nothing when none was added).
  void note_last(const char* note);

  Span<const CriticalRange> ranges() const { return {ranges_, count_}; }
  usize dropped() const { return dropped_; }

 private:
  CriticalRange ranges_[kMax];
  usize count_ = 0;
  usize dropped_ = 0;
};

/// What changes from one switch to the next, read by the arch at every switch without a walk or
/// a list (arch::switch_stacks(), mm/space/mmu.hpp): the stack the CPU runs on, and the kernel stack
/// a trap from user mode lands on once the new root is live (set before the root is loaded:
/// TSS.RSP0 on x86_64, the EL1 stack on AArch64). AddressSpace::activate() takes a switch as
/// proven without the list when the space passed a whole check since the last change to any
/// table and both stacks are ones such a check walked; otherwise it walks everything.
struct SwitchStacks {
  u64 sp = 0;                       ///< the stack pointer now
  u64 stack_bottom = 0;             ///< the kernel stack it is on, [bottom, top); 0, 0 when not a
  u64 stack_top = 0;                ///< stack the kernel knows (then nothing is taken as proven)
  u64 user_trap_top = 0;            ///< where the next trap from user mode pushes (0: never set)
  const char* user_trap_what = "";  ///< what the ISA calls it: "TSS.RSP0", "the EL1 stack"
};

/// Why a root may not be loaded (AddressSpace::check_switch()); ok() when nothing is wrong.
struct SwitchRefusal {
  enum class Kind : u8 {
    None,        ///< the root maps everything the CPU needs
    NotMapped,   ///< a page of a critical range is not mapped (see walk)
    Denied,      ///< it is mapped without the access it needs (see walk.perms)
    KernelHalf,  ///< the root does not share the kernel half (see detail)
    TrapStack,   ///< the kernel stack set for traps from user mode is not this root's process's (see detail)
  };
  static constexpr usize kDetailSize = 400;

  Kind kind = Kind::None;
  PhysAddr root;                  ///< the root that was checked
  CriticalRange range;            ///< NotMapped, Denied: the range
  VirtAddr va;                    ///< NotMapped, Denied: the first address of it that fails
  Walk walk;                      ///< NotMapped, Denied: the walk of va in the new root
  bool before_mapped = false;     ///< the pages of the range before va are mapped as needed
  char detail[kDetailSize] = {};  ///< KernelHalf, TrapStack: the reason; otherwise a kernel-half note

  bool ok() const { return kind == Kind::None; }
  /// The one-line reason, e.g. "new root 0x25c000 does not map the running stack
  /// 0xffffff0000004fd0 (PML4 entry 510 not present)".
  void format(FormatSink& sink) const;
};

}  // namespace pagoda
