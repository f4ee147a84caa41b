// The mapping half of the ELF loader (see loader.hpp).
#include "proc/loader.hpp"

#include "lib/string.hpp"
#include "mm/vm.hpp"
#include "proc/elf.hpp"
#include "proc/elf_target.hpp"

namespace pagoda::proc {
namespace {

constexpr Perms kUserStack{.read = true, .write = true, .execute = false, .user = true};
constexpr u64 kStackAlign = 16;

/// A zeroed frame for user memory (vm::allocate_user_frame(): above the kernel's window when
/// there is RAM there). The kernel writes it through the window or a temporary mapping
/// (vm::write_frame()), never through the target space, which is usually not the live one.
Result<PhysAddr> zeroed_frame() {
  const PhysAddr pa = TRY(vm::allocate_user_frame());
  vm::zero_frame(pa);
  return pa;
}

/// Maps @p frame at @p va in @p space, or frees it.
Result<void> map_or_free(AddressSpace& space, u64 va, PhysAddr frame, Perms perms) {
  const Result<void> mapped = space.map(VirtAddr(va), frame, perms);
  if (mapped.is_error()) vm::frames().free(frame);
  return mapped;
}

Result<void> load_segment(AddressSpace& space, Span<const u8> image, const elf::Segment& s) {
  const u64 file_end = s.vaddr + s.filesz;
  for (u64 page = align_down(s.vaddr, kPageSize); page < s.end(); page += kPageSize) {
    const PhysAddr frame = TRY(zeroed_frame());
    // The file bytes that fall in this page; the rest of it stays zero (the bss tail).
    const u64 from = max(page, s.vaddr), to = min(page + kPageSize, file_end);
    if (from < to) vm::write_frame(frame, from - page, image.data() + s.offset + (from - s.vaddr), to - from);
    TRY(map_or_free(space, page, frame, s.perms));
  }
  return {};
}

/// Maps the stack and writes @p args at its top; the entry's sp, argc and argv.
Result<arch::UserEntry> load_stack(AddressSpace& space, Span<const StringView> args) {
  if (args.size() > abi::kMaxArgs) return Error(Error::Overflow, "too many arguments (abi::kMaxArgs)");
  u64 bytes = 0;
  for (const StringView a : args) bytes += a.size() + 1;
  if (bytes > abi::kMaxArgBytes) return Error(Error::Overflow, "the arguments are too long (abi::kMaxArgBytes)");

  PhysAddr top_frame;
  for (u64 va = kUserStackBottom; va < kUserStackTop; va += kPageSize) {
    const PhysAddr frame = TRY(zeroed_frame());
    TRY(map_or_free(space, va, frame, kUserStack));
    if (va + kPageSize == kUserStackTop) top_frame = frame;
  }
  // Everything goes in the top page: strings from the top down, then argv[] below them.
  const u64 page_va = kUserStackTop - kPageSize;
  const auto put = [&](u64 va, const void* src, usize size) { vm::write_frame(top_frame, va - page_va, src, size); };
  u64 strings = kUserStackTop;
  u64 pointers[abi::kMaxArgs + 1] = {};
  for (usize i = args.size(); i-- > 0;) {
    strings -= args[i].size() + 1;
    put(strings, args[i].data(), args[i].size());
    pointers[i] = strings;
  }
  const u64 argv = align_down(strings - (args.size() + 1) * sizeof(u64), kStackAlign);
  put(argv, pointers, (args.size() + 1) * sizeof(u64));
  return arch::UserEntry{.pc = 0, .sp = argv, .argc = args.size(), .argv = argv};
}

}  // namespace

Result<arch::UserEntry> load_program(AddressSpace& space, Span<const u8> image, Span<const StringView> args) {
  const elf::ParseResult parsed = elf::parse_executable(image, elf::kernel_target());
  if (parsed.is_error()) return Error(Error::InvalidArgument, elf::error_message(parsed.error()));
  const elf::Executable& exe = parsed.value();
  for (const elf::Segment& s : exe.loads()) TRY(load_segment(space, image, s));
  arch::UserEntry entry = TRY(load_stack(space, args));
  entry.pc = exe.entry;
  return entry;
}

}  // namespace pagoda::proc
