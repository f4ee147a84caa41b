/// @file string.hpp
/// @brief The C memory functions (kernel/lib/string.cpp), declared for the kernel's own calls.
#pragma once

#include "lib/types.hpp"

extern "C" {
void* memcpy(void* dst, const void* src, pagoda::usize n);
void* memmove(void* dst, const void* src, pagoda::usize n);
void* memset(void* dst, int value, pagoda::usize n);
int memcmp(const void* a, const void* b, pagoda::usize n);
}
