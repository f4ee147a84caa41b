# Flags shared by every freestanding kernel build, whatever the ISA.
#
#   C++20, no exceptions, no RTTI, no hosted library, no thread-safe statics (there is no
#   runtime to call), frame pointers kept so panic() can walk the stack, and every warning an
#   error. Each arch adds its own ISA flags (code model, no FPU/SIMD registers, ...).
set(PAGODA_KERNEL_CXX_FLAGS
  -std=c++20 -ffreestanding -fno-exceptions -fno-rtti -fno-threadsafe-statics
  -fno-use-cxa-atexit -fno-builtin -nostdinc++ -fno-stack-protector
  -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -fno-pic -fno-pie
  -Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor -Wimplicit-fallthrough
  # Errors record __builtin_FILE() (lib/result.hpp): paths relative to the tree, e.g. kernel/mm/...
  -fmacro-prefix-map=${CMAKE_SOURCE_DIR}/=)

# The kernel's pure, arch-independent sources: they build for the kernel and, unchanged, for the
# host unit tests (kernel/tests/CMakeLists.txt).
set(PAGODA_KERNEL_PURE_SOURCES
  ${CMAKE_SOURCE_DIR}/kernel/lib/format.cpp
  ${CMAKE_SOURCE_DIR}/kernel/core/cmdline.cpp
  ${CMAKE_SOURCE_DIR}/kernel/core/lab.cpp
  ${CMAKE_SOURCE_DIR}/kernel/core/result_panics.cpp
  ${CMAKE_SOURCE_DIR}/kernel/boot/memmap.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/phys/frame_allocator.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/pt/walk.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/space/address_space.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/space/switch_check.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/space/critical_ranges.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/space/debug_roots.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/tempmap/temp_map.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/tempmap/temp_map_report.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/space/vma.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/space/user_regions.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/space/user_regions_report.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/swap/frame_table.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/swap/swapper.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/elf.cpp)

# The arch-independent kernel sources, for every arch's kernel target.
set(PAGODA_KERNEL_GENERIC_SOURCES
  ${PAGODA_KERNEL_PURE_SOURCES}
  ${CMAKE_SOURCE_DIR}/kernel/main/kmain.cpp
  ${CMAKE_SOURCE_DIR}/kernel/core/panic.cpp
  ${CMAKE_SOURCE_DIR}/kernel/core/selftest.cpp
  ${CMAKE_SOURCE_DIR}/kernel/main/runtime.cpp
  ${CMAKE_SOURCE_DIR}/kernel/core/console.cpp
  ${CMAKE_SOURCE_DIR}/kernel/core/cpu.cpp
  ${CMAKE_SOURCE_DIR}/kernel/core/last_failure.cpp
  ${CMAKE_SOURCE_DIR}/kernel/lib/string.cpp
  ${CMAKE_SOURCE_DIR}/kernel/dev/virtio_blk.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/vm.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/window.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/frames.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/fault.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/fault_report.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/swap.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/base/facts.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/heap.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/vm_selftest.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/temp_map_selftest.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/smp_selftest.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/heap_allocator.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/vma_selftest.cpp
  ${CMAKE_SOURCE_DIR}/kernel/mm/swap_disk_selftest.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/programs.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/programs_selftest.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/kernel_stack.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/kernel_stack_report.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/loader.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/process.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/run.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/scheduler.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/syscalls.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/terminal.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/memory_calls.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/temp_map_calls.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/user_memory.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/proc_selftest.cpp
  ${CMAKE_SOURCE_DIR}/kernel/proc/remote_remap_selftest.cpp)
