# User programs: the user library and the programs of user/programs/, built per ISA as static,
# non-PIE ELF executables, and embedded in the kernel image.
#
#   pagoda_add_user_programs(ISA)            the user library and every program, for ISA;
#                                            target user_programs_<ISA> builds them all into
#                                            build/<preset>/user/<ISA>/<name>.elf (for GDB)
#                                            and .../<ISA>/embedded/<name>.elf (the copy the
#                                            kernel embeds: the same, without debug info)
#   pagoda_embed_user_programs(TARGET ISA)   generates the table name -> bytes and adds it to
#                                            the kernel TARGET (kernel/proc/programs.hpp)
#
# A program is user/programs/<name>.cpp, or a folder user/programs/<name>/ of .cpp files. The
# globs re-run at every build, so a new program is picked up without touching CMake; a changed
# program is relinked and re-embedded. An ISA is user/lib/arch/<ISA>/ (arch.cmake: target
# triple, flags and page-size header; start.cpp: _start; syscall_arch.hpp: the system-call instruction).
# Nothing generated is kept in the source tree: the table is written to build/<preset>/generated.

# The freestanding flags of the kernel, plus what user code needs: no static destructors (a
# process never runs them; its memory simply goes away), sections the linker can drop, and a
# fixed optimisation level so the host build makes the same programs as the kernel build.
set(PAGODA_USER_CXX_FLAGS ${PAGODA_KERNEL_CXX_FLAGS}
  -fno-c++-static-destructors -ffunction-sections -fdata-sections
  -fno-asynchronous-unwind-tables -fno-unwind-tables -O2 -g)

set(PAGODA_USER_LINKER_SCRIPT ${CMAKE_SOURCE_DIR}/user/user.ld)

# The kernel embeds each program without its debug information (the symbol table stays, for
# reports that name user functions); the full ELF beside it is GDB's symbol file.
find_program(PAGODA_OBJCOPY NAMES llvm-objcopy REQUIRED)

# The longest program name the ABI allows, read from the one place that says it.
file(STRINGS ${CMAKE_SOURCE_DIR}/kernel/lib/abi.hpp PAGODA_MAX_PROGRAM_NAME_LINE
     REGEX "kMaxProgramName = [0-9]+")
string(REGEX REPLACE ".*kMaxProgramName = ([0-9]+).*" "\\1" PAGODA_MAX_PROGRAM_NAME
       "${PAGODA_MAX_PROGRAM_NAME_LINE}")
if(NOT PAGODA_MAX_PROGRAM_NAME MATCHES "^[0-9]+$")
  message(FATAL_ERROR "cmake/user.cmake: cannot read kMaxProgramName from kernel/lib/abi.hpp")
endif()

# The ISAs that have a user library (user/lib/arch/<ISA>/).
function(pagoda_user_isas out)
  file(GLOB dirs LIST_DIRECTORIES true ${CMAKE_SOURCE_DIR}/user/lib/arch/*)
  set(isas "")
  foreach(dir IN LISTS dirs)
    if(EXISTS ${dir}/arch.cmake)
      get_filename_component(isa ${dir} NAME)
      list(APPEND isas ${isa})
    endif()
  endforeach()
  set(${out} ${isas} PARENT_SCOPE)
endfunction()

# Applies the user flags of @p isa to @p target; sets PAGODA_USER_TRIPLE and PAGODA_USER_PAGE_SIZE.
function(pagoda_user_flags target isa)
  include(${CMAKE_SOURCE_DIR}/user/lib/arch/${isa}/arch.cmake)
  target_compile_options(${target} PRIVATE --target=${PAGODA_USER_TRIPLE} ${PAGODA_USER_CXX_FLAGS}
                         ${PAGODA_USER_ISA_FLAGS})
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR}/kernel ${CMAKE_SOURCE_DIR}
                             ${CMAKE_SOURCE_DIR}/user/lib/arch/${isa})
  pagoda_page_size(${CMAKE_SOURCE_DIR}/${PAGODA_USER_PAGE_HEADER} ${PAGODA_USER_PAGE_SHIFT_MACRO} page_size)
  set(PAGODA_USER_TRIPLE ${PAGODA_USER_TRIPLE} PARENT_SCOPE)
  set(PAGODA_USER_PAGE_SIZE ${page_size} PARENT_SCOPE)
endfunction()

# Where the build in @p build_dir puts the user programs of @p isa (<name>.elf, embedded/<name>.elf).
function(pagoda_user_program_dir build_dir isa out)
  set(${out} ${build_dir}/user/${isa} PARENT_SCOPE)
endfunction()

function(pagoda_add_user_programs isa)
  if(NOT EXISTS ${CMAKE_SOURCE_DIR}/user/lib/arch/${isa}/arch.cmake)
    message(FATAL_ERROR "no user library for ${isa}: user/lib/arch/${isa}/arch.cmake is missing")
  endif()
  pagoda_user_program_dir(${CMAKE_BINARY_DIR} ${isa} out_dir)

  # The user library: its own start-up and system calls, and the kernel's formatter and
  # memory functions compiled for user mode (one formatter, not two). An object library, so no
  # archive index is needed for a foreign ISA.
  set(lib pagoda_user_${isa})
  add_library(${lib} OBJECT
    ${CMAKE_SOURCE_DIR}/user/lib/start.cpp
    ${CMAKE_SOURCE_DIR}/user/lib/print.cpp
    ${CMAKE_SOURCE_DIR}/user/lib/arch/${isa}/start.cpp
    ${CMAKE_SOURCE_DIR}/kernel/lib/format.cpp
    ${CMAKE_SOURCE_DIR}/kernel/lib/string.cpp)
  pagoda_user_flags(${lib} ${isa})

  file(GLOB entries LIST_DIRECTORIES true CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/user/programs/*)
  set(names "")
  set(all_outputs "")
  foreach(entry IN LISTS entries)
    get_filename_component(name ${entry} NAME_WLE)
    if(IS_DIRECTORY ${entry})
      file(GLOB sources CONFIGURE_DEPENDS ${entry}/*.cpp)
      if(NOT sources)
        continue()
      endif()
    elseif(entry MATCHES "\\.cpp$")
      set(sources ${entry})
    else()
      continue()
    endif()
    string(LENGTH "${name}" length)
    if(NOT name MATCHES "^[a-z][a-z0-9_]*$" OR length GREATER PAGODA_MAX_PROGRAM_NAME)
      message(FATAL_ERROR "user program '${entry}': a name is [a-z][a-z0-9_]* and at most "
                          "${PAGODA_MAX_PROGRAM_NAME} characters (kMaxProgramName)")
    endif()
    if(name IN_LIST names)
      message(FATAL_ERROR "user program '${name}' is defined twice (a .cpp and a folder?)")
    endif()
    set(target user_${name}_${isa})
    add_executable(${target} ${sources} $<TARGET_OBJECTS:${lib}>)
    pagoda_user_flags(${target} ${isa})
    target_link_options(${target} PRIVATE -static -T ${PAGODA_USER_LINKER_SCRIPT} --gc-sections
      -z max-page-size=${PAGODA_USER_PAGE_SIZE} --no-dynamic-linker --build-id=none)   # ld.lld's (freestanding.cmake)
    set_target_properties(${target} PROPERTIES
      OUTPUT_NAME ${name}
      SUFFIX ".elf"
      RUNTIME_OUTPUT_DIRECTORY ${out_dir}
      LINK_DEPENDS ${PAGODA_USER_LINKER_SCRIPT})
    set(embedded ${out_dir}/embedded/${name}.elf)
    add_custom_command(OUTPUT ${embedded}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}/embedded
      COMMAND ${PAGODA_OBJCOPY} --strip-debug $<TARGET_FILE:${target}> ${embedded}
      DEPENDS ${target}
      COMMENT "Stripping ${isa} user program ${name} for embedding")
    list(APPEND names ${name})
    list(APPEND all_outputs ${embedded})
  endforeach()
  list(SORT names)
  add_custom_target(user_programs_${isa} DEPENDS ${all_outputs})
  set_property(GLOBAL PROPERTY PAGODA_USER_PROGRAMS_${isa} ${names})
endfunction()

# Adds to @p target (the kernel) the programs built for @p isa: an assembly file that pulls
# each ELF in with .incbin (aligned to the arch's PAGODA_PAGE_SIZE, cmake/arch_kernel.cmake, so a loader may map its pages in place) and a C++
# table naming them (kernel/proc/programs.hpp). Both are rewritten only when the list of
# programs changes; the assembly is reassembled whenever a program's ELF changes.
function(pagoda_embed_user_programs target isa)
  get_property(names GLOBAL PROPERTY PAGODA_USER_PROGRAMS_${isa})
  set(dir ${CMAKE_BINARY_DIR}/generated)
  set(asm "// Generated by cmake/user.cmake: the user programs of ${isa}, embedded. Do not edit.\n")
  set(cpp "// Generated by cmake/user.cmake: the table of embedded user programs. Do not edit.\n")
  string(APPEND cpp "#include \"proc/programs.hpp\"\n\n")
  set(entries "")
  set(elfs "")
  pagoda_user_program_dir(${CMAKE_BINARY_DIR} ${isa} out_dir)
  foreach(name IN LISTS names)
    set(elf ${out_dir}/embedded/${name}.elf)
    list(APPEND elfs ${elf})
    string(APPEND asm
      "    .section .rodata.pagoda_program.${name}, \"a\"\n"
      "    .balign ${PAGODA_PAGE_SIZE}\n"
      "    .globl pagoda_program_${name}_begin, pagoda_program_${name}_end\n"
      "pagoda_program_${name}_begin:\n"
      "    .incbin \"${elf}\"\n"
      "pagoda_program_${name}_end:\n")
    string(APPEND cpp "extern \"C\" const pagoda::u8 pagoda_program_${name}_begin[];\n"
                      "extern \"C\" const pagoda::u8 pagoda_program_${name}_end[];\n")
    string(APPEND entries
      "    {\"${name}\", pagoda_program_${name}_begin, pagoda_program_${name}_end},\n")
  endforeach()
  string(APPEND cpp "\nnamespace pagoda {\n")
  if(names)
    string(APPEND cpp "namespace {\nconstinit const EmbeddedProgram kPrograms[] = {\n${entries}};\n}\n"
                      "Span<const EmbeddedProgram> embedded_programs() { return kPrograms; }\n")
  else()
    string(APPEND cpp "Span<const EmbeddedProgram> embedded_programs() { return {}; }\n")
  endif()
  string(APPEND cpp "}  // namespace pagoda\n")
  file(GENERATE OUTPUT ${dir}/embedded_programs.S CONTENT "${asm}")
  file(GENERATE OUTPUT ${dir}/embedded_programs.cpp CONTENT "${cpp}")
  set_source_files_properties(${dir}/embedded_programs.S PROPERTIES GENERATED TRUE OBJECT_DEPENDS "${elfs}")
  set_source_files_properties(${dir}/embedded_programs.cpp PROPERTIES GENERATED TRUE)
  target_sources(${target} PRIVATE ${dir}/embedded_programs.S ${dir}/embedded_programs.cpp)
  add_dependencies(${target} user_programs_${isa})
endfunction()
