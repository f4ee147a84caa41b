/// @file elf.hpp
/// @brief The pure half of the ELF loader: check an ELF64 executable image and describe what
///        to load, without touching memory or page tables.
///
/// parse_executable() reads an image (untrusted bytes: every offset, size and address in it may
/// be wrong on purpose) and either returns its load segments and entry point, or names the one
/// reason it is rejected. It never reads outside the image and never overflows; errors are
/// values, never panics. The mapping half (lab 3) maps what it returns.
///
///     ELF header (64 bytes)                          program header (56 bytes each)
///     off size                                       off size
///       0  16  e_ident: 7f 'E' 'L' 'F', class 2        0  4  p_type   (1 = PT_LOAD)
///              (64-bit), data 1 (little-endian),       4  4  p_flags  (4 R, 2 W, 1 X)
///              version 1, ...                          8  8  p_offset  where the bytes are
///      16   2  e_type     2 = ET_EXEC                 16  8  p_vaddr   where they go
///      18   2  e_machine  62 x86_64, 183 AArch64      24  8  p_paddr   (ignored)
///      20   4  e_version  1                           32  8  p_filesz  bytes from the file
///      24   8  e_entry    first instruction           40  8  p_memsz   bytes in memory; the
///      32   8  e_phoff    program headers' offset                      rest reads as zeros
///      52   2  e_ehsize   (ignored)                   48  8  p_align   (ignored: congruence
///      54   2  e_phentsize  56                                         is checked instead)
///      56   2  e_phnum    number of program headers
///
///     one segment in the file and in memory (page = the target's page size):
///
///       file   |<- offset % page ->|<--------- filesz --------->|
///       memory |<- vaddr % page  ->|<--------- filesz --------->|<-- zeros -->|
///              ^ align_down(vaddr)  ^ vaddr                      <-------- memsz -------->
///
/// What an accepted image guarantees, for the loader that maps it:
///   - 1 to kMaxSegments load segments, sorted by address, each with 0 < memsz and
///     filesz <= memsz, its file bytes inside the image, vaddr and offset congruent modulo
///     the page size, and every page it touches inside [user_base, user_end);
///   - no two segments touch the same page, and none is both writable and executable;
///   - the entry point lies inside an executable segment.
#pragma once

#include "lib/format.hpp"
#include "lib/types.hpp"
#include "mm/base/perms.hpp"

namespace pagoda::elf {

/// ELF machine numbers of the ISAs Pagoda runs on.
enum class Machine : u16 {
  X86_64 = 62,    ///< EM_X86_64
  AArch64 = 183,  ///< EM_AARCH64
};

/// What an executable must fit: the kernel's ISA and its user address range (the arch decides
/// them; proc/elf_target.hpp gives the running kernel's).
struct Target {
  Machine machine;
  u64 user_base;  ///< lowest address a segment may touch (page aligned, keeps null unmapped)
  u64 user_end;   ///< one past the highest (page aligned; below any non-canonical hole)
  u64 page_size;  ///< a power of two
};

/// Most load segments an accepted image may have.
inline constexpr usize kMaxSegments = 16;
/// Most program headers (of any type) an accepted image may have.
inline constexpr usize kMaxProgramHeaders = 64;

/// One range to load: [vaddr, vaddr + filesz) from the image at offset, then zeros up to
/// vaddr + memsz.
struct Segment {
  u64 vaddr;
  u64 memsz;
  u64 filesz;
  u64 offset;
  Perms perms;  ///< positive sense, user = true

  u64 end() const { return vaddr + memsz; }
};

/// An accepted executable.
struct Executable {
  u64 entry = 0;
  usize count = 0;
  Segment segments[kMaxSegments] = {};

  /// The load segments, sorted by address.
  Span<const Segment> loads() const { return {segments, count}; }
};

/// Why an image was rejected.
enum class ElfError : u8 {
  InvalidTarget,              ///< the Target itself is malformed (a bug of the caller)
  TruncatedHeader,            ///< shorter than an ELF header
  BadMagic,                   ///< not 7f 'E' 'L' 'F'
  BadClass,                   ///< not ELFCLASS64
  BadDataEncoding,            ///< not little-endian
  BadVersion,                 ///< EI_VERSION or e_version is not 1
  NotExecutable,              ///< e_type is not ET_EXEC (an object file, or position-independent)
  WrongMachine,               ///< e_machine is not the target's
  BadProgramHeaderSize,       ///< e_phentsize is not 56
  TooManyProgramHeaders,      ///< more than kMaxProgramHeaders
  TruncatedProgramHeaders,    ///< the program header table ends past the image
  ArithmeticOverflow,         ///< an offset or address plus a size does not fit in 64 bits
  UnsupportedSegment,         ///< PT_INTERP, PT_DYNAMIC or PT_TLS: nothing here provides them
  TooManySegments,            ///< more than kMaxSegments PT_LOAD headers
  EmptySegment,               ///< a PT_LOAD with p_memsz 0
  FileSizeExceedsMemorySize,  ///< p_filesz > p_memsz
  TruncatedSegment,           ///< p_offset + p_filesz is past the end of the image
  MisalignedSegment,          ///< p_vaddr and p_offset differ modulo the page size
  SegmentBelowUserBase,       ///< a segment touches a page below user_base
  SegmentBeyondUserEnd,       ///< a segment reaches past user_end (the hole, the kernel half)
  WritableAndExecutable,      ///< a segment both writable and executable (W^X)
  NoLoadSegment,              ///< no PT_LOAD at all
  SegmentsOverlap,            ///< two segments touch the same page
  EntryNotExecutable,         ///< e_entry is outside every executable segment
};

/// A sentence for @p e, e.g. "segment both writable and executable (W^X)".
const char* error_message(ElfError e);
/// The enumerator's name, e.g. "WritableAndExecutable" (for tests and logs).
const char* error_name(ElfError e);

/// An error and, when it is about one program header, that header's index.
struct Rejection {
  ElfError error;
  i32 header = -1;  ///< index of the offending program header, or -1

  /// Prints e.g. "program header 2: two segments touch the same page".
  void format(FormatSink& sink) const;
};

/// Either an Executable or a Rejection.
class [[nodiscard]] ParseResult {
 public:
  ParseResult(const Executable& executable) : executable_(executable) {}
  ParseResult(Rejection rejection) : rejection_(rejection), ok_(false) {}

  bool ok() const { return ok_; }
  bool is_error() const { return !ok_; }
  /// The executable; only meaningful when ok(). Keep the result in a variable first: the
  /// segments live inside it (so parse_executable(...).value().loads() does not compile).
  const Executable& value() const& { return executable_; }
  const Executable& value() const&& = delete;
  /// Why the image was rejected; only meaningful when is_error().
  Rejection rejection() const { return rejection_; }
  ElfError error() const { return rejection_.error; }

 private:
  Executable executable_;
  Rejection rejection_{ElfError::InvalidTarget};
  bool ok_ = true;
};

/// Checks @p image as an executable for @p target; see the file comment for what an accepted
/// image guarantees. Reads only inside @p image.
ParseResult parse_executable(Span<const u8> image, const Target& target);

}  // namespace pagoda::elf
