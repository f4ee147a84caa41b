/// @file frame_refs.hpp
/// @brief Reference counts of user frames: how many mappings share each one (lab 6).
///
/// Copy-on-write lets one frame back a page of several address spaces at once. Each mapping
/// holds a reference; the frame goes back to the allocator exactly when its last mapping goes.
/// The counts live in a side table beside the frame allocator's bitmaps, one 16-bit entry per
/// frame from physical 0, holding the references *beyond the first*:
///
///     extra[f]   mappings of frame f      what it means
///     --------   ---------------------    -----------------------------------------------
///       0        1 (or 0 when free)       owned by one mapping: a write fault takes it back
///       1        2                        shared by two roots (after one fork)
///       k        k + 1                    shared k + 1 ways; the last drop() frees it
///
/// Storing the extra references keeps every existing path unchanged: a frame fresh from the
/// allocator already has count 1 without anyone writing to the table, and a frame that was
/// never shared costs nothing. The invariant (checked by the host tests and by the grader,
/// which reads the table from guest RAM) is that a free frame has extra 0.
///
///     share(f):  extra[f] += 1           (fork maps f into a second root)
///     drop(f):   extra[f] == 0 ? last : extra[f] -= 1
///                                        (an unmap; true = the caller frees f now)
#pragma once

#include "lib/result.hpp"
#include "lib/types.hpp"
#include "mm/base/addr.hpp"
#include "mm/base/page.hpp"

namespace pagoda {

class FrameRefs {
 public:
  /// Most mappings one frame may have (a share() past it is Overflow).
  static constexpr u32 kMaxCount = 0x10000;

  /// Entries needed to cover every frame below @p limit.
  static constexpr usize entries_for(PhysAddr limit) { return usize(align_up(limit.value(), kPageSize) / kPageSize); }

  /// Uses @p extra (one entry per frame from physical 0; overwritten with zeros) as the table.
  void init(Span<u16> extra) {
    extra_ = extra.data();
    frames_ = extra.size();
    shared_ = 0;
    for (usize i = 0; i < frames_; ++i) extra_[i] = 0;
  }

  /// The mappings of the allocated frame @p frame (1 for one that was never shared); 0 for an
  /// address the table does not cover.
  u32 count(PhysAddr frame) const {
    const usize f = index(frame);
    return f < frames_ ? u32(extra_[f]) + 1 : 0;
  }

  /// One more mapping of @p frame. InvalidArgument for a misaligned address or one past the
  /// table; Overflow at kMaxCount mappings (nothing changes then).
  [[nodiscard]] Result<void> share(PhysAddr frame) {
    // LAB 6 BEGIN one more mapping of a frame
    const usize f = index(frame);
    if (!frame.is_aligned(kPageSize) || f >= frames_) return Error(Error::InvalidArgument, "not a frame of the table");
    if (u32(extra_[f]) + 1 >= kMaxCount) return Error(Error::Overflow, "too many mappings of one frame");
    if (extra_[f]++ == 0) ++shared_;
    return {};
    // LAB 6 SKELETON
    // (void)frame;
    // return Error(Error::NotImplemented, "lab 6: write FrameRefs::share() in kernel/mm/phys/frame_refs.hpp "
    //                                     "(labs/06-fork/README.md)");
    // LAB 6 END
  }

  /// One mapping of @p frame is gone: true when it was the last one (the caller frees the
  /// frame now), false while other mappings remain. A frame the table does not cover has one
  /// mapping (true).
  [[nodiscard]] bool drop(PhysAddr frame) {
    // LAB 6 BEGIN one mapping fewer; the last one frees the frame
    const usize f = index(frame);
    if (f >= frames_ || extra_[f] == 0) return true;
    if (--extra_[f] == 0) --shared_;
    return false;
    // LAB 6 SKELETON
    // (void)frame;
    // return true;
    // LAB 6 END
  }

  /// Frames with more than one mapping now.
  usize shared_frames() const { return shared_; }
  /// The table (extra references per frame), for reports and for the grader.
  Span<const u16> table() const { return {extra_, frames_}; }

 private:
  static usize index(PhysAddr frame) { return usize(frame.value() / kPageSize); }

  u16* extra_ = nullptr;
  usize frames_ = 0;
  usize shared_ = 0;
};

}  // namespace pagoda
