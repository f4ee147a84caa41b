#include "mm/heap.hpp"

#include "core/panic.hpp"
#include "lib/facts.hpp"
#include "mm/vm.hpp"

namespace pagoda::heap {
namespace {

constexpr usize kHeaderSize = kBlockHeaderSize;
constexpr u32 kMagicSmall = 0x48504153;  // "SAPH"
constexpr u32 kMagicLarge = 0x4850414c;  // "LAPH"
constexpr u32 kMagicFree = 0x48504146;   // "FAPH": a block on a free list
constexpr usize kMinClassShift = 5;      // 32 bytes
constexpr usize kMaxClassShift = 11;     // 2 KiB
constexpr usize kClasses = kMaxClassShift - kMinClassShift + 1;
constexpr u64 kFrame = kPageSize;

struct Header {
  u32 magic;
  u32 size_class;  ///< small: class index; large: frame count
  u64 requested;   ///< the size asked for (for the byte counter)
};
static_assert(sizeof(Header) == kHeaderSize);

/// A free block, threaded through its own memory.
struct FreeBlock {
  Header header;
  FreeBlock* next;
};

FreeBlock* g_free_lists[kClasses];
Stats g_stats;

// The grader's audit at a failure walks the free lists in guest RAM (grade/pagoda_grade/audit.py).
PAGODA_FACT(heap_magic_small, kMagicSmall)
PAGODA_FACT(heap_magic_large, kMagicLarge)
PAGODA_FACT(heap_magic_free, kMagicFree)
PAGODA_FACT(heap_min_class_shift, kMinClassShift)
PAGODA_FACT(heap_classes, kClasses)
PAGODA_FACT(heap_header_size, kHeaderSize)
PAGODA_FACT(heap_next_offset, offsetof(FreeBlock, next))

constexpr usize block_size(usize size_class) { return usize{1} << (size_class + kMinClassShift); }

/// The smallest class whose blocks hold @p size bytes after the header, or kClasses.
usize class_for(usize size) {
  for (usize c = 0; c < kClasses; ++c)
    if (size + kHeaderSize <= block_size(c)) return c;
  return kClasses;
}

/// Puts @p block, of class @p size_class, on the front of its free list (what free() and
/// refill() do with every block they give to the list).
void push_free(FreeBlock* block, usize size_class) {
  block->header = Header{kMagicFree, u32(size_class), 0};
  block->next = g_free_lists[size_class];
  g_free_lists[size_class] = block;
}

/// Cuts a fresh frame into blocks of @p size_class and puts them on its free list.
Result<void> refill(usize size_class) {
  // LAB 2 BEGIN refill: a frame the window reaches, cut into blocks of the class
  const PhysAddr frame = TRY(vm::frames().allocate_below(vm::reachable_limit()));
  auto* base = static_cast<u8*>(vm::phys_to_ptr(frame, kFrame));
  const usize size = block_size(size_class);
  for (usize off = 0; off + size <= kFrame; off += size)
    push_free(reinterpret_cast<FreeBlock*>(base + off), size_class);
  ++g_stats.frames;
  return {};
  // LAB 2 SKELETON
  // (void)size_class;
  // return Error(Error::NotImplemented, "lab 2: write refill() in kernel/mm/heap.cpp (labs/02-higher-half/README.md)");
  // LAB 2 END
}

/// Debug checks on a small block allocate() is about to hand out, at their producer (a few
/// compares): still on its free list (the next allocation would get it again), a free list whose
/// head is not a free block, a block not at a block's start (refill() cuts each frame, whose window
/// address is frame-aligned, at multiples of the block size), and a block in a frame the frame
/// allocator calls free (refill() cut it past the end of its frame).
void check_handed_out(void* block, usize size_class) {
  auto* header = reinterpret_cast<FreeBlock*>(static_cast<u8*>(block) - kHeaderSize);
  const FreeBlock* head = g_free_lists[size_class];
  if (head == header)
    panic("heap: allocate() handed out block {:p} (class {}, {} bytes) but left it on its free list: the next "
          "allocation of the class gets the same block twice (take it off the list)",
          static_cast<void*>(header), size_class, block_size(size_class));
  if (head != nullptr && head->header.magic != kMagicFree)
    panic("heap: the free list of class {} starts at block {:p}, whose header (magic {:#x}) is not a free block's: a "
          "block in use is still on the free list, or a neighbour wrote past its end over the header",
          size_class, static_cast<const void*>(head), head->header.magic);
  if (reinterpret_cast<u64>(header) % block_size(size_class) != 0)
    panic("heap: allocate() handed out {:p} (class {}), which is not the start of a {}-byte block: the free list holds "
          "a pointer into a block (free() put back the object's address, not its header's?)",
          static_cast<void*>(header), size_class, block_size(size_class));
  const Result<PhysAddr> pa = vm::try_virt_to_phys(VirtAddr(reinterpret_cast<u64>(header)));
  if (!pa.is_error() && vm::frames().check_free(pa.value().align_down(kFrame)) != FreeCheck::Ok)
    panic("heap: allocate() handed out block {:p} (class {}) in frame {:#x}, which the frame allocator does not "
          "hold as allocated: the block lies outside the frames the heap owns (refill() cut a block past the end "
          "of its frame?)",
          static_cast<void*>(header), size_class, pa.value().align_down(kFrame).value());
}

Result<void*> allocate_large(usize size) {
  const usize frames = usize(align_up(size + kHeaderSize, kFrame) / kFrame);
  const PhysAddr first = TRY(vm::frames().allocate_contiguous_below(frames, vm::reachable_limit()));
  auto* header = static_cast<Header*>(vm::phys_to_ptr(first, frames * kFrame));
  *header = Header{kMagicLarge, u32(frames), size};
  g_stats.frames += frames;
  return static_cast<void*>(reinterpret_cast<u8*>(header) + kHeaderSize);
}

}  // namespace

Result<void*> allocate(usize size) {
  if (size == 0) return Error::InvalidArgument;
  if (!vm::ready()) return Error::NoMemory;
  const usize c = class_for(size);
  void* block = nullptr;
  if (c == kClasses) {
    block = TRY(allocate_large(size));
  } else {
    // LAB 2 BEGIN take a block of class c off its free list (refilling the list when empty)
    if (g_free_lists[c] == nullptr) TRY(refill(c));
    FreeBlock* b = g_free_lists[c];
    g_free_lists[c] = b->next;
    b->header = Header{kMagicSmall, u32(c), size};
    block = static_cast<void*>(reinterpret_cast<u8*>(b) + kHeaderSize);
    // LAB 2 SKELETON
    // (void)refill;
    // return Error(Error::NotImplemented, "lab 2: write the small-object path of heap::allocate() in "
    //                                     "kernel/mm/heap.cpp (labs/02-higher-half/README.md)");
    // LAB 2 END
  }
  if (c < kClasses) check_handed_out(block, c);
  ++g_stats.live_allocations;
  g_stats.live_bytes += size;
  return block;
}

void free(void* p) {
  if (p == nullptr) return;
  auto* header = reinterpret_cast<Header*>(static_cast<u8*>(p) - kHeaderSize);
  if (!is_aligned(reinterpret_cast<u64>(p), kHeaderSize) ||
      vm::try_virt_to_phys(VirtAddr(reinterpret_cast<u64>(header))).is_error())
    panic("heap: free of {:p}, which is not a heap address", p);
  if (header->magic == kMagicFree) panic("heap: double free of {:p}", p);
  g_stats.live_bytes -= header->requested;
  --g_stats.live_allocations;
  if (header->magic == kMagicLarge) {
    const PhysAddr first = vm::virt_to_phys(VirtAddr(reinterpret_cast<u64>(header)));
    for (u32 i = 0; i < header->size_class; ++i) vm::frames().free(first.offset(u64(i) * kFrame));
    g_stats.frames -= header->size_class;
    return;
  }
  // LAB 2 BEGIN the small-object path of free(): check the header, then back on the front of its list
  if (header->magic != kMagicSmall || header->size_class >= kClasses)
    panic("heap: free of {:p}: its header is corrupt (magic {:#x})", p, header->magic);
  push_free(reinterpret_cast<FreeBlock*>(header), header->size_class);
  // LAB 2 SKELETON
  // (void)push_free;
  // (void)kMagicSmall;
  // panic("lab 2: write the small-object path of heap::free() in kernel/mm/heap.cpp (labs/02-higher-half/README.md)");
  // LAB 2 END
}

Stats stats() { return g_stats; }

}  // namespace pagoda::heap

/// Where the heap's free lists are (the kernel address of the array of list heads, one per class),
/// for the audit of a failure, which walks them in guest RAM (tools/gdb/pagoda_pt/frames.py).
extern "C" constinit void* pagoda_heap_free_lists = pagoda::heap::g_free_lists;
