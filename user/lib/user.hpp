/// @file user/lib/user.hpp
/// @brief The user library in one include: system calls, print, arguments, proofs.
///
/// A user program is a C++20 file in user/programs/ with
///
///     #include "user/lib/user.hpp"
///     using namespace pagoda;
///     using namespace pagoda::user;
///     int main(int argc, char** argv) { println("hi"); return 0; }
///
/// There is no C library: no malloc, no stdio, no floating point (see user/README.md).
#pragma once

#include "lib/abi.hpp"
#include "lib/proof.hpp"
#include "user/lib/print.hpp"
#include "user/lib/start.hpp"
#include "user/lib/syscalls.hpp"
