// The VMA set (mm/space/vma.hpp): unit tests of each operation, allocation failures that must leave
// the set unchanged, check() catching broken invariants, and a randomised test against a model
// that keeps one entry per page.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "mm/space/vma.hpp"

namespace pagoda {

/// Reaches into a VmaSet to break it on purpose (friend of VmaSet).
struct VmaSetTester {
  static Vma* data(VmaSet& set) { return set.data_; }
};

namespace {

constexpr u64 kPage = 4 * KiB;
constexpr u64 kBase = 0x400000;
const Perms kRO{.read = true, .user = true};
const Perms kRW{.read = true, .write = true, .user = true};
const Perms kRX{.read = true, .execute = true, .user = true};
const Perms kNone{.read = false, .user = true};
const int kImageA = 0, kImageB = 0;  // two distinct sources (their addresses)

/// An Allocator that counts, checks every free against its allocation, and fails on request.
class TestAllocator final : public Allocator {
 public:
  Result<void*> allocate(usize bytes) override {
    ++calls;
    if (fail_after == 0) return Error::NoMemory;
    if (fail_after > 0) --fail_after;
    void* p = std::aligned_alloc(16, (bytes + 15) / 16 * 16);
    live[p] = bytes;
    return p;
  }
  void free(void* memory, usize bytes) override {
    auto it = live.find(memory);
    ASSERT_NE(it, live.end()) << "freeing memory that is not allocated";
    EXPECT_EQ(it->second, bytes) << "freed with another size than allocated";
    live.erase(it);
    std::free(memory);
  }

  int calls = 0;
  int fail_after = -1;  ///< successful allocations still allowed; -1: no limit, 0: fail now
  std::map<void*, usize> live;
};

Vma anon(u64 first_page, u64 pages, Perms perms = kRW) {
  return Vma{.start = kBase + first_page * kPage, .end = kBase + (first_page + pages) * kPage, .perms = perms};
}

Vma image(u64 first_page, u64 pages, u64 offset, u64 file_size, Perms perms = kRX, const void* source = &kImageA) {
  Vma v = anon(first_page, pages, perms);
  v.kind = VmaKind::Image;
  v.source = source;
  v.offset = offset;
  v.file_size = file_size;
  return v;
}

bool same(const Vma& a, const Vma& b) {
  return a.start == b.start && a.end == b.end && a.perms == b.perms && a.kind == b.kind && a.flags == b.flags &&
         a.source == b.source && a.offset == b.offset && a.file_size == b.file_size;
}

std::string describe(const Vma& v) {
  char buffer[200];
  BufferSink sink(buffer, sizeof buffer);
  v.format(sink);
  return buffer;
}

std::string describe(const VmaSet& set) {
  std::string out;
  for (const Vma& v : set) out += describe(v) + "\n";
  return out;
}

std::vector<Vma> snapshot(const VmaSet& set) { return {set.begin(), set.end()}; }

::testing::AssertionResult equals(const VmaSet& set, const std::vector<Vma>& expected) {
  bool ok = set.size() == expected.size();
  for (usize i = 0; ok && i < expected.size(); ++i) ok = same(set.regions()[i], expected[i]);
  if (ok) return ::testing::AssertionSuccess();
  std::string want;
  for (const Vma& v : expected) want += describe(v) + "\n";
  return ::testing::AssertionFailure() << "set:\n" << describe(set) << "expected:\n" << want;
}

std::string check_report(const VmaSet& set) {
  char buffer[300];
  BufferSink sink(buffer, sizeof buffer);
  return set.check(&sink) ? "" : std::string(buffer);
}

struct VmaTest : ::testing::Test {
  TestAllocator allocator;
  std::optional<VmaSet> set{std::in_place, allocator, kPage};

  void TearDown() override {
    EXPECT_EQ(check_report(*set), "");
    set.reset();
    EXPECT_TRUE(allocator.live.empty()) << "the set leaked its array";
  }
};

TEST_F(VmaTest, InsertsInOrderAndFindsByAddress) {
  ASSERT_TRUE(set->insert(anon(10, 2)).ok());
  ASSERT_TRUE(set->insert(anon(0, 1, kRO)).ok());
  ASSERT_TRUE(set->insert(anon(5, 3, kRX)).ok());
  EXPECT_TRUE(equals(*set, {anon(0, 1, kRO), anon(5, 3, kRX), anon(10, 2)}));
  EXPECT_EQ(set->find(kBase), &set->regions()[0]);
  EXPECT_EQ(set->find(kBase + kPage - 1), &set->regions()[0]);
  EXPECT_EQ(set->find(kBase + kPage), nullptr);
  EXPECT_EQ(set->find(kBase + 7 * kPage + 123), &set->regions()[1]);
  EXPECT_EQ(set->find(kBase + 12 * kPage), nullptr);
  EXPECT_EQ(set->find(0), nullptr);
  EXPECT_EQ(set->overlapping(kBase + kPage, kBase + 6 * kPage).size(), 1u);
  EXPECT_EQ(set->overlapping(kBase, kBase + 11 * kPage).size(), 3u);
  EXPECT_EQ(set->overlapping(kBase + 8 * kPage, kBase + 10 * kPage).size(), 0u);
}

TEST_F(VmaTest, RefusesOverlapAndMalformedRegions) {
  ASSERT_TRUE(set->insert(anon(4, 4)).ok());
  EXPECT_EQ(set->insert(anon(7, 2)).error(), Error::AlreadyExists);
  EXPECT_EQ(set->insert(anon(2, 3)).error(), Error::AlreadyExists);
  EXPECT_EQ(set->insert(anon(5, 1)).error(), Error::AlreadyExists);
  EXPECT_EQ(set->insert(anon(0, 20)).error(), Error::AlreadyExists);
  Vma bad = anon(0, 1);
  bad.end = bad.start;
  EXPECT_EQ(set->insert(bad).error(), Error::InvalidArgument);  // empty
  bad = anon(0, 1);
  bad.start += 1;
  EXPECT_EQ(set->insert(bad).error(), Error::InvalidArgument);  // misaligned
  bad = anon(0, 1);
  bad.offset = kPage;
  EXPECT_EQ(set->insert(bad).error(), Error::InvalidArgument);  // image fields on anonymous memory
  bad = image(0, 1, 0, kPage + 1);
  EXPECT_EQ(set->insert(bad).error(), Error::InvalidArgument);  // more file than region
  bad = image(0, 1, 100, 0);
  EXPECT_EQ(set->insert(bad).error(), Error::InvalidArgument);  // misaligned offset
  bad = anon(0, 1);
  bad.kind = VmaKind(9);
  EXPECT_EQ(set->insert(bad).error(), Error::InvalidArgument);  // not a kind
  EXPECT_TRUE(equals(*set, {anon(4, 4)}));
}

TEST_F(VmaTest, MergesIdenticalNeighboursOnInsert) {
  ASSERT_TRUE(set->insert(anon(0, 2)).ok());
  ASSERT_TRUE(set->insert(anon(4, 2)).ok());
  ASSERT_TRUE(set->insert(anon(2, 2)).ok());  // fills the gap: one region
  EXPECT_TRUE(equals(*set, {anon(0, 6)}));
  ASSERT_TRUE(set->insert(anon(6, 1, kRO)).ok());  // other permissions: stays apart
  Vma stack = anon(7, 1);
  stack.kind = VmaKind::Stack;
  ASSERT_TRUE(set->insert(stack).ok());  // other kind: stays apart
  Vma grows = anon(8, 1);
  grows.kind = VmaKind::Stack;
  grows.flags = kVmaGrowsDown;
  ASSERT_TRUE(set->insert(grows).ok());  // other flags: stays apart
  EXPECT_EQ(set->size(), 4u);
}

TEST_F(VmaTest, RemovingTheMiddleOfARegionLeavesTwo) {
  ASSERT_TRUE(set->insert(image(0, 8, 0x3000, 6 * kPage + 100)).ok());
  ASSERT_TRUE(set->remove(kBase + 2 * kPage, kBase + 5 * kPage).ok());
  EXPECT_TRUE(equals(*set, {image(0, 2, 0x3000, 2 * kPage), image(5, 3, 0x3000 + 5 * kPage, kPage + 100)}));
  EXPECT_EQ(set->find(kBase + 3 * kPage), nullptr);
  // Removing beyond the end of the file leaves no file bytes.
  ASSERT_TRUE(set->remove(kBase + 5 * kPage, kBase + 7 * kPage).ok());
  EXPECT_TRUE(equals(*set, {image(0, 2, 0x3000, 2 * kPage), image(7, 1, 0x3000 + 7 * kPage, 0)}));
}

TEST_F(VmaTest, RemovesAcrossRegionsAndHoles) {
  for (u64 p : {0, 3, 6, 9}) ASSERT_TRUE(set->insert(anon(p, 2, p % 2 ? kRO : kRW)).ok());
  ASSERT_TRUE(set->remove(kBase + kPage, kBase + 10 * kPage).ok());  // cuts the first and the last
  EXPECT_TRUE(equals(*set, {anon(0, 1, kRW), anon(10, 1, kRO)}));
  ASSERT_TRUE(set->remove(kBase + 20 * kPage, kBase + 30 * kPage).ok());  // nothing there
  ASSERT_TRUE(set->remove(kBase, kBase + 20 * kPage).ok());
  EXPECT_TRUE(set->empty());
  EXPECT_EQ(set->remove(kBase, kBase).error(), Error::InvalidArgument);
  EXPECT_EQ(set->remove(kBase + 1, kBase + kPage).error(), Error::InvalidArgument);
}

TEST_F(VmaTest, ProtectSplitsAndMergesBack) {
  ASSERT_TRUE(set->insert(anon(0, 10)).ok());
  ASSERT_TRUE(set->protect(kBase + 3 * kPage, kBase + 5 * kPage, kRO).ok());
  EXPECT_TRUE(equals(*set, {anon(0, 3), anon(3, 2, kRO), anon(5, 5)}));
  ASSERT_TRUE(set->protect(kBase + 4 * kPage, kBase + 6 * kPage, kRO).ok());  // across a boundary
  EXPECT_TRUE(equals(*set, {anon(0, 3), anon(3, 3, kRO), anon(6, 4)}));
  ASSERT_TRUE(set->protect(kBase + 3 * kPage, kBase + 6 * kPage, kRW).ok());  // back: one region again
  EXPECT_TRUE(equals(*set, {anon(0, 10)}));
  ASSERT_TRUE(set->protect(kBase, kBase + 10 * kPage, kNone).ok());
  EXPECT_TRUE(equals(*set, {anon(0, 10, kNone)}));
}

TEST_F(VmaTest, ProtectRefusesARangeWithHoles) {
  ASSERT_TRUE(set->insert(anon(0, 2)).ok());
  ASSERT_TRUE(set->insert(anon(3, 2)).ok());
  const std::vector<Vma> before = snapshot(*set);
  EXPECT_EQ(set->protect(kBase, kBase + 5 * kPage, kRO).error(), Error::NotFound);              // a hole inside
  EXPECT_EQ(set->protect(kBase + kPage, kBase + 3 * kPage, kRO).error(), Error::NotFound);      // ends in the hole
  EXPECT_EQ(set->protect(kBase + 4 * kPage, kBase + 6 * kPage, kRO).error(), Error::NotFound);  // past the end
  EXPECT_EQ(set->protect(kBase + 20 * kPage, kBase + 21 * kPage, kRO).error(), Error::NotFound);
  EXPECT_TRUE(equals(*set, before));
}

TEST_F(VmaTest, ImagesMergeOnlyWithContiguousFileOffsetsAndOneFilePrefix) {
  // Contiguous offsets, the left part fully from the file: one region.
  ASSERT_TRUE(set->insert(image(0, 2, 0, 2 * kPage)).ok());
  ASSERT_TRUE(set->insert(image(2, 2, 2 * kPage, kPage + 5)).ok());
  EXPECT_TRUE(equals(*set, {image(0, 4, 0, 3 * kPage + 5)}));
  // A part with no file bytes joins a region whose file bytes end early.
  ASSERT_TRUE(set->insert(image(4, 1, 4 * kPage, 0)).ok());
  EXPECT_TRUE(equals(*set, {image(0, 5, 0, 3 * kPage + 5)}));
  // File bytes after a zero tail cannot join: they would not be one prefix.
  ASSERT_TRUE(set->insert(image(5, 1, 5 * kPage, 10)).ok());
  EXPECT_EQ(set->size(), 2u);
  // Neither does a discontiguous offset, nor another source.
  ASSERT_TRUE(set->insert(image(8, 1, 0, kPage)).ok());
  ASSERT_TRUE(set->insert(image(9, 1, 0x10000, kPage)).ok());
  ASSERT_TRUE(set->insert(image(10, 1, 0x11000, kPage, kRX, &kImageB)).ok());
  EXPECT_EQ(set->size(), 5u);
  // Protecting half of a merged image and back restores the same single region.
  ASSERT_TRUE(set->protect(kBase + kPage, kBase + 3 * kPage, kRO).ok());
  EXPECT_EQ(set->size(), 7u);
  ASSERT_TRUE(set->protect(kBase + kPage, kBase + 3 * kPage, kRX).ok());
  EXPECT_TRUE(same(set->regions()[0], image(0, 5, 0, 3 * kPage + 5)));
}

TEST_F(VmaTest, FindsFreeSpace) {
  ASSERT_TRUE(set->insert(anon(2, 2)).ok());
  ASSERT_TRUE(set->insert(anon(5, 1)).ok());
  const u64 low = kBase, high = kBase + 10 * kPage;
  EXPECT_EQ(set->find_free(2 * kPage, low, high).value(), kBase);
  EXPECT_EQ(set->find_free(3 * kPage, low, high).value(), kBase + 6 * kPage);
  EXPECT_EQ(set->find_free(kPage, kBase + 2 * kPage, high).value(), kBase + 4 * kPage);
  EXPECT_EQ(set->find_free(5 * kPage, low, high).error(), Error::NotFound);
  EXPECT_EQ(set->find_free(4 * kPage, low, high).value(), kBase + 6 * kPage);  // ends exactly at high
  EXPECT_EQ(set->find_free(0, low, high).error(), Error::InvalidArgument);
  EXPECT_EQ(set->find_free(kPage + 1, low, high).error(), Error::InvalidArgument);
}

TEST_F(VmaTest, AnAllocationFailureMidSplitLeavesTheSetUnchanged) {
  for (u64 p = 0; p < 8; p += 2) ASSERT_TRUE(set->insert(anon(p, 1, p % 4 ? kRO : kRW)).ok());
  ASSERT_EQ(set->size(), set->capacity()) << "the test needs a full array";
  const std::vector<Vma> before = snapshot(*set);
  const int calls = allocator.calls;

  allocator.fail_after = 0;
  // A new region that merges with nothing needs one more slot.
  EXPECT_EQ(set->insert(anon(20, 8)).error(), Error::NoMemory);
  EXPECT_TRUE(equals(*set, before));
  allocator.fail_after = -1;
  ASSERT_TRUE(set->insert(anon(20, 8)).ok());  // grows the array to 8 slots
  for (u64 p = 30; set->size() < set->capacity(); p += 2) ASSERT_TRUE(set->insert(anon(p, 1, kRO)).ok());
  const std::vector<Vma> full = snapshot(*set);

  allocator.fail_after = 0;
  EXPECT_EQ(set->remove(kBase + 22 * kPage, kBase + 23 * kPage).error(), Error::NoMemory);
  EXPECT_TRUE(equals(*set, full));
  EXPECT_EQ(set->protect(kBase + 22 * kPage, kBase + 23 * kPage, kRO).error(), Error::NoMemory);
  EXPECT_TRUE(equals(*set, full));
  EXPECT_EQ(set->protect(kBase + 20 * kPage, kBase + 23 * kPage, kRO).error(), Error::NoMemory);
  EXPECT_TRUE(equals(*set, full));
  // What needs no new slot still works while allocation fails.
  EXPECT_TRUE(set->protect(kBase + 20 * kPage, kBase + 28 * kPage, kRW).ok());  // unchanged
  EXPECT_TRUE(set->remove(kBase + 20 * kPage, kBase + 22 * kPage).ok());        // trims an end
  EXPECT_TRUE(set->insert(anon(20, 2)).ok());                                   // merges back
  EXPECT_TRUE(equals(*set, full));
  EXPECT_GT(allocator.calls, calls);
  allocator.fail_after = -1;
  ASSERT_TRUE(set->remove(kBase + 22 * kPage, kBase + 23 * kPage).ok());
  EXPECT_EQ(set->size(), full.size() + 1);
}

TEST_F(VmaTest, CopiesAndACopyFailureLeavesTheTargetUnchanged) {
  for (u64 p = 0; p < 20; p += 2) ASSERT_TRUE(set->insert(anon(p, 1)).ok());
  VmaSet other(allocator, kPage);
  ASSERT_TRUE(other.insert(anon(40, 1, kRO)).ok());
  allocator.fail_after = 0;
  EXPECT_EQ(other.copy_from(*set).error(), Error::NoMemory);
  EXPECT_TRUE(equals(other, {anon(40, 1, kRO)}));
  allocator.fail_after = -1;
  ASSERT_TRUE(other.copy_from(*set).ok());
  EXPECT_TRUE(equals(other, snapshot(*set)));
  VmaSet big_pages(allocator, 2 * MiB);
  EXPECT_EQ(big_pages.copy_from(*set).error(), Error::InvalidArgument);
}

TEST_F(VmaTest, ShrinksToFitAndAFailedShrinkChangesNothing) {
  for (u64 p = 0; p < 10; p += 2) ASSERT_TRUE(set->insert(anon(p, 1)).ok());
  EXPECT_EQ(set->capacity(), 8u);
  allocator.fail_after = 0;
  EXPECT_EQ(set->shrink_to_fit().error(), Error::NoMemory);
  EXPECT_EQ(set->capacity(), 8u);
  allocator.fail_after = -1;
  ASSERT_TRUE(set->shrink_to_fit().ok());
  EXPECT_EQ(set->capacity(), 5u);
  EXPECT_EQ(set->size(), 5u);
  set->clear();
  ASSERT_TRUE(set->shrink_to_fit().ok());
  EXPECT_EQ(set->capacity(), 0u);
  EXPECT_TRUE(allocator.live.empty());
  ASSERT_TRUE(set->insert(anon(0, 1)).ok());
}

TEST_F(VmaTest, CheckCatchesEveryBrokenInvariant) {
  for (u64 p : {0, 2, 4}) ASSERT_TRUE(set->insert(anon(p, 1, p == 2 ? kRO : kRW)).ok());
  ASSERT_EQ(check_report(*set), "");
  Vma* data = VmaSetTester::data(*set);
  const std::vector<Vma> good = snapshot(*set);
  const auto restore = [&] {
    for (usize i = 0; i < good.size(); ++i) data[i] = good[i];
  };

  data[1].start = data[0].start;  // overlaps the first
  EXPECT_NE(check_report(*set).find("overlaps"), std::string::npos) << check_report(*set);
  restore();
  std::swap(data[0], data[2]);  // out of order
  EXPECT_NE(check_report(*set).find("overlaps or precedes"), std::string::npos);
  restore();
  data[1].perms = kRW;  // [0,1) rw, [2,3) rw: fine, not adjacent; make them touch
  data[0].end = data[1].start;
  EXPECT_NE(check_report(*set).find("merged"), std::string::npos) << check_report(*set);
  restore();
  data[2].end += 1;  // misaligned
  EXPECT_NE(check_report(*set).find("region 2 is not page aligned"), std::string::npos);
  restore();
  data[2].end = data[2].start;  // empty
  EXPECT_NE(check_report(*set).find("region 2 is empty"), std::string::npos);
  restore();
  data[0].file_size = 1;  // file bytes on anonymous memory
  EXPECT_NE(check_report(*set).find("region 0 has file fields but is not an image"), std::string::npos);
  restore();
  EXPECT_EQ(check_report(*set), "");
}

// ---- randomised, against a model of one entry per page --------------------------------------

struct PageModel {
  Perms perms;
  VmaKind kind;
  u32 flags;
  const void* source;
  u64 offset;      ///< file offset of this page (images)
  u64 file_bytes;  ///< bytes of this page from the file (images)
};
using Model = std::map<u64, PageModel>;  // page address -> what it holds

void add_to_model(Model& model, const Vma& v) {
  for (u64 a = v.start; a < v.end; a += kPage) {
    const u64 into = a - v.start;
    const bool img = v.kind == VmaKind::Image;
    const u64 file = img && v.file_size > into ? std::min(kPage, v.file_size - into) : 0;
    model[a] = PageModel{v.perms, v.kind, v.flags, v.source, img ? v.offset + into : 0, file};
  }
}

/// The canonical regions of the model: maximal runs of pages that one region can describe.
std::vector<Vma> canonical(const Model& model) {
  std::vector<Vma> out;
  for (const auto& [a, p] : model) {
    if (!out.empty() && out.back().end == a) {
      Vma& last = out.back();
      const PageModel& prev = model.at(a - kPage);
      const bool joins = prev.perms == p.perms && prev.kind == p.kind && prev.flags == p.flags &&
                         prev.source == p.source &&
                         (p.kind != VmaKind::Image ||
                          (p.offset == prev.offset + kPage && (prev.file_bytes == kPage || p.file_bytes == 0)));
      if (joins) {
        last.end += kPage;
        last.file_size += p.file_bytes;
        continue;
      }
    }
    out.push_back(Vma{.start = a,
                      .end = a + kPage,
                      .perms = p.perms,
                      .kind = p.kind,
                      .flags = p.flags,
                      .source = p.source,
                      .offset = p.offset,
                      .file_size = p.file_bytes});
  }
  return out;
}

bool covered(const Model& model, u64 start, u64 end, bool all) {
  for (u64 a = start; a < end; a += kPage)
    if ((model.count(a) != 0) != all) return false;
  return true;
}

void run_random(u64 seed, int operations) {
  constexpr u64 kPages = 48;
  std::mt19937_64 random(seed);
  TestAllocator allocator;
  Model model;
  std::map<std::string, int> seen;
  {
    VmaSet set(allocator, kPage);
    const Perms perm_choices[] = {kRO, kRW, kRX, kNone};
    const auto page = [&](u64 n) { return kBase + n * kPage; };
    for (int op = 0; op < operations; ++op) {
      const u64 first = random() % kPages;
      const u64 length = 1 + random() % 10;
      const u64 start = page(first), end = page(first + length);
      // A quarter of the operations run with a full array (shrunk to fit) and a failing
      // allocator, so every change that needs a slot meets the failure.
      const bool inject = random() % 4 == 0;
      if (inject) ASSERT_TRUE(set.shrink_to_fit().ok());
      ASSERT_TRUE(set.size() == set.capacity() || !inject);
      allocator.fail_after = inject ? 0 : -1;
      const std::vector<Vma> before = snapshot(set);
      const Model model_before = model;
      Result<void> result;
      std::string what;
      switch (random() % 3) {
        case 0: {  // insert
          // Images half the time, mostly alike, so that neighbours often could merge.
          const VmaKind kind = random() % 2 ? VmaKind::Image : VmaKind(random() % 4);
          Vma v{.start = start,
                .end = end,
                .perms = perm_choices[random() % (kind == VmaKind::Image ? 2 : 4)],
                .kind = kind};
          v.flags = random() % 5 == 0 ? kVmaGrowsDown : 0;
          if (v.kind == VmaKind::Image) {
            v.source = random() % 4 == 0 ? &kImageB : &kImageA;
            v.offset = (first + (random() % 4 == 0)) * kPage;  // mostly contiguous with a neighbour's
            const u64 r = random() % 4;
            v.file_size = r == 0 ? 0 : r == 1 ? v.size() : random() % (v.size() + 1);
          }
          what = "insert";
          result = set.insert(v);
          if (result.ok()) {
            ASSERT_TRUE(covered(model, start, end, false)) << "inserted over existing pages";
            add_to_model(model, v);
          } else if (result.error() == Error::AlreadyExists) {
            ASSERT_FALSE(covered(model, start, end, false)) << "refused a free range";
          }
          break;
        }
        case 1:  // remove
          what = "remove";
          result = set.remove(start, end);
          if (result.ok())
            for (u64 a = start; a < end; a += kPage) model.erase(a);
          break;
        case 2: {  // protect
          const Perms perms = perm_choices[random() % 4];
          what = "protect";
          result = set.protect(start, end, perms);
          if (result.ok()) {
            ASSERT_TRUE(covered(model, start, end, true)) << "protected a range with holes";
            for (u64 a = start; a < end; a += kPage) model[a].perms = perms;
          } else if (result.error() == Error::NotFound) {
            ASSERT_FALSE(covered(model, start, end, true)) << "refused a fully mapped range";
          }
          break;
        }
      }
      allocator.fail_after = -1;
      if (result.is_error()) {
        seen[what + ":" + error_name(result.error())]++;
        ASSERT_TRUE(result.error() != Error::NoMemory || inject) << "NoMemory without a failing allocator";
        ASSERT_TRUE(result.error() != Error::InvalidArgument) << what;
        ASSERT_TRUE(equals(set, before)) << "op " << op << ": a failed " << what << " changed the set";
        model = model_before;
      } else {
        seen[what + ":ok"]++;
      }
      ASSERT_EQ(check_report(set), "") << "op " << op << " (" << what << ")";
      ASSERT_TRUE(equals(set, canonical(model))) << "op " << op << " (" << what << "), seed " << seed;

      // Queries agree with the model.
      const u64 probe = kBase + random() % ((kPages + 12) * kPage);
      const Vma* found = set.find(probe);
      const auto it = model.find(probe / kPage * kPage);
      ASSERT_EQ(found != nullptr, it != model.end()) << "find " << std::hex << probe;
      if (found != nullptr) ASSERT_TRUE(found->contains(probe));
      usize expect_overlap = 0;
      for (const Vma& v : canonical(model)) expect_overlap += v.start < end && v.end > start;
      ASSERT_EQ(set.overlapping(start, end).size(), expect_overlap);
      const Result<u64> gap = set.find_free(length * kPage, kBase, page(kPages));
      u64 expect_gap = 0;
      bool has_gap = false;
      for (u64 n = 0; n + length <= kPages && !has_gap; ++n)
        if (covered(model, page(n), page(n + length), false)) expect_gap = page(n), has_gap = true;
      ASSERT_EQ(gap.ok(), has_gap);
      if (has_gap) ASSERT_EQ(gap.value(), expect_gap);
    }
    if (operations >= 1000) {
      // The run explored what it should: every kind of refusal, failures under injection, splits.
      for (const char* must : {"insert:ok", "insert:already exists", "insert:no memory", "remove:ok",
                               "remove:no memory", "protect:ok", "protect:not found", "protect:no memory"})
        EXPECT_GT(seen[must], 0) << must;
    }
  }
  EXPECT_TRUE(allocator.live.empty());
}

TEST(VmaRandom, AgreesWithAPageModelUnderAllocationFailures) {
  for (u64 seed : {1, 2, 3, 4}) {
    SCOPED_TRACE(seed);
    run_random(seed, 5000);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace pagoda
