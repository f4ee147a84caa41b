// The frame table of user frames and their reverse map (see frame_table.hpp).
#include "mm/swap/frame_table.hpp"

#include "core/panic.hpp"

namespace pagoda {

void FrameTable::init(Span<FrameEntry> entries, u64 first_frame, Span<RmapNode> nodes, usize cap) {
  entries_ = entries.data();
  count_ = entries.size();
  first_ = first_frame;
  for (usize i = 0; i < count_; ++i) entries_[i] = FrameEntry{};
  nodes_ = nodes.data();
  node_count_ = nodes.size();
  free_nodes_ = node_count_;
  resident_ = 0;
  cap_ = cap;
  // LAB 7 BEGIN your storage set up: every node free (its space null), the clock at the first entry
  // Every node free, chained in order: node i's next is node i + 1 (links are number + 1).
  for (usize i = 0; i < node_count_; ++i)
    nodes_[i] =
        RmapNode{.space = nullptr, .root = 0, .va = 0, .next = i + 1 < node_count_ ? u32(i + 2) : 0, .frame = 0};
  free_list_ = node_count_ > 0 ? 1 : 0;
  hand_ = 0;
  // LAB 7 SKELETON
  // // Every node free, chained in order: node i's next is node i + 1 (links are number + 1).
  // for (usize i = 0; i < node_count_; ++i)
  //   nodes_[i] =
  //       RmapNode{.space = nullptr, .root = 0, .va = 0, .next = i + 1 < node_count_ ? u32(i + 2) : 0, .frame = 0};
  // free_list_ = node_count_ > 0 ? 1 : 0;
  // hand_ = 0;
  // LAB 7 END
}

FrameEntry& FrameTable::entry(PhysAddr frame) {
  if (!tracks(frame))
    panic("frame table: {:#x} is not a frame it tracks (frames {:#x} .. {:#x})", frame.value(), first_ * kPageSize,
          (first_ + count_) * kPageSize);
  return entries_[index_of(frame)];
}

const FrameEntry& FrameTable::entry(PhysAddr frame) const { return const_cast<FrameTable*>(this)->entry(frame); }

// LAB 7 BEGIN your storage's helpers: the default free list of nodes, and the clock's hand
u32 FrameTable::take_node() {
  const u32 link = free_list_;
  if (link == 0) return 0;
  free_list_ = node(link).next;
  node(link).next = 0;
  --free_nodes_;
  return link;
}

void FrameTable::give_node(u32 link) {
  node(link) = RmapNode{.space = nullptr, .root = 0, .va = 0, .next = free_list_, .frame = 0};
  free_list_ = link;
  ++free_nodes_;
}

usize FrameTable::hand() const { return hand_; }

void FrameTable::set_hand(usize index) { hand_ = count_ == 0 ? 0 : index % count_; }
// LAB 7 SKELETON
// u32 FrameTable::take_node() {
//   const u32 link = free_list_;
//   if (link == 0) return 0;
//   free_list_ = node(link).next;
//   node(link).next = 0;
//   --free_nodes_;
//   return link;
// }
//
// void FrameTable::give_node(u32 link) {
//   node(link) = RmapNode{.space = nullptr, .root = 0, .va = 0, .next = free_list_, .frame = 0};
//   free_list_ = link;
//   ++free_nodes_;
// }
//
// usize FrameTable::hand() const { return hand_; }
//
// void FrameTable::set_hand(usize index) { hand_ = count_ == 0 ? 0 : index % count_; }
// LAB 7 END

Result<void> FrameTable::note_mapped(PhysAddr frame, AddressSpace& space, PhysAddr root, VirtAddr va) {
  FrameEntry& e = entry(frame);
  for (const RmapNode* m = first_mapping(frame); m != nullptr; m = next_mapping(*m))
    if (m->space == &space && m->va == va.value())
      panic("frame table: the mapping of frame {:#x} at {:#x} in root {:#x} is recorded twice", frame.value(),
            va.value(), root.value());
  return add_mapping(e, u32(index_of(frame)), space, root, va);
}

bool FrameTable::note_unmapped(PhysAddr frame, const AddressSpace& space, VirtAddr va) {
  return remove_mapping(entry(frame), space, va);
}

usize FrameTable::forget_mappings(PhysAddr frame) {
  FrameEntry& e = entry(frame);
  // LAB 7 BEGIN every node of the frame's chain given back; how many there were
  if (e.mappings > 0) --resident_;
  usize n = 0;
  for (u32 link = e.rmap; link != 0; ++n) {
    const u32 next = node(link).next;
    give_node(link);
    link = next;
  }
  e.rmap = 0;
  e.mappings = 0;
  return n;
  // LAB 7 SKELETON
  // // Until you write it (part C): one mapping per frame (see add_mapping()).
  // if (e.mappings > 0) --resident_;
  // if (e.rmap != 0) give_node(e.rmap);
  // e.rmap = 0;
  // return exchange(e.mappings, u16(0));
  // LAB 7 END
}

void FrameTable::space_moved(const AddressSpace& from, AddressSpace& to) {
  for (usize i = 0; i < node_count_; ++i)
    if (nodes_[i].space == &from) nodes_[i].space = &to;
}

// LAB 7 BEGIN a frame's mappings, one after the other, as your storage finds them
const RmapNode* FrameTable::first_mapping(PhysAddr frame) const {
  const FrameEntry& e = entry(frame);
  return e.rmap == 0 ? nullptr : &node(e.rmap);
}

const RmapNode* FrameTable::next_mapping(const RmapNode& n) const { return n.next == 0 ? nullptr : &node(n.next); }
// LAB 7 SKELETON
// const RmapNode* FrameTable::first_mapping(PhysAddr frame) const {
//   const FrameEntry& e = entry(frame);
//   return e.rmap == 0 ? nullptr : &node(e.rmap);
// }
//
// const RmapNode* FrameTable::next_mapping(const RmapNode& n) const { return n.next == 0 ? nullptr : &node(n.next); }
// LAB 7 END

void FrameTable::pin(PhysAddr frame) {
  FrameEntry& e = entry(frame);
  if (e.pins == 0xffff) panic("frame table: frame {:#x} pinned 65535 times (a pin never released?)", frame.value());
  ++e.pins;
}

void FrameTable::unpin(PhysAddr frame) {
  FrameEntry& e = entry(frame);
  if (e.pins == 0) panic("frame table: frame {:#x} unpinned more often than it was pinned", frame.value());
  --e.pins;
}

Result<void> FrameTable::add_mapping(FrameEntry& e, u32 index, AddressSpace& space, PhysAddr root, VirtAddr va) {
  // LAB 7 BEGIN record one more mapping of a frame: a node at the head of its chain
  const u32 link = take_node();
  if (link == 0) return Error(Error::NoMemory, "the reverse map has no free node");
  node(link) = RmapNode{.space = &space, .root = root.value(), .va = va.value(), .next = e.rmap, .frame = index};
  e.rmap = link;
  if (e.mappings++ == 0) ++resident_;  // its first mapping makes the frame resident
  return {};
  // LAB 7 SKELETON
  // // Until you write it (part C), one mapping per frame: enough for parts A and B, where no frame
  // // is shared. The second mapping of a frame (fork shares it) stops here.
  // if (e.mappings != 0)
  //   panic("lab 7: write FrameTable::add_mapping() in kernel/mm/swap/frame_table.cpp (labs/07-swap/README.md): "
  //         "frame {:#x} gets a second mapping (at {:#x})", frame_at(index).value(), va.value());
  // const u32 link = take_node();
  // if (link == 0) return Error(Error::NoMemory, "the reverse map has no free node");
  // node(link) = RmapNode{.space = &space, .root = root.value(), .va = va.value(), .next = 0, .frame = index};
  // e.rmap = link;
  // e.mappings = 1;
  // ++resident_;
  // return {};
  // LAB 7 END
}

bool FrameTable::remove_mapping(FrameEntry& e, const AddressSpace& space, VirtAddr va) {
  // LAB 7 BEGIN forget one mapping of a frame: unlink its node, give it back
  for (u32* at = &e.rmap; *at != 0; at = &node(*at).next) {
    const u32 link = *at;
    if (node(link).space != &space || node(link).va != va.value()) continue;
    *at = node(link).next;
    give_node(link);
    if (--e.mappings == 0) --resident_;  // its last mapping: no longer resident
    return true;
  }
  return false;
  // LAB 7 SKELETON
  // // Until you write it (part C): one mapping per frame (see add_mapping()).
  // if (e.rmap == 0 || node(e.rmap).space != &space || node(e.rmap).va != va.value()) return false;
  // give_node(e.rmap);
  // e.rmap = 0;
  // e.mappings = 0;
  // --resident_;
  // return true;
  // LAB 7 END
}

}  // namespace pagoda
