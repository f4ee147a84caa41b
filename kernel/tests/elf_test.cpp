// The ELF parser (proc/elf.hpp): one hand-made malformed image per rejection, the real user
// programs of both ISAs accepted, and a mutation fuzz loop whose accepted results are checked
// against the guarantees by an independent checker written here.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "proc/elf.hpp"

namespace pagoda::elf {
namespace {

constexpr u64 kPage = 4 * KiB;
constexpr Target kX86{Machine::X86_64, 64 * KiB, (u64{1} << 47) - kPage, kPage};
constexpr Target kArm{Machine::AArch64, 64 * KiB, u64{1} << 48, kPage};

constexpr u32 kLoad = 1, kDynamic = 2, kInterp = 3, kNote = 4, kTls = 7;
constexpr u32 kR = 4, kW = 2, kX = 1;

struct Phdr {
  u32 type = kLoad;
  u32 flags = kR;
  u64 offset = 0, vaddr = 0, paddr = 0, filesz = 0, memsz = 0, align = kPage;
};

/// Writes ELF images field by field, so that each test can break exactly one thing.
struct Builder {
  u8 magic[4] = {0x7f, 'E', 'L', 'F'};
  u8 elf_class = 2, data = 1, ident_version = 1;
  u16 type = 2, machine = 62;
  u32 version = 1;
  u64 entry = 0x400010;
  u64 phoff = 64;
  u16 phentsize = 56;
  int phnum = -1;  // -1: phdrs.size()
  std::vector<Phdr> phdrs;
  u64 size = 0x3010;

  /// A valid program: text r-x, rodata r--, data rw- with bss, like the real ones.
  static Builder valid() {
    Builder b;
    b.phdrs = {{kLoad, kR | kX, 0x1000, 0x400000, 0x400000, 0x100, 0x100},
               {kLoad, kR, 0x2000, 0x401000, 0x401000, 0x80, 0x80},
               {kLoad, kR | kW, 0x3000, 0x402000, 0x402000, 0x10, 0x2000}};
    return b;
  }

  template <class T> static void put(std::vector<u8>& out, u64 at, T value) {
    for (usize i = 0; i < sizeof(T); ++i)
      if (at + i < out.size()) out[at + i] = u8(u64(value) >> (8 * i));
  }

  std::vector<u8> bytes() const {
    std::vector<u8> out(size, 0);
    for (usize i = 0; i < 4; ++i) put<u8>(out, i, magic[i]);
    put<u8>(out, 4, elf_class);
    put<u8>(out, 5, data);
    put<u8>(out, 6, ident_version);
    put<u16>(out, 16, type);
    put<u16>(out, 18, machine);
    put<u32>(out, 20, version);
    put<u64>(out, 24, entry);
    put<u64>(out, 32, phoff);
    put<u16>(out, 52, 64);
    put<u16>(out, 54, phentsize);
    put<u16>(out, 56, u16(phnum >= 0 ? phnum : int(phdrs.size())));
    for (usize i = 0; i < phdrs.size(); ++i) {
      const u64 at = phoff + i * 56;
      if (at > out.size()) break;
      const Phdr& p = phdrs[i];
      put<u32>(out, at + 0, p.type);
      put<u32>(out, at + 4, p.flags);
      put<u64>(out, at + 8, p.offset);
      put<u64>(out, at + 16, p.vaddr);
      put<u64>(out, at + 24, p.paddr);
      put<u64>(out, at + 32, p.filesz);
      put<u64>(out, at + 40, p.memsz);
      put<u64>(out, at + 48, p.align);
    }
    return out;
  }
};

ParseResult parse(const std::vector<u8>& image, const Target& target = kX86) {
  return parse_executable(Span<const u8>(image.data(), image.size()), target);
}

/// Expects @p b to be rejected with @p error (about program header @p header, or none).
void expect_rejected(const Builder& b, ElfError error, int header = -1, const Target& target = kX86) {
  const ParseResult r = parse(b.bytes(), target);
  ASSERT_FALSE(r.ok()) << "accepted; expected " << error_name(error);
  EXPECT_STREQ(error_name(r.error()), error_name(error)) << error_message(r.error());
  EXPECT_EQ(r.rejection().header, header) << error_name(error);
}

TEST(Elf, AcceptsAValidImage) {
  const ParseResult r = parse(Builder::valid().bytes());
  ASSERT_TRUE(r.ok()) << error_message(r.error());
  const Executable& e = r.value();
  EXPECT_EQ(e.entry, 0x400010u);
  ASSERT_EQ(e.count, 3u);
  EXPECT_EQ(e.segments[0].vaddr, 0x400000u);
  EXPECT_EQ(e.segments[0].offset, 0x1000u);
  EXPECT_EQ(e.segments[0].filesz, 0x100u);
  EXPECT_EQ(e.segments[0].memsz, 0x100u);
  EXPECT_EQ(e.segments[0].perms, (Perms{.read = true, .write = false, .execute = true, .user = true}));
  EXPECT_EQ(e.segments[1].perms, (Perms{.read = true, .write = false, .execute = false, .user = true}));
  EXPECT_EQ(e.segments[2].perms, (Perms{.read = true, .write = true, .execute = false, .user = true}));
  EXPECT_EQ(e.segments[2].memsz, 0x2000u);
}

TEST(Elf, SortsSegmentsAndIgnoresOtherHeaderTypes) {
  Builder b = Builder::valid();
  std::swap(b.phdrs[0], b.phdrs[2]);
  b.phdrs.insert(b.phdrs.begin() + 1, Phdr{kNote, kR, 0x2000, 0, 0, 0x10, 0x10});
  const ParseResult r = parse(b.bytes());
  ASSERT_TRUE(r.ok()) << error_message(r.error());
  ASSERT_EQ(r.value().count, 3u);
  EXPECT_EQ(r.value().segments[0].vaddr, 0x400000u);
  EXPECT_EQ(r.value().segments[1].vaddr, 0x401000u);
  EXPECT_EQ(r.value().segments[2].vaddr, 0x402000u);
}

TEST(Elf, AcceptsSegmentsAtTheEdgesOfTheUserRange) {
  Builder b = Builder::valid();
  b.phdrs = {{kLoad, kR | kX, 0x0, kX86.user_base, 0, 0x10, 0x10},
             {kLoad, kR | kW, 0x1000, kX86.user_end - kPage, 0, 0x10, kPage}};
  b.entry = kX86.user_base;
  EXPECT_TRUE(parse(b.bytes()).ok());
}

TEST(Elf, RejectsAMalformedTarget) {
  const Builder b = Builder::valid();
  for (const Target& t :
       {Target{Machine::X86_64, 0, kX86.user_end, 3000}, Target{Machine::X86_64, 100, kX86.user_end, kPage},
        Target{Machine::X86_64, kX86.user_end, kX86.user_base, kPage}, Target{Machine::X86_64, 0, kX86.user_end, 0}})
    expect_rejected(b, ElfError::InvalidTarget, -1, t);
}

TEST(Elf, RejectsATruncatedHeader) {
  Builder b = Builder::valid();
  b.size = 63;
  expect_rejected(b, ElfError::TruncatedHeader);
  b.size = 0;
  expect_rejected(b, ElfError::TruncatedHeader);
}

TEST(Elf, RejectsBadIdentification) {
  for (int i = 0; i < 4; ++i) {
    Builder b = Builder::valid();
    b.magic[i] ^= 0x20;
    expect_rejected(b, ElfError::BadMagic);
  }
  Builder b = Builder::valid();
  b.elf_class = 1;  // ELFCLASS32
  expect_rejected(b, ElfError::BadClass);
  b = Builder::valid();
  b.data = 2;  // big-endian
  expect_rejected(b, ElfError::BadDataEncoding);
  b = Builder::valid();
  b.ident_version = 0;
  expect_rejected(b, ElfError::BadVersion);
  b = Builder::valid();
  b.version = 2;
  expect_rejected(b, ElfError::BadVersion);
}

TEST(Elf, RejectsWhatIsNotAnExecutable) {
  for (u16 type : {0, 1, 3, 4}) {  // none, relocatable, shared object / PIE, core
    Builder b = Builder::valid();
    b.type = type;
    expect_rejected(b, ElfError::NotExecutable);
  }
}

TEST(Elf, RejectsAnotherMachine) {
  Builder b = Builder::valid();
  b.machine = 183;
  expect_rejected(b, ElfError::WrongMachine);
  b.machine = 62;
  expect_rejected(b, ElfError::WrongMachine, -1, kArm);
}

TEST(Elf, RejectsBadProgramHeaderTables) {
  Builder b = Builder::valid();
  b.phentsize = 32;
  expect_rejected(b, ElfError::BadProgramHeaderSize);
  b = Builder::valid();
  b.phnum = int(kMaxProgramHeaders) + 1;
  b.size = 0x10000;
  expect_rejected(b, ElfError::TooManyProgramHeaders);
  b = Builder::valid();
  b.phoff = b.size - 56 * 3 + 1;  // the last header's last byte is past the end
  expect_rejected(b, ElfError::TruncatedProgramHeaders);
  b = Builder::valid();
  b.phoff = ~u64{0} - 100;
  expect_rejected(b, ElfError::ArithmeticOverflow);
}

TEST(Elf, RejectsAnImageWithNothingToLoad) {
  Builder b = Builder::valid();
  b.phdrs.clear();
  expect_rejected(b, ElfError::NoLoadSegment);
  b.phdrs = {Phdr{kNote, kR, 0x2000, 0, 0, 0x10, 0x10}};
  expect_rejected(b, ElfError::NoLoadSegment);
}

TEST(Elf, RejectsSegmentsNothingHereCanProvide) {
  for (u32 type : {kInterp, kDynamic, kTls}) {
    Builder b = Builder::valid();
    b.phdrs.push_back(Phdr{type, kR, 0x2000, 0x401000, 0, 0x10, 0x10});
    expect_rejected(b, ElfError::UnsupportedSegment, 3);
  }
}

TEST(Elf, RejectsTooManySegments) {
  Builder b = Builder::valid();
  b.phdrs.clear();
  for (u64 i = 0; i <= kMaxSegments; ++i)
    b.phdrs.push_back(Phdr{kLoad, kR | kX, 0x1000, 0x400000 + i * kPage, 0, 0x10, 0x10});
  b.entry = 0x400000;
  expect_rejected(b, ElfError::TooManySegments, int(kMaxSegments));
}

TEST(Elf, RejectsMalformedSegments) {
  Builder b = Builder::valid();
  b.phdrs[1].memsz = 0;
  b.phdrs[1].filesz = 0;
  expect_rejected(b, ElfError::EmptySegment, 1);

  b = Builder::valid();
  b.phdrs[2].filesz = b.phdrs[2].memsz + 1;
  expect_rejected(b, ElfError::FileSizeExceedsMemorySize, 2);

  b = Builder::valid();
  b.phdrs[2].filesz = b.size - b.phdrs[2].offset + 1;  // one byte past the end of the file
  expect_rejected(b, ElfError::TruncatedSegment, 2);
  b = Builder::valid();
  b.phdrs[1].offset = b.size + 0x1000;
  b.phdrs[1].vaddr = 0x401000 + 0x0;
  expect_rejected(b, ElfError::TruncatedSegment, 1);

  b = Builder::valid();
  b.phdrs[1].offset = 0x2010;  // vaddr 0x401000: congruent no more
  expect_rejected(b, ElfError::MisalignedSegment, 1);

  b = Builder::valid();
  b.phdrs[2].flags = kR | kW | kX;
  expect_rejected(b, ElfError::WritableAndExecutable, 2);
}

TEST(Elf, RejectsArithmeticOverflowInSegments) {
  Builder b = Builder::valid();
  b.phdrs[2].offset = ~u64{0} - 7;  // offset + filesz (0x10) wraps
  expect_rejected(b, ElfError::ArithmeticOverflow, 2);
  b = Builder::valid();
  b.phdrs[2].vaddr = ~u64{0} - 0xfff;  // vaddr + memsz wraps
  b.phdrs[2].offset = 0x3000;
  b.phdrs[2].memsz = 0x2000;
  expect_rejected(b, ElfError::ArithmeticOverflow, 2);
}

TEST(Elf, RejectsSegmentsOutsideTheUserRange) {
  Builder b = Builder::valid();
  b.phdrs[1].vaddr = 0x1000;  // the pages around null
  b.phdrs[1].offset = 0x2000;
  expect_rejected(b, ElfError::SegmentBelowUserBase, 1);
  b.phdrs[1].vaddr = 0;
  expect_rejected(b, ElfError::SegmentBelowUserBase, 1);

  const u64 outside[] = {
      0xffff'8000'0000'0000ull,  // the kernel half (the physical window)
      0xffff'ffff'8000'0000ull,  // the kernel image
      0x0000'8000'0000'0000ull,  // the non-canonical hole
      kX86.user_end,             // the last page below the hole (x86: kept out of user space)
  };
  for (u64 vaddr : outside) {
    b = Builder::valid();
    b.phdrs[2].vaddr = vaddr;
    b.phdrs[2].memsz = 0x10;
    expect_rejected(b, ElfError::SegmentBeyondUserEnd, 2);
  }
  b = Builder::valid();  // starts inside, reaches past the end
  b.phdrs[2].vaddr = kX86.user_end - kPage;
  b.phdrs[2].memsz = kPage + 1;
  expect_rejected(b, ElfError::SegmentBeyondUserEnd, 2);
}

TEST(Elf, RejectsSegmentsThatShareAPage) {
  Builder b = Builder::valid();
  b.phdrs[1].vaddr = 0x400800;  // in the text's page, at a different offset in the page
  b.phdrs[1].offset = 0x2800;
  expect_rejected(b, ElfError::SegmentsOverlap, 1);

  b = Builder::valid();
  b.phdrs[1].vaddr = 0x400000;  // exactly on top of the text
  expect_rejected(b, ElfError::SegmentsOverlap, 1);

  b = Builder::valid();  // the data segment's bss runs into the next segment's page
  b.phdrs.push_back(Phdr{kLoad, kR, 0x2000, 0x403000, 0, 0x10, 0x10});
  expect_rejected(b, ElfError::SegmentsOverlap, 3);

  b = Builder::valid();  // contained in an earlier, larger segment, listed first
  b.phdrs[0].memsz = 0x10000;
  expect_rejected(b, ElfError::SegmentsOverlap, 1);
}

TEST(Elf, RejectsAnEntryOutsideExecutableSegments) {
  for (u64 entry : {u64{0}, u64{0x401000}, u64{0x402000}, u64{0x400100}, u64{0x3ff000}}) {
    Builder b = Builder::valid();
    b.entry = entry;
    expect_rejected(b, ElfError::EntryNotExecutable);
  }
  Builder b = Builder::valid();
  b.entry = 0x4000ff;  // the last byte of the text
  EXPECT_TRUE(parse(b.bytes()).ok());
}

TEST(Elf, EveryErrorHasADistinctNameAndMessage) {
  std::set<std::string> names, messages;
  for (int e = 0; e <= int(ElfError::EntryNotExecutable); ++e) {
    names.insert(error_name(ElfError(e)));
    messages.insert(error_message(ElfError(e)));
  }
  EXPECT_EQ(names.size(), usize(ElfError::EntryNotExecutable) + 1);
  EXPECT_EQ(messages.size(), usize(ElfError::EntryNotExecutable) + 1);
  EXPECT_EQ(names.count("?"), 0u);
}

TEST(Elf, RejectionPrintsTheHeaderAndTheReason) {
  char buffer[160];
  BufferSink sink(buffer, sizeof buffer);
  Rejection{ElfError::WritableAndExecutable, 2}.format(sink);
  EXPECT_EQ(std::string(buffer), "program header 2: segment both writable and executable (W^X)");
}

// ---- the real programs --------------------------------------------------------------------

std::vector<u8> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<u8>(std::istreambuf_iterator<char>(in), {});
}

std::string program_path(const char* isa, const char* name) {
  return std::string(PAGODA_USER_DIR) + "/" + isa + "/embedded/" + name + ".elf";
}

/// Checks the real @p name of @p isa: accepted for its own target, and laid out as user.ld says.
void expect_real_program_accepted(const char* isa, const char* name, const Target& target) {
  const std::vector<u8> image = read_file(program_path(isa, name));
  ASSERT_GT(image.size(), 64u) << "missing " << program_path(isa, name);
  const ParseResult r = parse(image, target);
  ASSERT_TRUE(r.ok()) << isa << " " << name << ": " << error_message(r.error());
  const Executable& e = r.value();
  ASSERT_EQ(e.count, 3u);
  EXPECT_EQ(e.segments[0].vaddr, 0x400000u);
  EXPECT_EQ(e.entry, 0x400000u) << "_start is the first thing in .text";
  EXPECT_TRUE(e.segments[0].perms.execute && !e.segments[0].perms.write);
  EXPECT_TRUE(!e.segments[1].perms.execute && !e.segments[1].perms.write);
  EXPECT_TRUE(!e.segments[2].perms.execute && e.segments[2].perms.write);
}

TEST(Elf, AcceptsTheRealUserPrograms) {
  for (const char* name : {"hello", "abiprobe"}) {
    expect_real_program_accepted("x86_64", name, kX86);
    expect_real_program_accepted("aarch64", name, kArm);
  }
}

TEST(Elf, RejectsTheRealProgramsOfTheOtherIsa) {
  const std::vector<u8> x86 = read_file(program_path("x86_64", "hello"));
  const std::vector<u8> arm = read_file(program_path("aarch64", "hello"));
  EXPECT_EQ(parse(x86, kArm).error(), ElfError::WrongMachine);
  EXPECT_EQ(parse(arm, kX86).error(), ElfError::WrongMachine);
}

TEST(Elf, EveryPrefixOfARealProgramIsRejectedOrComplete) {
  const std::vector<u8> image = read_file(program_path("x86_64", "hello"));
  ASSERT_FALSE(image.empty());
  u64 needed = 0;  // the end of the last segment's file bytes
  const ParseResult whole = parse(image);
  ASSERT_TRUE(whole.ok());
  for (const Segment& s : whole.value().loads()) needed = std::max(needed, s.offset + s.filesz);
  for (usize n = 0; n < image.size(); ++n) {
    const std::vector<u8> prefix(image.begin(), image.begin() + long(n));  // exact size: ASan sees overreads
    const ParseResult r = parse(prefix);
    EXPECT_EQ(r.ok(), n >= needed) << "prefix of " << n << " bytes";
  }
}

// ---- fuzzing ------------------------------------------------------------------------------

u64 load_le(const std::vector<u8>& image, u64 at, int bytes) {
  u64 v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | image[at + u64(i)];
  return v;
}

/// An independent check of everything an accepted image guarantees (elf.hpp), in 128-bit
/// arithmetic and against the image's own program headers.
::testing::AssertionResult guarantees_hold(const std::vector<u8>& image, const Target& t, const Executable& e) {
  using u128 = unsigned __int128;
  if (e.count == 0 || e.count > kMaxSegments) return ::testing::AssertionFailure() << "count " << e.count;
  std::multiset<std::vector<u64>> headers;  // (offset, vaddr, filesz, memsz) of every PT_LOAD
  const u64 phoff = load_le(image, 32, 8), phnum = load_le(image, 56, 2);
  for (u64 i = 0; i < phnum; ++i)
    if (load_le(image, phoff + i * 56, 4) == kLoad)
      headers.insert({load_le(image, phoff + i * 56 + 8, 8), load_le(image, phoff + i * 56 + 16, 8),
                      load_le(image, phoff + i * 56 + 32, 8), load_le(image, phoff + i * 56 + 40, 8)});
  if (headers.size() != e.count) return ::testing::AssertionFailure() << "segment count differs from PT_LOADs";
  bool entry_ok = false;
  for (usize i = 0; i < e.count; ++i) {
    const Segment& s = e.segments[i];
    if (headers.count({s.offset, s.vaddr, s.filesz, s.memsz}) == 0)
      return ::testing::AssertionFailure() << "invented segment " << i;
    if (s.memsz == 0 || s.filesz > s.memsz) return ::testing::AssertionFailure() << "sizes of " << i;
    if (u128(s.offset) + s.filesz > image.size()) return ::testing::AssertionFailure() << "outside the file " << i;
    if (s.vaddr % t.page_size != s.offset % t.page_size) return ::testing::AssertionFailure() << "congruence " << i;
    if (s.vaddr / t.page_size * t.page_size < t.user_base) return ::testing::AssertionFailure() << "below base " << i;
    if (u128(s.vaddr) + s.memsz > t.user_end) return ::testing::AssertionFailure() << "beyond end " << i;
    if (s.perms.write && s.perms.execute) return ::testing::AssertionFailure() << "W^X " << i;
    if (i > 0) {
      const Segment& p = e.segments[i - 1];
      if (p.vaddr > s.vaddr) return ::testing::AssertionFailure() << "unsorted at " << i;
      const u128 previous_end_page = (u128(p.vaddr) + p.memsz + t.page_size - 1) / t.page_size;
      if (previous_end_page > s.vaddr / t.page_size) return ::testing::AssertionFailure() << "shared page at " << i;
    }
    if (s.perms.execute && e.entry >= s.vaddr && u128(e.entry) < u128(s.vaddr) + s.memsz) entry_ok = true;
  }
  if (!entry_ok) return ::testing::AssertionFailure() << "entry not executable";
  return ::testing::AssertionSuccess();
}

TEST(Elf, MutationFuzzNeverCrashesAndAcceptsOnlyWhatItMay) {
  // Both a hand-made image (more fields near the limits) and the real program.
  const std::vector<std::vector<u8>> seeds = {Builder::valid().bytes(), read_file(program_path("x86_64", "hello"))};
  ASSERT_GT(seeds[1].size(), 64u);
  constexpr int kRounds = 40000;
  // Offsets worth hitting: the header's fields and every byte of three program headers.
  std::vector<u64> fields = {4, 5, 6, 16, 18, 20, 24, 32, 54, 56};
  for (u64 at = 64; at < 64 + 3 * 56; at += 4) fields.push_back(at);
  // clang-format off
  const u64 interesting[] = {0, 1, 0xfff, 0x1000, 0x1001, 0x400000, 0x7fff'ffff'f000ull, 0x8000'0000'0000ull,
                             0xffff'8000'0000'0000ull, ~u64{0}, ~u64{0} - 0xfff, 56, 64, 2, 62, 183};
  // clang-format on
  std::mt19937_64 random(20240611);
  std::map<std::string, int> outcomes;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<u8> image = seeds[usize(round) % seeds.size()];
    const int mutations = 1 + int(random() % 4);
    for (int m = 0; m < mutations; ++m) {
      switch (random() % 5) {
        case 0: image[random() % image.size()] ^= u8(1u << (random() % 8)); break;           // flip a bit
        case 1: image[random() % std::min<usize>(image.size(), 512)] = u8(random()); break;  // a header byte
        case 2: {  // an interesting value into a field, 1, 2, 4 or 8 bytes wide
          const u64 at = fields[random() % fields.size()];
          const int width = 1 << (random() % 4);
          const u64 value = interesting[random() % std::size(interesting)] + (random() % 3) - 1;
          for (int i = 0; i < width && at + u64(i) < image.size(); ++i) image[at + u64(i)] = u8(value >> (8 * i));
          break;
        }
        case 3: image.resize(random() % (image.size() + 1)); break;               // truncate
        case 4: image.resize(image.size() + random() % 64, u8(random())); break;  // extend
      }
      if (image.empty()) image.push_back(0);
    }
    image.shrink_to_fit();  // exact capacity, so ASan catches a read past the end
    for (const Target& t : {kX86, kArm}) {
      const ParseResult r = parse(image, t);
      if (r.ok()) {
        ASSERT_TRUE(guarantees_hold(image, t, r.value())) << "round " << round;
        ++outcomes["accepted"];
      } else {
        ++outcomes[error_name(r.error())];
      }
    }
  }
  // The loop is only worth something if it reached deep into the parser.
  EXPECT_GT(outcomes["accepted"], kRounds / 20);
  EXPECT_GE(outcomes.size(), 15u);
  std::string seen;
  for (const auto& [what, count] : outcomes) seen += what + "=" + std::to_string(count) + " ";
  RecordProperty("outcomes", seen);
  std::printf("fuzz outcomes: %s\n", seen.c_str());
}

}  // namespace
}  // namespace pagoda::elf
