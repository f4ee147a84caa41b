/// @file trap_frame.hpp
/// @brief The register frame aarch64_trap_entry (vectors.S) builds on every exception.
#pragma once

/* Byte offsets, shared with vectors.S (which cannot include C++). */
#define TRAP_FRAME_X0 0
#define TRAP_FRAME_X29 232
#define TRAP_FRAME_SP 248
#define TRAP_FRAME_ELR 256
#define TRAP_FRAME_SPSR 264
#define TRAP_FRAME_ESR 272
#define TRAP_FRAME_FAR 280
#define TRAP_FRAME_KIND 288
#define TRAP_FRAME_RECORD 304
#define TRAP_FRAME_SIZE 320

/* TrapFrame.kind: (origin << 2) | type, the vector's number; TRAP_KIND_LOWER_SYNC is a
   synchronous exception from EL0 (an SVC among them). TRAP_KIND_OVERFLOW is added when the
   entry found the kernel stack overflowed and built the frame on the overflow stack instead
   (vectors.S). */
#define TRAP_KIND_LOWER_SYNC 8
#define TRAP_KIND_OVERFLOW 16

#ifdef __cplusplus
#include "lib/types.hpp"

namespace pagoda::aarch64 {

/// Which of the sixteen vectors was taken: (origin << 2) | type.
enum class VectorOrigin : u64 { CurrentElSp0 = 0, CurrentElSpx = 1, LowerElAarch64 = 2, LowerElAarch32 = 3 };
enum class VectorType : u64 { Synchronous = 0, Irq = 1, Fiq = 2, SError = 3 };

/// Saved state of the interrupted code, lowest address first.
struct TrapFrame {
  u64 x[31];  ///< x0 .. x30 (x29 the frame pointer, x30 the link register)
  u64 sp;     ///< the interrupted stack pointer (SP_EL1, or SP_EL0 from EL0)
  u64 elr;    ///< ELR_EL1: where the exception happened (or returns to)
  u64 spsr;   ///< SPSR_EL1: the interrupted PSTATE
  u64 esr;    ///< ESR_EL1: the syndrome (synchronous exceptions and SErrors)
  u64 far;    ///< FAR_EL1: the faulting address (aborts, alignment faults)
  u64 kind;   ///< the vector: (VectorOrigin << 2) | VectorType
  u64 reserved;
  u64 frame_record[2];  ///< {x29, elr}: backtraces walk on into the interrupted code

  VectorOrigin origin() const { return VectorOrigin((kind >> 2) & 3); }
  /// True when the entry found SP in a kernel stack's guard and built this frame on the
  /// overflow stack (vectors.S): the exception was the overflow, the frame's sp the stack
  /// pointer that ran over.
  bool overflowed() const { return (kind & TRAP_KIND_OVERFLOW) != 0; }
  VectorType type() const { return VectorType(kind & 3); }
  /// The exception level the trap came from (SPSR.M[3:2]).
  u32 from_el() const { return u32((spsr >> 2) & 3); }
};
static_assert(sizeof(TrapFrame) == TRAP_FRAME_SIZE);
static_assert(__builtin_offsetof(TrapFrame, x) + 29 * sizeof(u64) == TRAP_FRAME_X29);
static_assert(__builtin_offsetof(TrapFrame, sp) == TRAP_FRAME_SP);
static_assert(__builtin_offsetof(TrapFrame, elr) == TRAP_FRAME_ELR);
static_assert(__builtin_offsetof(TrapFrame, spsr) == TRAP_FRAME_SPSR);
static_assert(__builtin_offsetof(TrapFrame, esr) == TRAP_FRAME_ESR);
static_assert(__builtin_offsetof(TrapFrame, far) == TRAP_FRAME_FAR);
static_assert(__builtin_offsetof(TrapFrame, kind) == TRAP_FRAME_KIND);
static_assert(__builtin_offsetof(TrapFrame, frame_record) == TRAP_FRAME_RECORD);
static_assert(TRAP_FRAME_SIZE % 16 == 0, "SP must stay 16-byte aligned");

}  // namespace pagoda::aarch64
#endif
