# How freestanding ELFs (kernels, their fixtures, the boot floor, user programs) are linked:
# by ld.lld itself, never through the compiler driver. For a bare target such as
# x86_64-unknown-none-elf, clang's driver hands the link to gcc (which then runs the linker),
# so linking through clang would make g++ a hidden requirement of every build.
#
#   pagoda_freestanding_link_rules()   in the calling directory, executables (C++ or assembly)
#                                      link as `ld.lld <link options> <objects> -o <elf>`;
#                                      their target_link_options are ld.lld's own options
#                                      (`-T script`, `--gc-sections`), not the driver's (`-Wl,`).
#
# A macro, because CMake reads a link rule from the directory that defines the target: the
# rule must be set in that directory's scope (arch/<isa>/, user/), not in a function's.
find_program(PAGODA_LLD NAMES ld.lld REQUIRED)

macro(pagoda_freestanding_link_rules)
  foreach(_pagoda_lang CXX ASM)
    set(CMAKE_${_pagoda_lang}_LINK_EXECUTABLE
        "${PAGODA_LLD} <LINK_FLAGS> <OBJECTS> -o <TARGET> <LINK_LIBRARIES>")
  endforeach()
  # CMake 3.27+ asks the linker for the link's dependencies through the compiler driver
  # (-Xlinker --dependency-file=...): not an ld.lld option, and ld.lld 14 has no such file.
  set(CMAKE_LINK_DEPENDS_USE_LINKER FALSE)
endmacro()
