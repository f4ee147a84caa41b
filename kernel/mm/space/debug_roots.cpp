#include "mm/space/debug_roots.hpp"

/// The table the tools read (see debug_roots.hpp). extern "C": its symbol is the contract.
extern "C" constinit pagoda::debug::DebugRootTable pagoda_debug_roots = {{'P', 'G', 'R', 'O', 'O', 'T', 'S', '\0'},
                                                                         pagoda::debug::kDebugRootsVersion,
                                                                         sizeof(pagoda::debug::DebugRootSlot),
                                                                         pagoda::debug::kDebugRootSlots,
                                                                         0,
                                                                         0,
                                                                         {}};

namespace pagoda::debug {
namespace {

void set_name(DebugRootSlot& s, StringView name) {
  const usize n = name.size() < kDebugRootNameSize - 1 ? name.size() : kDebugRootNameSize - 1;
  for (usize c = 0; c < kDebugRootNameSize; ++c) s.name[c] = c < n ? name[c] : '\0';
}

}  // namespace

PublishedRoot::PublishedRoot(PhysAddr root, RootKind kind, StringView name, u32 id) {
  DebugRootTable& table = pagoda_debug_roots;
  for (usize i = 0; i < kDebugRootSlots; ++i) {
    DebugRootSlot& s = table.slots[i];
    if (s.root != 0) continue;
    set_name(s, name);
    s.kind = u32(kind);
    s.id = id;
    // The root last: a non-zero root is what marks the slot as used.
    *static_cast<volatile u64*>(&s.root) = root.value();
    ++table.generation;
    slot_ = i;
    return;
  }
  ++table.dropped;
}

PublishedRoot& PublishedRoot::operator=(PublishedRoot&& other) {
  if (this != &other) {
    withdraw();
    slot_ = other.slot_;
    other.slot_ = kNone;
  }
  return *this;
}

void PublishedRoot::rename(StringView name, u32 id) {
  if (slot_ == kNone) return;
  DebugRootSlot& s = pagoda_debug_roots.slots[slot_];
  set_name(s, name);
  s.id = id;
  ++pagoda_debug_roots.generation;
}

void PublishedRoot::rename(StringView name, u32 id, RootKind kind) {
  if (slot_ == kNone) return;
  pagoda_debug_roots.slots[slot_].kind = u32(kind);
  rename(name, id);
}

void PublishedRoot::withdraw() {
  if (slot_ == kNone) return;
  *static_cast<volatile u64*>(&pagoda_debug_roots.slots[slot_].root) = 0;
  ++pagoda_debug_roots.generation;
  slot_ = kNone;
}

}  // namespace pagoda::debug
