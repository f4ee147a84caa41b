/// @file table_memory.hpp
/// @brief TableMemory: where page tables live (frames for tables, and the kernel's view of them).
#pragma once

#include "lib/result.hpp"
#include "mm/base/addr.hpp"

namespace pagoda {

/// Where page tables live: allocation of zeroed table frames and access to their entries.
class TableMemory {
 public:
  /// A zeroed frame for a new table.
  [[nodiscard]] virtual Result<PhysAddr> allocate_table() = 0;
  /// Returns a table frame; only once no TLB can hold a walk through it (ConsistencyBatch).
  virtual void free_table(PhysAddr table) = 0;
  /// The entries of the table at @p table, or nullptr when the kernel cannot reach it.
  virtual u64* table_entries(PhysAddr table) = 0;

 protected:
  ~TableMemory() = default;
};

}  // namespace pagoda
