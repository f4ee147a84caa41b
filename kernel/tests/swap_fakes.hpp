// Fakes for lab 7's host tests: user frames with contents (fake physical memory), a swap disk
// of page-sized slots over it (the host's stand-in for dev/swap_disk.hpp: "DMA" is a copy
// between the two), and a log of what the disk and the frames saw, in order.
#pragma once

#include <array>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lib/result.hpp"
#include "mm/base/addr.hpp"
#include "mm/base/page.hpp"
#include "mm/swap/swapper.hpp"
#include "page_table_fakes.hpp"

namespace pagoda::test {

using PageBytes = std::array<u64, kPageSize / sizeof(u64)>;

/// User frames and a swap disk, both simulated: frames hold words, each slot a page of words.
struct SwapMachine {
  /// Allocated user frames and their contents.
  std::map<u64, PageBytes> frames;
  /// Mappings of each allocated frame (put() drops one and frees the frame at the last).
  std::map<u64, int> refs;
  /// The disk: its slots' contents (a slot never written holds zeros).
  std::vector<PageBytes> disk;
  /// "write S 0xF", "read S 0xF", "free 0xF", "alloc 0xF", in order.
  std::vector<std::string> log;
  /// Called at each write and read, before the copy (to look at the tables at that moment).
  std::function<void(u64 slot, PhysAddr frame)> on_write;
  std::function<void(u64 slot, PhysAddr frame)> on_read;
  /// Allocations left before the pool answers NoMemory (-1: never).
  int allocations_left = -1;
  u64 next_frame = 0x20'0000;
  std::vector<u64> free_frames;

  PhysAddr allocate() {
    u64 f;
    if (!free_frames.empty()) {
      f = free_frames.back();
      free_frames.pop_back();
    } else {
      f = next_frame;
      next_frame += kPageSize;
    }
    frames[f].fill(0xdead'beef'dead'beefull);  // contents undefined until written
    refs[f] = 1;
    log.push_back("alloc " + hex(f));
    return PhysAddr(f);
  }
  void fill(PhysAddr frame, u64 seed) {
    PageBytes& p = frames.at(frame.value());
    for (usize i = 0; i < p.size(); ++i) p[i] = seed * 0x1'0000 + i;
  }
  bool holds(PhysAddr frame, u64 seed) const {
    const auto it = frames.find(frame.value());
    if (it == frames.end()) return false;
    for (usize i = 0; i < it->second.size(); ++i)
      if (it->second[i] != seed * 0x1'0000 + i) return false;
    return true;
  }
  bool slot_holds(u64 slot, u64 seed) const {
    for (usize i = 0; i < disk.at(slot).size(); ++i)
      if (disk[slot][i] != seed * 0x1'0000 + i) return false;
    return true;
  }
  usize writes() const { return count("write "); }
  usize reads() const { return count("read "); }
  usize count(const std::string& prefix) const {
    usize n = 0;
    for (const std::string& e : log) n += e.rfind(prefix, 0) == 0;
    return n;
  }
};

/// The machine the function tables below reach (one test at a time).
inline SwapMachine*& machine() {
  static SwapMachine* m = nullptr;
  return m;
}

inline Result<void> fake_read_slot(u64 slot, PhysAddr frame) {
  SwapMachine& m = *machine();
  if (slot >= m.disk.size() || !m.frames.count(frame.value())) return Error(Error::InvalidArgument, "bad read");
  if (m.on_read) m.on_read(slot, frame);
  m.log.push_back("read " + std::to_string(slot) + " " + hex(frame.value()));
  m.frames[frame.value()] = m.disk[slot];
  return {};
}

inline Result<void> fake_write_slot(u64 slot, PhysAddr frame) {
  SwapMachine& m = *machine();
  if (slot >= m.disk.size() || !m.frames.count(frame.value())) return Error(Error::InvalidArgument, "bad write");
  if (m.on_write) m.on_write(slot, frame);
  m.log.push_back("write " + std::to_string(slot) + " " + hex(frame.value()));
  m.disk[slot] = m.frames[frame.value()];
  return {};
}

inline Result<PhysAddr> fake_allocate() {
  SwapMachine& m = *machine();
  if (m.allocations_left == 0) return Error::NoMemory;
  if (m.allocations_left > 0) --m.allocations_left;
  return m.allocate();
}

inline void fake_put(PhysAddr frame) {
  SwapMachine& m = *machine();
  auto it = m.refs.find(frame.value());
  ASSERT_NE(it, m.refs.end()) << "put of a frame that is not allocated: " << hex(frame.value());
  if (--it->second > 0) return;
  m.refs.erase(it);
  m.frames.erase(frame.value());
  m.free_frames.push_back(frame.value());
  m.log.push_back("free " + hex(frame.value()));
}

inline SwapDevice fake_disk() { return SwapDevice{.read = &fake_read_slot, .write = &fake_write_slot}; }
inline UserFramePool fake_pool() { return UserFramePool{.allocate = &fake_allocate, .put = &fake_put}; }

}  // namespace pagoda::test
