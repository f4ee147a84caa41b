// Checking an ELF64 executable image (see elf.hpp). Every read goes through a bounds check
// first, every sum through an overflow check; the image is never trusted.
#include "proc/elf.hpp"

namespace pagoda::elf {
namespace {

// ELF constants (the System V ABI's names in comments).
constexpr usize kHeaderSize = 64;         // sizeof(Elf64_Ehdr)
constexpr usize kProgramHeaderSize = 56;  // sizeof(Elf64_Phdr)
constexpr u8 kMagic[4] = {0x7f, 'E', 'L', 'F'};
constexpr usize kClassIndex = 4, kDataIndex = 5, kVersionIndex = 6;  // EI_CLASS, EI_DATA, EI_VERSION
constexpr u8 kClass64 = 2;                                           // ELFCLASS64
constexpr u8 kLittleEndian = 1;                                      // ELFDATA2LSB
constexpr u32 kCurrentVersion = 1;                                   // EV_CURRENT
constexpr u16 kTypeExecutable = 2;                                   // ET_EXEC
constexpr u32 kLoad = 1, kDynamic = 2, kInterpreter = 3, kTls = 7;   // PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_TLS
constexpr u32 kFlagExecute = 1, kFlagWrite = 2, kFlagRead = 4;       // PF_X, PF_W, PF_R

// Field offsets in the ELF header and in a program header.
constexpr usize kType = 16, kMachine = 18, kVersion = 20, kEntry = 24, kPhoff = 32, kPhentsize = 54, kPhnum = 56;
constexpr usize kPType = 0, kPFlags = 4, kPOffset = 8, kPVaddr = 16, kPFilesz = 32, kPMemsz = 40;

/// Little-endian unsigned of @p bytes bytes at @p at; the caller has checked the bounds.
u64 read_le(Span<const u8> image, usize at, usize bytes) {
  u64 value = 0;
  for (usize i = bytes; i > 0; --i) value = (value << 8) | image[at + i - 1];
  return value;
}
u16 read16(Span<const u8> image, usize at) { return u16(read_le(image, at, 2)); }
u32 read32(Span<const u8> image, usize at) { return u32(read_le(image, at, 4)); }
u64 read64(Span<const u8> image, usize at) { return read_le(image, at, 8); }

/// a + b, or false when it does not fit in 64 bits.
bool add(u64 a, u64 b, u64& sum) { return !__builtin_add_overflow(a, b, &sum); }

Rejection reject(ElfError e, i32 header = -1) { return Rejection{e, header}; }

bool target_ok(const Target& t) {
  const bool power_of_two = t.page_size != 0 && (t.page_size & (t.page_size - 1)) == 0;
  return power_of_two && is_aligned(t.user_base, t.page_size) && is_aligned(t.user_end, t.page_size) &&
         t.user_base < t.user_end;
}

/// Reads one PT_LOAD header into @p out and checks its fields on their own (relations between
/// segments come later); the reason it is rejected, or true.
bool check_load(Span<const u8> image, usize at, const Target& target, i32 index, Segment& out, Rejection& why) {
  const auto fail = [&why, index](ElfError e) {
    why = Rejection{e, index};
    return false;
  };
  const u32 flags = read32(image, at + kPFlags);
  out.offset = read64(image, at + kPOffset);
  out.vaddr = read64(image, at + kPVaddr);
  out.filesz = read64(image, at + kPFilesz);
  out.memsz = read64(image, at + kPMemsz);
  out.perms = Perms{.read = (flags & kFlagRead) != 0,
                    .write = (flags & kFlagWrite) != 0,
                    .execute = (flags & kFlagExecute) != 0,
                    .user = true};

  if (out.memsz == 0) return fail(ElfError::EmptySegment);
  if (out.filesz > out.memsz) return fail(ElfError::FileSizeExceedsMemorySize);
  u64 file_end = 0, end = 0;
  if (!add(out.offset, out.filesz, file_end) || !add(out.vaddr, out.memsz, end))
    return fail(ElfError::ArithmeticOverflow);
  if (file_end > image.size()) return fail(ElfError::TruncatedSegment);
  if (out.vaddr % target.page_size != out.offset % target.page_size) return fail(ElfError::MisalignedSegment);
  if (align_down(out.vaddr, target.page_size) < target.user_base) return fail(ElfError::SegmentBelowUserBase);
  if (end > target.user_end) return fail(ElfError::SegmentBeyondUserEnd);  // user_end is page aligned
  if (out.perms.write && out.perms.execute) return fail(ElfError::WritableAndExecutable);
  return true;
}

}  // namespace

const char* error_message(ElfError e) {
  switch (e) {
    case ElfError::InvalidTarget: return "the target is malformed (page size or user range)";
    case ElfError::TruncatedHeader: return "file shorter than an ELF header (64 bytes)";
    case ElfError::BadMagic: return "not an ELF file (bad magic)";
    case ElfError::BadClass: return "not a 64-bit ELF file";
    case ElfError::BadDataEncoding: return "not a little-endian ELF file";
    case ElfError::BadVersion: return "unknown ELF version";
    case ElfError::NotExecutable: return "not an executable (ELF type is not ET_EXEC: an object file or a PIE)";
    case ElfError::WrongMachine: return "built for another machine";
    case ElfError::BadProgramHeaderSize: return "program header size is not 56";
    case ElfError::TooManyProgramHeaders: return "too many program headers";
    case ElfError::TruncatedProgramHeaders: return "program headers extend past the end of the file";
    case ElfError::ArithmeticOverflow: return "an offset or address plus a size overflows 64 bits";
    case ElfError::UnsupportedSegment: return "needs a dynamic linker or thread-local storage";
    case ElfError::TooManySegments: return "too many loadable segments";
    case ElfError::EmptySegment: return "a loadable segment of size 0";
    case ElfError::FileSizeExceedsMemorySize: return "segment's file size exceeds its memory size";
    case ElfError::TruncatedSegment: return "segment's bytes extend past the end of the file";
    case ElfError::MisalignedSegment: return "segment's address and file offset differ modulo the page size";
    case ElfError::SegmentBelowUserBase: return "segment below the lowest user address (the pages around null)";
    case ElfError::SegmentBeyondUserEnd:
      return "segment reaches past the user half (the non-canonical hole or the kernel half)";
    case ElfError::WritableAndExecutable: return "segment both writable and executable (W^X)";
    case ElfError::NoLoadSegment: return "nothing to load (no PT_LOAD segment)";
    case ElfError::SegmentsOverlap: return "two segments touch the same page";
    case ElfError::EntryNotExecutable: return "entry point outside every executable segment";
  }
  return "unknown ELF error";
}

const char* error_name(ElfError e) {
  switch (e) {
    case ElfError::InvalidTarget: return "InvalidTarget";
    case ElfError::TruncatedHeader: return "TruncatedHeader";
    case ElfError::BadMagic: return "BadMagic";
    case ElfError::BadClass: return "BadClass";
    case ElfError::BadDataEncoding: return "BadDataEncoding";
    case ElfError::BadVersion: return "BadVersion";
    case ElfError::NotExecutable: return "NotExecutable";
    case ElfError::WrongMachine: return "WrongMachine";
    case ElfError::BadProgramHeaderSize: return "BadProgramHeaderSize";
    case ElfError::TooManyProgramHeaders: return "TooManyProgramHeaders";
    case ElfError::TruncatedProgramHeaders: return "TruncatedProgramHeaders";
    case ElfError::ArithmeticOverflow: return "ArithmeticOverflow";
    case ElfError::UnsupportedSegment: return "UnsupportedSegment";
    case ElfError::TooManySegments: return "TooManySegments";
    case ElfError::EmptySegment: return "EmptySegment";
    case ElfError::FileSizeExceedsMemorySize: return "FileSizeExceedsMemorySize";
    case ElfError::TruncatedSegment: return "TruncatedSegment";
    case ElfError::MisalignedSegment: return "MisalignedSegment";
    case ElfError::SegmentBelowUserBase: return "SegmentBelowUserBase";
    case ElfError::SegmentBeyondUserEnd: return "SegmentBeyondUserEnd";
    case ElfError::WritableAndExecutable: return "WritableAndExecutable";
    case ElfError::NoLoadSegment: return "NoLoadSegment";
    case ElfError::SegmentsOverlap: return "SegmentsOverlap";
    case ElfError::EntryNotExecutable: return "EntryNotExecutable";
  }
  return "?";
}

void Rejection::format(FormatSink& sink) const {
  if (header >= 0) format_to(sink, "program header {}: ", header);
  format_to(sink, "{}", error_message(error));
}

ParseResult parse_executable(Span<const u8> image, const Target& target) {
  if (!target_ok(target)) return reject(ElfError::InvalidTarget);

  // The ELF header.
  if (image.size() < kHeaderSize) return reject(ElfError::TruncatedHeader);
  for (usize i = 0; i < sizeof kMagic; ++i)
    if (image[i] != kMagic[i]) return reject(ElfError::BadMagic);
  if (image[kClassIndex] != kClass64) return reject(ElfError::BadClass);
  if (image[kDataIndex] != kLittleEndian) return reject(ElfError::BadDataEncoding);
  if (image[kVersionIndex] != kCurrentVersion || read32(image, kVersion) != kCurrentVersion)
    return reject(ElfError::BadVersion);
  if (read16(image, kType) != kTypeExecutable) return reject(ElfError::NotExecutable);
  if (read16(image, kMachine) != u16(target.machine)) return reject(ElfError::WrongMachine);

  // The program header table.
  const u64 phoff = read64(image, kPhoff);
  const usize phnum = read16(image, kPhnum);
  if (phnum == 0) return reject(ElfError::NoLoadSegment);
  if (read16(image, kPhentsize) != kProgramHeaderSize) return reject(ElfError::BadProgramHeaderSize);
  if (phnum > kMaxProgramHeaders) return reject(ElfError::TooManyProgramHeaders);
  u64 table_end = 0;
  if (!add(phoff, phnum * kProgramHeaderSize, table_end)) return reject(ElfError::ArithmeticOverflow);
  if (table_end > image.size()) return reject(ElfError::TruncatedProgramHeaders);

  // Each header on its own.
  Executable exe;
  exe.entry = read64(image, kEntry);
  i32 origin[kMaxSegments];  // the program header each segment came from, for messages
  for (usize i = 0; i < phnum; ++i) {
    const usize at = usize(phoff) + i * kProgramHeaderSize;
    const u32 type = read32(image, at + kPType);
    if (type == kDynamic || type == kInterpreter || type == kTls) return reject(ElfError::UnsupportedSegment, i32(i));
    if (type != kLoad) continue;
    if (exe.count == kMaxSegments) return reject(ElfError::TooManySegments, i32(i));
    Rejection why{ElfError::InvalidTarget};
    if (!check_load(image, at, target, i32(i), exe.segments[exe.count], why)) return why;
    origin[exe.count++] = i32(i);
  }
  if (exe.count == 0) return reject(ElfError::NoLoadSegment);

  // Sorted by address (insertion sort: there are at most kMaxSegments), then page-disjoint.
  for (usize i = 1; i < exe.count; ++i) {
    for (usize j = i; j > 0 && exe.segments[j].vaddr < exe.segments[j - 1].vaddr; --j) {
      const Segment s = exe.segments[j];
      exe.segments[j] = exe.segments[j - 1];
      exe.segments[j - 1] = s;
      const i32 o = origin[j];
      origin[j] = origin[j - 1];
      origin[j - 1] = o;
    }
  }
  for (usize i = 1; i < exe.count; ++i) {
    // Both ends are at most user_end, which is page aligned, so align_up cannot saturate.
    const u64 previous_last_page_end = align_up(exe.segments[i - 1].end(), target.page_size);
    if (align_down(exe.segments[i].vaddr, target.page_size) < previous_last_page_end)
      return reject(ElfError::SegmentsOverlap, origin[i]);
  }

  for (const Segment& s : exe.loads())
    if (s.perms.execute && exe.entry >= s.vaddr && exe.entry < s.end()) return exe;
  return reject(ElfError::EntryNotExecutable);
}

}  // namespace pagoda::elf
