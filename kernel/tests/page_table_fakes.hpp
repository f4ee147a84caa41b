// Fakes for the page-table layer's host tests: table memory from a map (each frame its own heap
// block, so ASan catches any use of a freed table), a recording TLB, and one event log that both
// write to, so that tests can check the ORDER of barriers, invalidations and frees.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mm/pt/consistency_batch.hpp"
#include "mm/pt/page_table.hpp"

namespace pagoda::test {

inline std::string hex(u64 v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%#llx", static_cast<unsigned long long>(v));
  return buffer;
}

/// "barrier", "invalidate 0x...", "invalidate all", "free 0x..." in the order they happened.
using EventLog = std::vector<std::string>;

/// Physical memory for tables: frames handed out from a counter, optionally failing after a
/// number of allocations; a frame must be empty when it is freed (the cursor unlinks only empty
/// tables; a teardown clears them first).
template <usize kEntries> class FakeTableMemory final : public TableMemory {
 public:
  explicit FakeTableMemory(EventLog* log = nullptr) : log_(log) {}

  Result<PhysAddr> allocate_table() override {
    if (fail_after_ >= 0 && allocations_ >= fail_after_) return Error::NoMemory;
    ++allocations_;
    const PhysAddr pa(next_);
    next_ += kEntries * sizeof(u64);
    frames_[pa.value()] = std::make_unique<u64[]>(kEntries);
    std::memset(frames_[pa.value()].get(), 0, kEntries * sizeof(u64));
    return pa;
  }
  void free_table(PhysAddr table) override {
    if (log_) log_->push_back("free " + hex(table.value()));
    auto it = frames_.find(table.value());
    ASSERT_NE(it, frames_.end()) << "freeing a table that is not allocated: " << hex(table.value());
    for (usize i = 0; i < kEntries; ++i) EXPECT_EQ(it->second[i], 0u) << "freeing a non-empty table";
    frames_.erase(it);
  }
  u64* table_entries(PhysAddr table) override {
    ++lookups;
    auto it = frames_.find(table.value());
    return it == frames_.end() ? nullptr : it->second.get();
  }
  usize live_tables() const { return frames_.size(); }
  bool is_live(PhysAddr table) const { return frames_.count(table.value()) != 0; }
  void fail_after(int allocations) {
    fail_after_ = allocations;
    allocations_ = 0;
  }
  usize lookups = 0;  ///< table_entries() calls: how often a table was looked up

 private:
  EventLog* log_;
  std::map<u64, std::unique_ptr<u64[]>> frames_;
  u64 next_ = 0x10'0000'0000;  // far away from the pages the tests map
  int allocations_ = 0;
  int fail_after_ = -1;
};

/// A TLB that records what it is asked to do.
class RecordingTlb final : public TlbSync {
 public:
  explicit RecordingTlb(EventLog* log = nullptr) : log_(log) {}
  void write_barrier() override {
    ++barriers;
    record("barrier");
  }
  void invalidate_page(VirtAddr va, bool global) override {
    pages.push_back(va.value());
    record("invalidate " + hex(va.value()) + (global ? " global" : ""));
  }
  void invalidate_all(bool global) override {
    ++full_flushes;
    record(global ? "invalidate all global" : "invalidate all");
  }
  std::vector<u64> pages;
  int full_flushes = 0;
  int barriers = 0;
  /// Called with each event as it happens (to look at memory at that moment).
  std::function<void(const std::string&)> hook;

 private:
  void record(const std::string& event) {
    if (log_) log_->push_back(event);
    if (hook) hook(event);
  }
  EventLog* log_;
};

}  // namespace pagoda::test
