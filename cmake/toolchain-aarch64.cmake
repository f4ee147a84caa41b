# Cross toolchain for the AArch64 kernel: clang++ targeting a bare ELF machine, linked by ld.lld.
# The kernel is freestanding, so CMake's compiler probe must not try to link a hosted program.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER clang++)
set(CMAKE_ASM_COMPILER clang)
set(CMAKE_CXX_COMPILER_TARGET aarch64-unknown-none-elf)
set(CMAKE_ASM_COMPILER_TARGET aarch64-unknown-none-elf)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_LINKER ld.lld)
