/// @file user_regions.hpp
/// @brief What a user address space records of itself (its VMAs, the stack's limit, the heap's
/// break) and the two questions asked of that record: what a page fault means, and whether the
/// page tables still agree with it.
///
/// From lab 5 on the record is the single source of truth for the user half and the page tables
/// are a cache of it: the loader records every region before anything is mapped, a page fault
/// asks decide_fault() whether the address lies in a region that allows the access, and
/// check_coverage() proves that no page is mapped that no region covers.
///
///     higher addresses
///       stack_top  +------------------+ <- the stack region's end
///                  | stack (rw-)      |    grows down on demand ...
///                  +------------------+ <- its start now
///                  |   (growth room)  |    a fault here extends the region (Grow)
///       floor      +------------------+ <- end - stack_limit: it never grows below this
///                  |   guard gap      |    a fault here: "stack limit"; mmap never picks it
///       floor-gap  +------------------+
///                  |  ... anonymous   |    mmap'd regions, chosen below the gap
///                  +------------------+
///                  | heap (rw-)       |    [heap_start, brk), absent while empty
///       heap_start +------------------+ <- the page after the image's last segment
///                  | image segments   |    r-x text, r-- rodata, rw- data + bss
///     lower addresses
#pragma once

#include "lib/format.hpp"
#include "lib/types.hpp"
#include "mm/base/perms.hpp"
#include "mm/space/vma.hpp"

namespace pagoda {

class AddressSpace;

/// The record of one user address space: its regions and the stack and heap facts around them.
struct UserRegions {
  UserRegions(Allocator& allocator, u64 page_size) : vmas(allocator, page_size) {}

  VmaSet vmas;
  /// How far below its end a grows-down region may reach (bytes, page aligned).
  u64 stack_limit = 0;
  /// Bytes below that limit that nothing may occupy: a fault there is a stack overflow.
  u64 stack_gap = 0;
  /// The heap: [heap_start, brk) is its region (none while brk == heap_start).
  u64 heap_start = 0;
  u64 brk = 0;
};

/// What to do about a fault at a user address.
enum class FaultAction : u8 {
  Populate,  ///< a region allows the access: give the page a frame (filled as its kind says)
  Grow,      ///< just below a stack, within its limit: extend the stack, then populate
  Deny,      ///< no region, or one that forbids the access: the access is refused
};

/// Why (for Deny) — or Allowed.
enum class FaultCause : u8 {
  Allowed,
  NoVma,          ///< the address lies in no region
  NoAccess,       ///< its region allows nothing (PROT_NONE)
  WriteDenied,    ///< a write to a region without write permission
  ExecuteDenied,  ///< an instruction fetch from a region without execute permission
  StackLimit,     ///< just below the lowest address a stack may reach
};

/// "write to read-only VMA", ...
const char* fault_cause_text(FaultCause cause);

/// The decision about one fault.
struct FaultVerdict {
  FaultAction action = FaultAction::Deny;
  FaultCause cause = FaultCause::NoVma;
  /// The region involved: the one the page belongs to (Populate, and Deny by permissions), the
  /// stack as it is after growing down to the page (Grow) or the stack that ran out (StackLimit).
  Vma vma{};
  bool has_vma = false;
  /// StackLimit: the lowest address the stack may reach.
  u64 floor = 0;

  bool allowed() const { return action != FaultAction::Deny; }
  /// Prints e.g. "write to read-only VMA [0x400000, 0x401000) r-- user image offset 0x0 file
  /// 0x1000", "no VMA", "stack limit: below the lowest stack address 0x7fff...".
  void format(FormatSink& sink) const;
};

/// Decides what a fault at @p va (a user address) trying @p access means in @p regions. Pure:
/// it changes nothing (the caller grows the stack and maps the page).
FaultVerdict decide_fault(const UserRegions& regions, u64 va, Access access);

/// After a fault at @p va that no region covers (decide_fault() said "no VMA"): what the record
/// has around it, from the record alone, so that a kill line says which region and why:
/// "just below [b, t) rw- stack (1 page below its start), which does not grow down (no
/// grows-down flag): a stack must", "in the stack's guard gap ...", "N pages above the end of
/// [a, b) ..., M pages below [c, d) ...", "above every region". Writes nothing for an address
/// the record cannot place (no regions).
void explain_no_vma(FormatSink& sink, const UserRegions& regions, u64 va);

/// After a "stack limit" verdict @p v: what is wrong with the record's limit itself, when
/// anything is: a limit of 0 or smaller than the stack region already is (never set, or lost:
/// the stack can never grow).
void explain_stack_limit(FormatSink& sink, const UserRegions& regions, const FaultVerdict& v);

/// Why a stack's growth @p part ([the faulting page, the start of the region above), the stack's
/// permissions, kind and flags) was refused with AlreadyExists when it should not have been: a
/// static note when no region of @p vmas overlaps it, else nullptr (a real overlap: the refusal
/// was right). The note says who refused: insert() is asked for @p part on a copy of @p vmas
/// (nothing here changes); when the copy takes it, grow_stack() asked the record for another
/// range than @p part (one that overlaps a region), else insert() took a region that only
/// touches a neighbour for an overlapping one.
const char* refused_without_overlap(const VmaSet& vmas, const Vma& part);

/// The permissions the page tables should give a page of @p vma. A page the MMU uses is readable
/// on every ISA Pagoda supports, so a region that allows anything gets readable pages; one that
/// allows nothing (PROT_NONE) gets read false: its pages are held (invalid to the MMU, every
/// access faults, the frames and their contents kept for a later mprotect).
Perms page_perms_of(const Vma& vma);

/// The debug check of the invariant "nothing mapped in [0, user_end) of @p space that no region
/// of @p vmas covers, and every mapped page has its region's permissions (page_perms_of(): held
/// exactly under a region that allows nothing)". Prints the first
/// problem (the page, its mapping and the region or "no VMA") to @p report and returns false.
/// @p mapped_pages, when given, receives the number of mapped pages seen.
bool check_coverage(AddressSpace& space, const VmaSet& vmas, u64 user_end, FormatSink* report,
                    usize* mapped_pages = nullptr);

}  // namespace pagoda
