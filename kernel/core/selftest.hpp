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

namespace pagoda {

/// What a self-test gets to work with.
struct SelfTestContext {
  StringView token;       ///< the boot token from the command line (may be empty)
  const BootInfo& boot;   ///< the copied boot information
};

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
#define PAGODA_SELFTEST(ident)                                                              \
  static void pagoda_selftest_##ident(const ::pagoda::SelfTestContext& ctx);               \
  [[gnu::used, gnu::section("pagoda_selftests")]] static constexpr ::pagoda::SelfTest      \
      pagoda_selftest_desc_##ident{#ident, pagoda_selftest_##ident};                        \
  static void pagoda_selftest_##ident([[maybe_unused]] const ::pagoda::SelfTestContext& ctx)
