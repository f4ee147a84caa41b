/// @file debug_roots.hpp
/// @brief The page-table roots the debugging tools should know, published at a fixed symbol.
///
/// When a fault happens, the most useful sentence is often "this address is mapped in root A,
/// not in the active root B". The tools can only say it if they know the roots, so the kernel
/// publishes every root it builds in one table at the well-known symbol `pagoda_debug_roots`:
/// the boot root while it exists (mm/vm.cpp), and every AddressSpace for as long as it lives,
/// the kernel's and, from lab 3, each process's (mm/space/address_space.hpp does it itself). GDB's
/// `fault-why` and `pt-top` (tools/gdb/pagoda_gdb) and the grader read it from guest memory;
/// no tool needs to change when a lab adds a new kind of root.
///
/// The layout is fixed, little-endian and versioned (tools/gdb/pagoda_pt/roots.py reads it and
/// checks magic, version and slot size, so a mismatch is reported, never misread):
///
///     offset  size  field
///     0       8     magic       "PGROOTS" and a NUL
///     8       4     version     kDebugRootsVersion
///     12      4     slot_size   sizeof(DebugRootSlot) = 32
///     16      4     capacity    number of slots
///     20      4     dropped     publications that found no free slot (the tools say so)
///     24      8     generation  incremented by every change
///     32      32*n  slots:  +0 root (u64, physical; 0 = free slot)  +8 kind (u32, RootKind)
///                           +12 id (u32, e.g. a process id)  +16 name (16 chars, NUL-terminated)
#pragma once

#include "lib/string_view.hpp"
#include "lib/types.hpp"
#include "mm/base/addr.hpp"

namespace pagoda::debug {

/// What a published root is; the tools print it next to the name.
enum class RootKind : u32 { Kernel = 1, Boot = 2, Process = 3, Other = 4 };

inline constexpr u32 kDebugRootsVersion = 1;
/// Room for every process root (kMaxProcesses, kernel/proc/process.hpp checks) beside the
/// kernel's and the boot roots, and a few roots being made or dropped (fork, exec).
inline constexpr usize kDebugRootSlots = 96;
inline constexpr usize kDebugRootNameSize = 16;

/// One published root (see the layout above).
struct DebugRootSlot {
  u64 root;
  u32 kind;
  u32 id;
  char name[kDebugRootNameSize];
};
static_assert(sizeof(DebugRootSlot) == 32);

/// The table at `pagoda_debug_roots` (see the layout above).
struct DebugRootTable {
  char magic[8];
  u32 version;
  u32 slot_size;
  u32 capacity;
  u32 dropped;
  u64 generation;
  DebugRootSlot slots[kDebugRootSlots];
};
static_assert(sizeof(DebugRootTable) == 32 + 32 * kDebugRootSlots);

}  // namespace pagoda::debug

/// The published roots (kernel/mm/space/debug_roots.cpp). extern "C": its symbol is the contract.
extern "C" pagoda::debug::DebugRootTable pagoda_debug_roots;

namespace pagoda::debug {

/// Publishes one root for as long as it lives (move-only; withdrawing is the destructor's job,
/// so a root's publication cannot outlive the root by a forgotten call).
class [[nodiscard]] PublishedRoot {
 public:
  constexpr PublishedRoot() = default;
  /// Publishes @p root as @p name (truncated to 15 characters). When every slot is taken the
  /// root stays unpublished and the table's `dropped` count says so.
  PublishedRoot(PhysAddr root, RootKind kind, StringView name, u32 id = 0);
  PublishedRoot(PublishedRoot&& other) : slot_(other.slot_) { other.slot_ = kNone; }
  PublishedRoot& operator=(PublishedRoot&& other);
  PublishedRoot(const PublishedRoot&) = delete;
  PublishedRoot& operator=(const PublishedRoot&) = delete;
  ~PublishedRoot() { withdraw(); }

  /// Gives the published root a new name and id (a process's space, once it has a pid).
  void rename(StringView name, u32 id);
  /// The same, and a new kind.
  void rename(StringView name, u32 id, RootKind kind);
  /// Removes the root from the table now (before the root's frames are reused).
  void withdraw();
  /// Leaves the root published for the rest of the boot (the kernel's own root).
  void keep() && { slot_ = kNone; }
  bool published() const { return slot_ != kNone; }

 private:
  static constexpr usize kNone = ~usize{0};
  usize slot_ = kNone;
};

}  // namespace pagoda::debug
