/// @file cmdline.hpp
/// @brief Reading `key=value` options from the kernel command line.
///
/// The command line is a space-separated list of words; a word `key=value` sets key. The grader
/// uses it to pass the boot token and to choose a self-test, e.g. `token=3f9a1c test=timer`.
#pragma once

#include "lib/result.hpp"
#include "lib/string_view.hpp"

namespace pagoda {

/// The value of the last `key=value` word for @p key, or an empty view with found == false.
struct CmdlineValue {
  StringView value;
  bool found = false;
};
CmdlineValue cmdline_get(StringView cmdline, StringView key);

/// Parses a whole unsigned number: decimal, or hexadecimal with a 0x prefix. Fails with
/// InvalidArgument on anything else (empty, stray characters, overflow).
[[nodiscard]] Result<u64> parse_u64(StringView text);

}  // namespace pagoda
