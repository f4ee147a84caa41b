/// @file runtime.hpp
/// @brief Start-up of the freestanding C++ runtime.
#pragma once

namespace pagoda {

/// Runs the constructors of global objects (.init_array), once, before kmain(). Global
/// constructors do not run by themselves: the boot path calls this explicitly.
void run_global_constructors();

/// True once run_global_constructors() has run (checked by kmain()).
bool global_constructors_ran();

}  // namespace pagoda
