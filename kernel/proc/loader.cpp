// The mapping half of the ELF loader (see loader.hpp).
#include "proc/loader.hpp"

#include "core/lab.hpp"
#include "core/stop.hpp"
#include "lib/facts.hpp"
#include "lib/string.hpp"
#include "mm/vm.hpp"
#include "proc/elf.hpp"
#include "proc/elf_target.hpp"
#include "proc/user_memory.hpp"

namespace pagoda::proc {
namespace {

constexpr Perms kUserStack{.read = true, .write = true, .execute = false, .user = true};
constexpr u64 kStackAlign = 16;

PAGODA_FACT(user_stack_limit, kUserStackLimit)
PAGODA_FACT(user_stack_pages, kUserStackPages)
PAGODA_FACT(user_stack_gap, kUserStackGap)

/// A zeroed frame for user memory (vm::allocate_user_frame(): above the kernel's window when
/// there is RAM there). The kernel writes it through the window or a temporary mapping
/// (vm::write_frame()), never through the target space, which is usually not the live one.
Result<PhysAddr> zeroed_frame() {
  TRY(vm::make_user_room(1));  // lab 7: under the cap on resident user frames
  const PhysAddr pa = TRY(vm::allocate_user_frame());
  vm::zero_frame(pa);
  return pa;
}

/// Lab 3's loader, what the lab-5 skeleton keeps: maps every page of segment @p s at once, each a
/// fresh frame with the file bytes copied in (the rest zero: the bss, and the ends of the first
/// and last pages), with the segment's permissions, recording nothing.
[[maybe_unused]] Result<void> map_segment_eagerly(AddressSpace& space, Span<const u8> image, const elf::Segment& s) {
  // LAB 3 BEGIN map one ELF segment: a zeroed frame per page, the file's bytes, its permissions
  const u64 file_end = s.vaddr + s.filesz;
  // A page the MMU uses is readable: an execute-only or write-only segment is mapped readable
  // too; only a segment that allows nothing gets held pages (Perms::read false).
  Perms perms = s.perms;
  perms.read = perms.read || perms.write || perms.execute;
  for (u64 page = align_down(s.vaddr, kPageSize); page < s.end(); page += kPageSize) {
    const PhysAddr frame = TRY(zeroed_frame());
    // The part of the file that lands in this page (none for a page of bss only).
    const u64 from = max(page, s.vaddr), to = min(page + kPageSize, file_end);
    if (from < to) vm::write_frame(frame, from - page, image.data() + s.offset + (from - s.vaddr), to - from);
    const Result<void> mapped = space.map(VirtAddr(page), frame, perms);
    if (mapped.is_error()) {
      vm::frames().free(frame);
      return mapped;
    }
  }
  return {};
  // LAB 3 SKELETON
  // (void)space;
  // (void)image;
  // (void)s;
  // return Error(Error::NotImplemented, "lab 3: write map_segment_eagerly() in kernel/proc/loader.cpp "
  //                                     "(labs/03-process-roots/README.md)");
  // LAB 3 END
}

/// Lab 3's stack, what the lab-5 skeleton keeps: every page below the arguments' page mapped at
/// once, read-write, never executable, recording nothing.
[[maybe_unused]] Result<void> map_stack_eagerly(AddressSpace& space) {
  // LAB 3 BEGIN map the user stack below its top page
  for (u64 va = kUserStackBottom; va < kUserStackTop - kPageSize; va += kPageSize) {
    const PhysAddr frame = TRY(zeroed_frame());
    const Result<void> mapped = space.map(VirtAddr(va), frame, kUserStack);
    if (mapped.is_error()) {
      vm::frames().free(frame);
      return mapped;
    }
  }
  return {};
  // LAB 3 SKELETON
  // (void)space;
  // return Error(Error::NotImplemented, "lab 3: write map_stack_eagerly() in kernel/proc/loader.cpp "
  //                                     "(labs/03-process-roots/README.md)");
  // LAB 3 END
}

/// What load_stack() was doing when mapping the top page failed (load_program() adds who was there first).
constexpr const char* kTopPageStep = "mapping the user stack's top page (the arguments' page)";

/// copy_to_space(), with the cause added when it refuses a range that @p space's own tables
/// map user-writable page by page: the copy looked the pages up elsewhere (the live root's
/// tables: a space being loaded is not live), not in the space it writes.
Result<void> write_space(AddressSpace& space, u64 va, const void* src, usize size) {
  const Result<void> done = copy_to_space(space, va, src, size);
  if (!done.is_error() || !(done.error() == Error::InvalidArgument) || size == 0) return done;
  for (u64 page = align_down(va, kPageSize); page < va + size; page += kPageSize) {
    const Walk walk = space.query(VirtAddr(page));
    if (!walk.mapped() || !walk.perms.user || !walk.perms.write) return done;
  }
  return done.error().noted("yet this space's own tables map every page of the range rw- user: copy_to_space() "
                            "looked the pages up in other tables (the live root's; a space being loaded is not "
                            "live), not in the space it writes (space.query())");
}

/// Maps the stack's top page and writes @p args in it; the entry's sp, argc and argv.
Result<arch::UserEntry> load_stack(AddressSpace& space, Span<const StringView> args) {
  if (args.size() > abi::kMaxArgs) return Error(Error::Overflow, "too many arguments (abi::kMaxArgs)");
  u64 bytes = 0;
  for (const StringView a : args) bytes += a.size() + 1;
  if (bytes > abi::kMaxArgBytes) return Error(Error::Overflow, "the arguments are too long (abi::kMaxArgBytes)");

  const u64 top_page = kUserStackTop - kPageSize;
  const PhysAddr top_frame = TRY_DURING(zeroed_frame(), kTopPageStep, top_page);
  Result<void> mapped = vm::can_record_mapping()
                            ? space.map(VirtAddr(top_page), top_frame, kUserStack)
                            : Result<void>(Error(Error::NoMemory, "the reverse map has no free node"));
  if (mapped.is_error()) {
    vm::frames().free(top_frame);
    return mapped.error().during(kTopPageStep, top_page);
  }
  MUST(vm::note_user_page(space, VirtAddr(top_page)));  // lab 7: the reverse map (a node was free)
  // Everything goes in the top page: strings from the top down, then argv[] below them. The
  // space is not live (the kernel's root is, or the root of the process that spawns this one):
  // the bytes go through its own tables and a temporary mapping of the frame (copy_to_space()),
  // never through their user address, which the live root translates.
  u64 strings = kUserStackTop;
  u64 pointers[abi::kMaxArgs + 1] = {};
  for (usize i = args.size(); i-- > 0;) {
    strings -= args[i].size() + 1;
    // (its NUL: the frame is zeroed)
    TRY_DURING(write_space(space, strings, args[i].data(), args[i].size()), "writing an argument string", strings);
    pointers[i] = strings;
  }
  const u64 argv = align_down(strings - (args.size() + 1) * sizeof(u64), kStackAlign);
  TRY_DURING(write_space(space, argv, pointers, (args.size() + 1) * sizeof(u64)), "writing argv[]", argv);
  return arch::UserEntry{.pc = 0, .sp = argv, .argc = args.size(), .argv = argv};
}

/// @p error from load_stack(), with who had mapped its page first when the page was taken: the
/// space itself, when it mapped user pages before loading began (@p was_empty false), a load
/// segment of @p exe that reaches it, or (none does) an earlier mapping of the stack's own pages,
/// which must stop below the top page: that page is the arguments' alone.
Error stack_refused(const elf::Executable& exe, const Error& error, bool was_empty) {
  if (!(error == Error::AlreadyExists) || !error.has_address) return error;
  if (!was_empty)
    return error.noted("the space already mapped user pages before loading began: the program is being loaded "
                       "into a space that is not new (a loader, or exec, must load into a fresh space)");
  for (const elf::Segment& s : exe.loads())
    if (error.address >= align_down(s.vaddr, kPageSize) && error.address < align_up(s.end(), kPageSize))
      return error.noted("a load segment of the program covers that page: the image reaches the stack's top page");
  if (error.address >= kUserStackBottom && error.address < kUserStackTop)
    return error.noted("no load segment covers it: the stack's own pages were mapped up to and including the "
                       "top page (an eager stack mapping must stop below it: the top page holds the arguments)");
  return error.noted("no load segment and no stack page covers it: an earlier step of the start mapped it");
}

}  // namespace

Vma segment_vma(Span<const u8> image, const elf::Segment& s) {
  // LAB 5 BEGIN the region of one load segment: whole pages, its file offset and file bytes
  const u64 start = align_down(s.vaddr, kPageSize);
  return Vma{.start = start,
             .end = align_up(s.end(), kPageSize),
             .perms = s.perms,
             .kind = VmaKind::Image,
             .source = image.data(),
             // The parser proved vaddr and offset equal modulo the page size, so the page below
             // vaddr starts (vaddr - start) bytes before the segment in the file.
             .offset = s.filesz == 0 ? align_down(s.offset, kPageSize) : s.offset - (s.vaddr - start),
             .file_size = s.filesz == 0 ? 0 : s.vaddr + s.filesz - start};
  // LAB 5 SKELETON
  // (void)image;
  // (void)s;
  // (void)lab_not_done("lab 5: write segment_vma() in kernel/proc/loader.cpp (labs/05-vmas/README.md)");
  // return Vma{};
  // LAB 5 END
}

[[PAGODA_STOP(load_program)]] Result<arch::UserEntry> load_program(AddressSpace& space, UserRegions& regions,
                                                                   Span<const u8> image, Span<const StringView> args) {
  const elf::ParseResult parsed = elf::parse_executable(image, elf::kernel_target());
  if (parsed.is_error()) return Error(Error::InvalidArgument, elf::error_message(parsed.error()));
  const elf::Executable& exe = parsed.value();
  // Whether the space maps no user page yet (a refusal below names a space that is not new).
  AddressSpace::ReadCursor probe = space.read_cursor(VirtAddr(0));
  const bool was_empty = !probe.next_mapped(VirtAddr(kUserStackTop));
  // Everything is recorded before anything is mapped: the regions are the truth, the page
  // tables their cache.
  // LAB 5 BEGIN record every segment, the heap and the stack as VMAs; map nothing eagerly
  u64 image_end = 0;
  for (const elf::Segment& s : exe.loads()) {
    TRY(regions.vmas.insert(segment_vma(image, s)));
    image_end = max(image_end, align_up(s.end(), kPageSize));
  }
  regions.heap_start = regions.brk = image_end;
  regions.stack_limit = kUserStackLimit;
  regions.stack_gap = kUserStackGap;
  TRY(regions.vmas.insert(Vma{.start = kUserStackBottom,
                              .end = kUserStackTop,
                              .perms = kUserStack,
                              .kind = VmaKind::Stack,
                              .flags = kVmaGrowsDown}));
  // LAB 5 SKELETON
  // // Lab 4's loader: everything mapped at once, nothing recorded (lab 5: record the segments, the
  // // heap and the stack in load_program(), kernel/proc/loader.cpp; labs/05-vmas/README.md). It
  // // prints nothing: lab 3's tests want only their own lines while processes run, and the lab-5
  // // grade names load_program() from what it finds mapped before a process runs.
  // (void)regions;
  // for (const elf::Segment& s : exe.loads()) TRY(map_segment_eagerly(space, image, s));
  // TRY(map_stack_eagerly(space));
  // LAB 5 END
  Result<arch::UserEntry> stacked = load_stack(space, args);
  if (stacked.is_error()) return stack_refused(exe, stacked.error(), was_empty);
  arch::UserEntry entry = stacked.release_value();
  entry.pc = exe.entry;
  return entry;
}

}  // namespace pagoda::proc
