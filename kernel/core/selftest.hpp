/// @file selftest.hpp
/// @brief In-kernel self-tests, chosen by the grader with `test=NAME` on the command line.
///
/// A self-test exercises one behaviour and prints milestones the grader checks. It either
/// returns (the kernel then shuts down with success) or ends the machine itself, e.g. through
/// an exception report and panic. Each self-test registers itself where it is defined:
///
///     PAGODA_SELFTEST(timer) { ... ctx.token ... }
///
/// The descriptors are collected by the linker into one table (section pagoda_selftests), so
/// each lab's file adds its own tests without a central list to edit.
#pragma once

#include "boot/bootinfo.hpp"
#include "lib/string_view.hpp"
#include "lib/types.hpp"

namespace pagoda {

/// What a self-test gets to work with.
struct SelfTestContext {
  StringView token;      ///< the boot token from the command line (may be empty)
  const BootInfo& boot;  ///< the copied boot information

  /// The number given as `key=NUMBER` on the command line, where the grader puts the inputs it
  /// chooses at run time (an address to fault on, a seed, a count), or @p fallback when there is
  /// none (a person running the self-test by hand). Panics on a malformed number.
  u64 arg(StringView key, u64 fallback) const;
};

/// @name Inputs chosen while the guest runs
/// Some inputs depend on what the grader sees in the live machine (an address its own walk of the
/// active root finds unmapped, say). A self-test asks for them with await_grader_inputs(): the
/// grader has a breakpoint on pagoda_grader_stop(), looks at the stopped guest, writes the values
/// into pagoda_grader_inbox and lets it go on (grade/pagoda_grade/witness.py, Guest.deliver).
/// @{
inline constexpr usize kGraderInboxSize = 16;
struct GraderInbox {
  u64 count;  ///< how many values the grader wrote (0: none)
  u64 values[kGraderInboxSize];
};
extern "C" volatile GraderInbox pagoda_grader_inbox;
/// Where the grader's breakpoint stops the guest; does nothing by itself.
extern "C" void pagoda_grader_stop();
/// Where the grader may stop the guest in the middle of a self-test's work, to look at it from
/// outside (e.g. while the frame test has all its pages mapped); @p a, @p b, @p c tell the grader
/// what it is looking at (each self-test says what they mean). Does nothing by itself.
///
/// These stops live in a page of their own: QEMU runs the code sharing a page with a
/// breakpoint one instruction at a time, so a breakpoint next to a hot loop slows it tenfold.
extern "C" void pagoda_grader_checkpoint(u64 a, u64 b, u64 c);
/// Stops for the grader and returns how many values it delivered into pagoda_grader_inbox: 0 when
/// the self-test does not run under the grader (then it uses inputs of its own).
usize await_grader_inputs();
/// @}

/// One registered self-test.
struct SelfTest {
  const char* name;
  void (*run)(const SelfTestContext& ctx);
};

/// Runs the self-test called @p name and shuts down; panics, listing the known names, when
/// there is none by that name.
[[noreturn]] void run_selftest(StringView name, const SelfTestContext& ctx);

}  // namespace pagoda

/// Defines and registers the self-test @p ident (the name used on the command line).
#define PAGODA_SELFTEST(ident)                                                        \
  static void pagoda_selftest_##ident(const ::pagoda::SelfTestContext& ctx);          \
  [[gnu::used, gnu::section("pagoda_selftests")]] static constexpr ::pagoda::SelfTest \
      pagoda_selftest_desc_##ident{#ident, pagoda_selftest_##ident};                  \
  static void pagoda_selftest_##ident([[maybe_unused]] const ::pagoda::SelfTestContext& ctx)
