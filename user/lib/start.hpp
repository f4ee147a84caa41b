/// @file user/lib/start.hpp
/// @brief What a user program learns at start-up: its arguments and the boot token.
///
/// _start (user/lib/arch/ISA/start.cpp) passes argc and argv to the generic start-up, which
/// runs the global constructors, records the arguments, calls `int main(int argc, char** argv)`
/// and ends the process with main's return value.
#pragma once

#include "lib/string_view.hpp"
#include "lib/types.hpp"

namespace pagoda::user {

/// The number of arguments the kernel passed.
int argc();
/// Argument @p i (0 <= i < argc()), or an empty view.
StringView arg(int i);
/// The boot token (the value of the argument `token=...`), empty when there is none. User
/// programs print proof(token(), value) so that the grader can check the value (lib/proof.hpp).
StringView token();
/// Whether the grader runs this program: it has a boot token (the grader gives every boot one;
/// a plain ./pagoda run never does). Programs then add proofs to their lines (proof_note(), print.hpp);
/// at the shell they print what a user expects.
bool grading();
/// Argument @p i as a number (decimal, or hexadecimal with 0x), or @p fallback when there is no
/// such argument or it is not a number.
u64 arg_number(int i, u64 fallback);
/// @p text as a number (decimal, or hexadecimal with 0x); false when it is not one.
bool parse_number(StringView text, u64& value);

}  // namespace pagoda::user
