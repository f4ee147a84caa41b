// A user space's record (mm/space/user_regions.hpp): the fault decision over VMAs (populate, grow the
// stack, or deny with the cause a report names) and the coverage check of the page tables
// against the VMAs, over simulated physical memory.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "host_support.hpp"
#include "mm/space/address_space.hpp"
#include "mm/space/user_regions.hpp"
#include "page_table_fakes.hpp"
#include "x86_hw_fake.hpp"

namespace pagoda {
namespace {

using F = arch::PageTableFormat;
constexpr u64 kPage = kPageSize;

class MallocAllocator final : public Allocator {
 public:
  Result<void*> allocate(usize bytes) override { return std::aligned_alloc(16, (bytes + 15) / 16 * 16); }
  void free(void* memory, usize) override { std::free(memory); }
};

const Perms kRO{.read = true, .user = true};
const Perms kRW{.read = true, .write = true, .user = true};
const Perms kRX{.read = true, .execute = true, .user = true};
const Perms kNone{.read = false, .user = true};
constexpr u64 kTop = 0x7fff'ffff'f000;
constexpr u64 kLimit = 16 * kPage;
constexpr u64 kGap = 4 * kPage;
const char kImage[3 * 4096] = {};

struct RegionsTest : ::testing::Test {
  MallocAllocator allocator;
  UserRegions regions{allocator, kPage};

  void SetUp() override {
    regions.stack_limit = kLimit;
    regions.stack_gap = kGap;
    ASSERT_TRUE(regions.vmas
                    .insert(Vma{.start = 0x400000,
                                .end = 0x402000,
                                .perms = kRX,
                                .kind = VmaKind::Image,
                                .source = kImage,
                                .offset = 0,
                                .file_size = 0x1800})
                    .ok());
    ASSERT_TRUE(regions.vmas
                    .insert(Vma{.start = 0x402000,
                                .end = 0x403000,
                                .perms = kRO,
                                .kind = VmaKind::Image,
                                .source = kImage,
                                .offset = 0x2000,
                                .file_size = 0x100})
                    .ok());
    ASSERT_TRUE(regions.vmas.insert(Vma{.start = 0x10000000, .end = 0x10004000, .perms = kNone}).ok());
    ASSERT_TRUE(regions.vmas
                    .insert(Vma{.start = kTop - 2 * kPage,
                                .end = kTop,
                                .perms = kRW,
                                .kind = VmaKind::Stack,
                                .flags = kVmaGrowsDown})
                    .ok());
  }

  static std::string text(const FaultVerdict& v) {
    char buffer[300];
    BufferSink sink(buffer, sizeof buffer);
    v.format(sink);
    return buffer;
  }
};

const Access kRead{.user = true};
const Access kWrite{.write = true, .user = true};
const Access kFetch{.execute = true, .user = true};

TEST_F(RegionsTest, AnAccessItsRegionAllowsPopulatesThatRegionsPage) {
  for (const auto& [va, access] : {std::pair{0x400123ull, kRead},
                                   {0x401ff8ull, kFetch},
                                   {0x402000ull, kRead},
                                   {kTop - 8, kWrite},
                                   {kTop - 2 * kPage, kRead}}) {
    const FaultVerdict v = decide_fault(regions, va, access);
    EXPECT_EQ(v.action, FaultAction::Populate) << std::hex << va;
    EXPECT_EQ(v.cause, FaultCause::Allowed);
    ASSERT_TRUE(v.has_vma);
    EXPECT_TRUE(v.vma.contains(va));
  }
}

TEST_F(RegionsTest, AnAccessAgainstItsRegionsPermissionsIsDeniedNamingTheRegion) {
  FaultVerdict v = decide_fault(regions, 0x402010, kWrite);
  EXPECT_EQ(v.action, FaultAction::Deny);
  EXPECT_EQ(v.cause, FaultCause::WriteDenied);
  EXPECT_EQ(text(v), "write to read-only VMA [0x402000, 0x403000) r-- user image offset 0x2000 file 0x100");
  v = decide_fault(regions, 0x400000, kWrite);
  EXPECT_EQ(v.cause, FaultCause::WriteDenied);
  v = decide_fault(regions, kTop - 16, kFetch);
  EXPECT_EQ(v.cause, FaultCause::ExecuteDenied);
  EXPECT_EQ(text(v).rfind("execute in non-executable VMA [", 0), 0u) << text(v);
  v = decide_fault(regions, 0x10001000, kRead);
  EXPECT_EQ(v.cause, FaultCause::NoAccess);
  EXPECT_EQ(decide_fault(regions, 0x10001000, kWrite).cause, FaultCause::NoAccess);
}

TEST_F(RegionsTest, AnAddressInNoRegionIsNoVma) {
  for (u64 va : {0ull, 0x3ff000ull, 0x403000ull, 0x10004000ull, 0x1234'5678'9000ull}) {
    const FaultVerdict v = decide_fault(regions, va, kRead);
    EXPECT_EQ(v.action, FaultAction::Deny) << std::hex << va;
    EXPECT_EQ(v.cause, FaultCause::NoVma) << std::hex << va;
    EXPECT_FALSE(v.has_vma);
    EXPECT_EQ(text(v), "no VMA");
  }
}

TEST_F(RegionsTest, TheStackGrowsDownToItsLimitThenTheGapSaysStackLimit) {
  // Just below the stack, down to top - limit: grow.
  for (u64 va : {kTop - 2 * kPage - 8, kTop - 9 * kPage, kTop - kLimit}) {
    const FaultVerdict v = decide_fault(regions, va, kWrite);
    EXPECT_EQ(v.action, FaultAction::Grow) << std::hex << va;
    EXPECT_EQ(v.vma.start, align_down(va, kPage));
    EXPECT_EQ(v.vma.end, kTop);
    EXPECT_EQ(v.vma.kind, VmaKind::Stack);
  }
  // One page past the limit, and anywhere in the gap: stack limit.
  for (u64 va : {kTop - kLimit - 1, kTop - kLimit - kGap}) {
    const FaultVerdict v = decide_fault(regions, va, kWrite);
    EXPECT_EQ(v.action, FaultAction::Deny) << std::hex << va;
    EXPECT_EQ(v.cause, FaultCause::StackLimit);
    EXPECT_EQ(v.floor, kTop - kLimit);
    EXPECT_NE(text(v).find("stack limit: below the lowest stack address 0x7ffffffef000"), std::string::npos) << text(v);
  }
  // Below the gap: nothing.
  EXPECT_EQ(decide_fault(regions, kTop - kLimit - kGap - 1, kWrite).cause, FaultCause::NoVma);
  // Executing below the stack is still refused by its permissions.
  EXPECT_EQ(decide_fault(regions, kTop - 3 * kPage, kFetch).cause, FaultCause::ExecuteDenied);
}

std::string around(const UserRegions& regions, u64 va) {
  char buffer[600];
  BufferSink sink(buffer, sizeof buffer);
  explain_no_vma(sink, regions, va);
  return buffer;
}

TEST_F(RegionsTest, NoVmaSaysWhatLiesAroundTheAddress) {
  // Between two regions: how far from each.
  EXPECT_EQ(around(regions, 0x404010), "; the page lies 2 page(s) past the end of [0x402000, 0x403000) r-- user image "
                                       "offset 0x2000 file 0x100 and about 252 MiB below [0x10000000, 0x10004000) --- "
                                       "user anonymous");
  // Far from both neighbours: sizes, not page counts (65533 pages past one, 2^35 pages below the other).
  EXPECT_EQ(around(regions, 0x20000000).find("; the page lies about 256 MiB past the end of [0x10000000, "), 0u)
      << around(regions, 0x20000000);
  EXPECT_NE(around(regions, 0x20000000).find("user anonymous and about 128 TiB below [0x7ffff"), std::string::npos)
      << around(regions, 0x20000000);
  // Either side of the threshold (16 MiB, 4096 pages): pages below it, a size from it on.
  EXPECT_NE(around(regions, 0x10004000 + 4094 * kPage).find("lies 4095 page(s) past the end of"), std::string::npos)
      << around(regions, 0x10004000 + 4094 * kPage);
  EXPECT_NE(around(regions, 0x10004000 + 4095 * kPage).find("lies about 16 MiB past the end of"), std::string::npos)
      << around(regions, 0x10004000 + 4095 * kPage);
  // Above every region, below none.
  EXPECT_EQ(around(regions, 0x1000),
            "; the page lies 1023 page(s) below [0x400000, 0x402000) r-x user image offset 0x0 "
            "file 0x1800");
  // In the stack's guard gap.
  EXPECT_NE(around(regions, kTop - kLimit - kPage).find("in the guard gap below the stack's lowest address"),
            std::string::npos);
  // Just below a stack that lacks the grows-down flag: the flag is named.
  UserRegions flat{allocator, kPage};
  flat.stack_limit = kLimit;
  flat.stack_gap = kGap;
  ASSERT_TRUE(flat.vmas.insert(Vma{.start = kTop - 2 * kPage, .end = kTop, .perms = kRW, .kind = VmaKind::Stack}).ok());
  EXPECT_EQ(decide_fault(flat, kTop - 3 * kPage, kWrite).cause, FaultCause::NoVma);
  EXPECT_EQ(
      around(flat, kTop - 3 * kPage + 8),
      "; the page is 1 page(s) below the stack [0x7fffffffd000, 0x7ffffffff000) rw- user stack, which does not grow "
      "down: it lacks the grows-down flag, so no fault below it can extend it");
  // An empty record: nothing to say.
  UserRegions none{allocator, kPage};
  EXPECT_EQ(around(none, 0x1000), "");
}

TEST_F(RegionsTest, NoVmaBelowTheBreakSaysBrkRecordedTheHeapShort) {
  // The heap starts where the image ends (0x403000); the break is 0x10 bytes into its first page,
  // but no region covers that page (a brk that rounded its top down).
  regions.heap_start = 0x403000;
  regions.brk = 0x403010;
  EXPECT_EQ(around(regions, 0x403008),
            "; yet 0x403008 lies below the break 0x403010 (the heap from 0x403000, its "
            "regions ending at 0x403000, the break rounded down to a page): brk recorded the "
            "heap short of its break; the heap's region must reach the break rounded up to "
            "a page (0x404000)");
  // At the break and above it the address is no one's: what lies around it, as before.
  EXPECT_EQ(around(regions, 0x403010).find("; the page lies "), 0u) << around(regions, 0x403010);
  // A break two pages up whose heap region stops a page short: not a rounding, a shorter heap.
  regions.brk = 0x405010;
  EXPECT_NE(around(regions, 0x404008).find("(the heap from 0x403000, its regions ending at 0x403000): brk recorded"),
            std::string::npos)
      << around(regions, 0x404008);
}

TEST_F(RegionsTest, ARefusalWithoutOverlapIsNamed) {
  // [top - 3 pages, top - 2 pages) only touches the stack: nothing overlaps it, and this insert()
  // takes it (tried on a copy: the set is unchanged), so the growth asked for was another range.
  Vma part = *regions.vmas.find(kTop - 1);
  part.start = kTop - 3 * kPage;
  part.end = kTop - 2 * kPage;
  const usize before = regions.vmas.size();
  const char* why = refused_without_overlap(regions.vmas, part);
  ASSERT_NE(why, nullptr);
  EXPECT_NE(std::string(why).find("grow_stack() asked the record for another range"), std::string::npos);
  EXPECT_EQ(regions.vmas.size(), before);
  EXPECT_EQ(regions.vmas.find(kTop - 3 * kPage), nullptr);
  // A real overlap: the refusal was right.
  part.end = kTop - kPage;
  EXPECT_EQ(refused_without_overlap(regions.vmas, part), nullptr);
}

TEST_F(RegionsTest, ARegionBetweenTheAddressAndTheStackStopsTheGrowth) {
  ASSERT_TRUE(regions.vmas.insert(Vma{.start = kTop - 4 * kPage, .end = kTop - 3 * kPage, .perms = kRW}).ok());
  EXPECT_EQ(decide_fault(regions, kTop - 5 * kPage, kWrite).cause, FaultCause::NoVma);  // the anonymous region is above
  EXPECT_EQ(decide_fault(regions, kTop - 3 * kPage, kWrite).action, FaultAction::Grow);  // between it and the stack
}

TEST_F(RegionsTest, PagePermsOfARegionAreReadableUserPages) {
  EXPECT_EQ(page_perms_of(regions.vmas.regions()[0]), (Perms{.read = true, .execute = true, .user = true}));
  EXPECT_EQ(page_perms_of(*regions.vmas.find(kTop - 1)), (Perms{.read = true, .write = true, .user = true}));
}

// ---- coverage --------------------------------------------------------------------------------

struct CoverageTest : RegionsTest {
  test::FakeTableMemory<F::kEntriesPerTable> memory;
  AddressSpace kernel = AddressSpace::create_kernel(memory).release_value();

  void SetUp() override {
    RegionsTest::SetUp();
    x86::hw::fake::cpu() = {};
    ASSERT_TRUE(kernel.prepare_kernel_half().ok());
  }
  void TearDown() override { x86::hw::fake::cpu().cr3 = PhysAddr(); }

  std::string problem(AddressSpace& space, usize* pages = nullptr) {
    char buffer[300];
    BufferSink sink(buffer, sizeof buffer);
    return check_coverage(space, regions.vmas, kTop, &sink, pages) ? "" : std::string(buffer);
  }
};

TEST_F(CoverageTest, PagesInTheirRegionsWithTheirPermissionsPass) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  usize pages = 99;
  EXPECT_EQ(problem(user, &pages), "");
  EXPECT_EQ(pages, 0u);
  ASSERT_TRUE(user.map(VirtAddr(0x400000), PhysAddr(0x100000), page_perms_of(*regions.vmas.find(0x400000))).ok());
  ASSERT_TRUE(user.map(VirtAddr(0x402000), PhysAddr(0x101000), page_perms_of(*regions.vmas.find(0x402000))).ok());
  ASSERT_TRUE(user.map(VirtAddr(kTop - kPage), PhysAddr(0x102000), page_perms_of(*regions.vmas.find(kTop - 1))).ok());
  EXPECT_EQ(problem(user, &pages), "");
  EXPECT_EQ(pages, 3u);
}

TEST_F(CoverageTest, APageNoRegionCoversIsNamed) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  ASSERT_TRUE(user.map(VirtAddr(0x400000), PhysAddr(0x100000), page_perms_of(*regions.vmas.find(0x400000))).ok());
  ASSERT_TRUE(user.map(VirtAddr(0x403000), PhysAddr(0x101000), kRW).ok());  // the loader mapped, recorded nothing
  usize pages = 0;
  EXPECT_EQ(problem(user, &pages), "VMA coverage broken: page 0x403000 mapped rw- user to 0x101000: no VMA covers it");
  EXPECT_EQ(pages, 2u);
}

TEST_F(CoverageTest, APageWithOtherPermissionsThanItsRegionIsNamed) {
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  ASSERT_TRUE(user.map(VirtAddr(0x402000), PhysAddr(0x100000), kRW).ok());  // writable, its region is r--
  EXPECT_EQ(problem(user), "VMA coverage broken: page 0x402000 mapped rw- user to 0x100000: other permissions than "
                           "its VMA [0x402000, 0x403000) r-- user image offset 0x2000 file 0x100");
  // A page of a region that allows nothing may never be accessible: it must be held.
  AddressSpace other = AddressSpace::create_user(kernel).release_value();
  ASSERT_TRUE(other.map(VirtAddr(0x10000000), PhysAddr(0x100000), kRO).ok());
  EXPECT_NE(problem(other).find("accessible, but its VMA allows no access (it must be held) [0x10000000, 0x10004000) "
                                "--- user anonymous"),
            std::string::npos)
      << problem(other);
}

TEST_F(CoverageTest, HeldPagesBelongExactlyToRegionsThatAllowNothing) {
  const Vma& none = *regions.vmas.find(0x10000000);
  EXPECT_FALSE(page_perms_of(none).read) << "a PROT_NONE region's pages are held";
  EXPECT_TRUE(page_perms_of(*regions.vmas.find(0x402000)).read);
  AddressSpace user = AddressSpace::create_user(kernel).release_value();
  ASSERT_TRUE(user.map(VirtAddr(0x10001000), PhysAddr(0x100000), page_perms_of(none)).ok());
  const Walk held = user.query(VirtAddr(0x10001000));
  ASSERT_TRUE(held.mapped()) << "a held page still maps its frame for the kernel";
  EXPECT_EQ(held.pa.value(), 0x100000u);
  EXPECT_FALSE(held.perms.read);
  usize pages = 0;
  EXPECT_EQ(problem(user, &pages), "");
  EXPECT_EQ(pages, 1u);
  // The reverse: a held page under a region that allows access.
  AddressSpace other = AddressSpace::create_user(kernel).release_value();
  ASSERT_TRUE(other.map(VirtAddr(0x402000), PhysAddr(0x100000), page_perms_of(none)).ok());
  EXPECT_EQ(problem(other), "VMA coverage broken: page 0x402000 mapped --- user to 0x100000: held (no access), but "
                            "its VMA allows access [0x402000, 0x403000) r-- user image offset 0x2000 file 0x100");
}

}  // namespace
}  // namespace pagoda
