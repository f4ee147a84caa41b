/// @file temp_map_report.cpp
/// @brief The words of the temp-map slots (temp_map.cpp): the slip that broke the slot stack
/// after a push (check_pushed(), called when the quick check after push() fails), and where an
/// address of the temp-map area lies, for the report of a fault there.
#include "mm/tempmap/temp_map.hpp"

#include "core/panic.hpp"

namespace pagoda {
namespace {

using Format = arch::PageTableFormat;

/// The slots of every CPU: the pages of the temp-map area that a slot may use.
constexpr u64 kAreaSlots = TempMapArea::kMaxCpus * TempMapArea::kSlots;

}  // namespace

// The slot stack's bookkeeping, checked outside push() and pop() (an interrupt's guards nest
// inside and are gone again by the time these run): the slot a guard gets is the top of the
// stack and maps its frame; a slot given back is counted free and maps nothing.
void TempMapArea::check_pushed(usize slot, PhysAddr frame) const {
  if (slot >= kSlots) panic("TempMap: push() returned slot {}, but CPU {} has only {} slots", slot, cpu_, kSlots);
  if (slot >= depth_)
    panic("TempMap: push() mapped frame {:#x} in slot {} but never counted the slot taken: the slot stack counts {} "
          "slot(s) taken (depth_), so the next guard (or an interrupt's) is given the same slot and overwrites it "
          "(push must reserve its slot, ++depth_, before writing the entry)",
          frame.value(), slot, depth_);
  if (slot != depth_ - 1)
    panic("TempMap: nesting reused a live slot: push() returned slot {} for frame {:#x} while {} slots are taken and "
          "slot {} (frame {:#x}) is live: a new guard must take the slot above the ones in use (slot depth_), never "
          "one that is live",
          slot, frame.value(), depth_, slot, frames_[slot].value());
  const u64 entry = *entries_[slot];
  if (entry == 0)
    panic("TempMap: push() returned slot {} for frame {:#x}, but the slot's entry ({:p}) is 0 now: either push never "
          "wrote it (or wrote another slot's), or an interrupt's guard was given the same slot while push had written "
          "the entry but not yet counted the slot taken, and cleared the entry when it gave the slot back (push must "
          "reserve its slot, ++depth_, before writing the entry)",
          slot, frame.value(), static_cast<const void*>(entries_[slot]));
  if (!Format::is_present(entry, Format::kLevels - 1) || Format::output_address(entry, Format::kLevels - 1) != frame)
    panic("TempMap: push() returned slot {} for frame {:#x}, but the slot's entry ({:p}) is {:#x}: it does not map "
          "that frame (the entry written is another slot's, or none)",
          slot, frame.value(), static_cast<const void*>(entries_[slot]), entry);
}

bool describe_temp_map_address(FormatSink& sink, VirtAddr va) {
  const u64 base = layout::kTempMapBase;
  if (va.value() < base || va.value() >= layout::kStackBase) return false;
  const u64 index = (va.value() - base) / kPageSize;
  if (index >= kAreaSlots) {
    format_to(sink, "the temp-map area beyond its last slot (never mapped)");
    return true;
  }
  const usize cpu = index / TempMapArea::kSlots;
  const usize slot = index % TempMapArea::kSlots;
  const TempMapArea* area = TempMapArea::current();
  if (area == nullptr || area->slot_address(0).value() != base + cpu * TempMapArea::kSlots * kPageSize) {
    format_to(sink, "temp-map slot {} of CPU {}", slot, cpu);
    return true;
  }
  if (slot < area->depth())
    format_to(sink,
              "temp-map slot {} of CPU {}: live, maps frame {:#x}; its entry is written at {:p} (a walk "
              "that does not end at that entry: the entry is in a table the live root does not use)",
              slot, cpu, area->frame(slot).value(), static_cast<const void*>(area->entries_[slot]));
  else format_to(sink, "temp-map slot {} of CPU {}: free (a pointer kept after its TempMap was released?)", slot, cpu);
  return true;
}

}  // namespace pagoda
