// The sorted array of VMAs (see vma.hpp). Every change first reserves the slots it may need,
// which is the only step that can fail, and then rewrites the array in place.
#include "mm/space/vma.hpp"

#include "core/lab.hpp"
#include "core/panic.hpp"

namespace pagoda {
namespace {

constexpr usize kMinCapacity = 4;

[[maybe_unused]] bool is_image(const Vma& v) { return v.kind == VmaKind::Image; }

// The three helpers below are used by the set's operations (split_at, remove, merge_range,
// insert): [[maybe_unused]] only so that a tree whose operations are still skeletons builds.

/// The part [v.start, at) of @p v (v.start < at < v.end). An image region keeps the file bytes
/// that lie before @p at.
[[maybe_unused]] Vma head_of(const Vma& v, u64 at) {
  // LAB 5 BEGIN the head of a region cut at an address
  Vma h = v;
  h.end = at;
  if (is_image(v)) h.file_size = min(v.file_size, at - v.start);
  return h;
  // LAB 5 SKELETON
  // (void)at;
  // (void)lab_not_done("lab 5: write head_of() in kernel/mm/space/vma.cpp (labs/05-vmas/README.md)");
  // return v;
  // LAB 5 END
}

/// The part [at, v.end) of @p v (v.start < at < v.end). An image region's tail starts that
/// much further into the file and keeps the file bytes that lie after @p at (maybe none).
[[maybe_unused]] Vma tail_of(const Vma& v, u64 at) {
  // LAB 5 BEGIN the tail of a region cut at an address
  Vma t = v;
  t.start = at;
  if (is_image(v)) {
    const u64 cut = at - v.start;
    t.offset = v.offset + cut;
    t.file_size = v.file_size > cut ? v.file_size - cut : 0;
  }
  return t;
  // LAB 5 SKELETON
  // (void)at;
  // (void)lab_not_done("lab 5: write tail_of() in kernel/mm/space/vma.cpp (labs/05-vmas/README.md)");
  // return v;
  // LAB 5 END
}

/// @p left and @p right (neighbours, VmaSet::mergeable()) as one region.
[[maybe_unused]] Vma merged(const Vma& left, const Vma& right) {
  // LAB 5 BEGIN two neighbouring regions as one
  Vma m = left;
  m.end = right.end;
  m.file_size = left.file_size + right.file_size;
  return m;
  // LAB 5 SKELETON
  // (void)right;
  // (void)lab_not_done("lab 5: write merged() in kernel/mm/space/vma.cpp (labs/05-vmas/README.md)");
  // return left;
  // LAB 5 END
}

}  // namespace

void Vma::format(FormatSink& sink) const {
  format_to(sink, "[{:#x}, {:#x}) {} {}", start, end, perms, abi::memory_kind_name(kind));
  if (flags & kVmaGrowsDown) format_to(sink, " grows-down");
  if (kind == VmaKind::Image) format_to(sink, " offset {:#x} file {:#x}", offset, file_size);
}

VmaSet::~VmaSet() {
  if (data_ != nullptr) allocator_.free(data_, capacity_ * sizeof(Vma));
}

bool VmaSet::mergeable(const Vma& left, const Vma& right) {
  // LAB 5 BEGIN whether two neighbours describe one region (vma.hpp: canonical form)
  if (left.end != right.start || !(left.perms == right.perms) || left.kind != right.kind || left.flags != right.flags ||
      left.source != right.source)
    return false;
  if (!is_image(left)) return true;
  return right.offset == left.offset + left.size() && (left.file_size == left.size() || right.file_size == 0);
  // LAB 5 SKELETON
  // (void)left;
  // (void)right;
  // (void)lab_not_done("lab 5: write VmaSet::mergeable() in kernel/mm/space/vma.cpp (labs/05-vmas/README.md)");
  // return false;
  // LAB 5 END
}

bool VmaSet::range_ok(u64 start, u64 end) const {
  return start < end && is_aligned(start, page_size_) && is_aligned(end, page_size_);
}

const char* VmaSet::problem_of(const Vma& v) const {
  if (v.start >= v.end) return "is empty";
  if (!range_ok(v.start, v.end)) return "is not page aligned";
  switch (v.kind) {
    case VmaKind::Image:
      if (!is_aligned(v.offset, page_size_)) return "has a file offset that is not page aligned";
      if (v.file_size > v.size()) return "has more file bytes than it has room for";
      if (v.offset > ~u64{0} - v.size()) return "has a file range that overflows";
      return nullptr;
    case VmaKind::Anonymous:
    case VmaKind::Stack:
    case VmaKind::Heap:
      if (v.source != nullptr || v.offset != 0 || v.file_size != 0) return "has file fields but is not an image";
      return nullptr;
  }
  return "has no valid kind";
}

usize VmaSet::first_ending_above(u64 address) const {
  usize low = 0, high = size_;
  while (low < high) {
    const usize mid = low + (high - low) / 2;
    if (data_[mid].end <= address) low = mid + 1;
    else high = mid;
  }
  return low;
}

const Vma* VmaSet::find(u64 address) const {
  // LAB 5 BEGIN the region containing address, by binary search (first_ending_above)
  const usize i = first_ending_above(address);
  return i < size_ && data_[i].start <= address ? &data_[i] : nullptr;
  // LAB 5 SKELETON
  // (void)address;
  // (void)lab_not_done("lab 5: write VmaSet::find() in kernel/mm/space/vma.cpp (labs/05-vmas/README.md)");
  // return nullptr;
  // LAB 5 END
}

Span<const Vma> VmaSet::overlapping(u64 start, u64 end) const {
  if (start >= end) return {};
  const usize first = first_ending_above(start);
  usize low = first, high = size_;  // then the first region starting at or above end
  while (low < high) {
    const usize mid = low + (high - low) / 2;
    if (data_[mid].start < end) low = mid + 1;
    else high = mid;
  }
  return {data_ + first, low - first};
}

Result<u64> VmaSet::find_free(u64 length, u64 low, u64 high) const {
  if (length == 0 || !is_aligned(length, page_size_) || !range_ok(low, high)) return Error::InvalidArgument;
  u64 candidate = low;
  for (usize i = first_ending_above(low); i < size_ && data_[i].start < high; ++i) {
    if (data_[i].start >= candidate && data_[i].start - candidate >= length) return candidate;
    candidate = max(candidate, data_[i].end);
  }
  if (candidate < high && high - candidate >= length) return candidate;
  return Error::NotFound;
}

Result<void> VmaSet::reserve(usize count) {
  if (count <= capacity_) return {};
  const usize capacity = max(count, max(capacity_ * 2, kMinCapacity));
  if (capacity > ~usize{0} / sizeof(Vma)) return Error::NoMemory;
  void* memory = TRY(allocator_.allocate(capacity * sizeof(Vma)));
  Vma* fresh = static_cast<Vma*>(memory);
  for (usize i = 0; i < size_; ++i) construct_at(&fresh[i], data_[i]);
  if (data_ != nullptr) allocator_.free(data_, capacity_ * sizeof(Vma));
  data_ = fresh;
  capacity_ = capacity;
  return {};
}

Result<void> VmaSet::shrink_to_fit() {
  if (size_ == capacity_) return {};
  Vma* fresh = nullptr;
  if (size_ > 0) {
    void* memory = TRY(allocator_.allocate(size_ * sizeof(Vma)));
    fresh = static_cast<Vma*>(memory);
    for (usize i = 0; i < size_; ++i) construct_at(&fresh[i], data_[i]);
  }
  allocator_.free(data_, capacity_ * sizeof(Vma));
  data_ = fresh;
  capacity_ = size_;
  return {};
}

void VmaSet::insert_at(usize index, const Vma& v) {
  construct_at(&data_[size_], Vma{});
  for (usize k = size_; k > index; --k) data_[k] = data_[k - 1];
  data_[index] = v;
  ++size_;
}

void VmaSet::erase_at(usize index) {
  for (usize k = index; k + 1 < size_; ++k) data_[k] = data_[k + 1];
  --size_;
}

void VmaSet::split_at(usize index, u64 address) {
  // LAB 5 BEGIN split the region at index in two at address
  const Vma whole = data_[index];
  data_[index] = head_of(whole, address);
  insert_at(index + 1, tail_of(whole, address));
  // LAB 5 SKELETON
  // (void)index;
  // (void)address;
  // panic("lab 5: write VmaSet::split_at() in kernel/mm/space/vma.cpp (labs/05-vmas/README.md)");
  // LAB 5 END
}

void VmaSet::merge_range(usize first, usize last) {
  // LAB 5 BEGIN merge the mergeable neighbours among regions first..last
  if (size_ == 0) return;
  last = min(last, size_ - 1);
  usize k = first;
  while (k < last) {
    if (mergeable(data_[k], data_[k + 1])) {
      data_[k] = merged(data_[k], data_[k + 1]);
      erase_at(k + 1);
      --last;
    } else {
      ++k;
    }
  }
  // LAB 5 SKELETON
  // (void)first;
  // (void)last;
  // panic("lab 5: write VmaSet::merge_range() in kernel/mm/space/vma.cpp (labs/05-vmas/README.md)");
  // LAB 5 END
}

Result<void> VmaSet::insert(const Vma& vma) {
  if (const char* problem = problem_of(vma)) return Error(Error::InvalidArgument, problem);  // says which rule
  // LAB 5 BEGIN insert vma: refuse an overlap, join identical neighbours, else take one more slot
  const usize i = first_ending_above(vma.start);
  if (i < size_ && data_[i].start < vma.end) return Error::AlreadyExists;

  // Joining a neighbour needs no new slot.
  const bool join_left = i > 0 && mergeable(data_[i - 1], vma);
  const Vma grown = join_left ? merged(data_[i - 1], vma) : vma;
  const bool join_right = i < size_ && mergeable(grown, data_[i]);
  if (join_left && join_right) {
    data_[i - 1] = merged(grown, data_[i]);
    erase_at(i);
  } else if (join_left) {
    data_[i - 1] = grown;
  } else if (join_right) {
    data_[i] = merged(grown, data_[i]);
  } else {
    TRY(reserve(size_ + 1));
    insert_at(i, vma);
  }
  return {};
  // LAB 5 SKELETON
  // return lab_not_done("lab 5: write VmaSet::insert() in kernel/mm/space/vma.cpp (labs/05-vmas/README.md)");
  // LAB 5 END
}

Result<void> VmaSet::remove(u64 start, u64 end) {
  if (!range_ok(start, end)) return Error::InvalidArgument;
  // LAB 5 BEGIN remove [start, end), splitting the regions it cuts (a hole needs one more slot)
  const Span<const Vma> run = overlapping(start, end);
  if (run.empty()) return {};
  usize first = usize(run.begin() - data_);
  usize last = first + run.size();  // exclusive
  const bool keep_head = data_[first].start < start;
  const bool keep_tail = data_[last - 1].end > end;

  if (run.size() == 1 && keep_head && keep_tail) {  // a hole in the middle of one region
    TRY(reserve(size_ + 1));
    const Vma whole = data_[first];
    data_[first] = head_of(whole, start);
    insert_at(first + 1, tail_of(whole, end));
    return {};
  }
  if (keep_head) {
    data_[first] = head_of(data_[first], start);
    ++first;
  }
  if (keep_tail) {
    data_[last - 1] = tail_of(data_[last - 1], end);
    --last;
  }
  const usize removed = last - first;
  for (usize k = first; k + removed < size_; ++k) data_[k] = data_[k + removed];
  size_ -= removed;
  return {};
  // LAB 5 SKELETON
  // return lab_not_done("lab 5: write VmaSet::remove() in kernel/mm/space/vma.cpp (labs/05-vmas/README.md)");
  // LAB 5 END
}

Result<void> VmaSet::protect(u64 start, u64 end, Perms perms) {
  if (!range_ok(start, end)) return Error::InvalidArgument;
  // LAB 5 BEGIN new permissions for [start, end): refuse holes, split the ends, merge back
  const Span<const Vma> run = overlapping(start, end);
  if (run.empty() || run[0].start > start || run[run.size() - 1].end < end) return Error::NotFound;
  bool unchanged = true;
  for (usize k = 0; k < run.size(); ++k) {
    if (k > 0 && run[k - 1].end != run[k].start) return Error::NotFound;  // a hole in the range
    unchanged = unchanged && run[k].perms == perms;
  }
  if (unchanged) return {};

  const usize splits = usize(run[0].start < start) + usize(run[run.size() - 1].end > end);
  usize first = usize(run.begin() - data_);  // (run points into the array reserve() may move)
  usize last = first + run.size();
  TRY(reserve(size_ + splits));
  if (data_[first].start < start) {
    split_at(first, start);
    ++first;
    ++last;
  }
  if (data_[last - 1].end > end) split_at(last - 1, end);
  for (usize k = first; k < last; ++k) data_[k].perms = perms;
  merge_range(first > 0 ? first - 1 : 0, last);
  return {};
  // LAB 5 SKELETON
  // (void)perms;
  // return lab_not_done("lab 5: write VmaSet::protect() in kernel/mm/space/vma.cpp (labs/05-vmas/README.md)");
  // LAB 5 END
}

Result<void> VmaSet::copy_from(const VmaSet& other) {
  if (&other == this) return {};
  if (other.page_size_ != page_size_) return Error::InvalidArgument;
  TRY(reserve(other.size_));
  for (usize k = 0; k < other.size_; ++k) data_[k] = other.data_[k];
  size_ = other.size_;
  return {};
}

bool VmaSet::check(FormatSink* report) const {
  const auto broken = [report](const char* what, usize index, const Vma& v) {
    if (report != nullptr) {
      format_to(*report, "VMA set broken: region {} {}: ", index, what);
      v.format(*report);
    }
    return false;
  };
  if (size_ > capacity_ || (capacity_ > 0 && data_ == nullptr)) {
    if (report != nullptr) format_to(*report, "VMA set broken: {} regions in {} slots", size_, capacity_);
    return false;
  }
  for (usize k = 0; k < size_; ++k) {
    const Vma& v = data_[k];
    if (const char* problem = problem_of(v)) return broken(problem, k, v);
    if (k == 0) continue;
    if (data_[k - 1].end > v.start) return broken("overlaps or precedes the region before it", k, v);
    if (mergeable(data_[k - 1], v)) return broken("should have been merged with the region before it", k, v);
  }
  return true;
}

}  // namespace pagoda
