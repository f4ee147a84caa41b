# What every arch/<isa>/CMakeLists.txt does the same way, so that a port states only what is
# its own (its sources, its ISA flags, the header that defines its page size):
#
#   pagoda_arch_setup(PAGE_HEADER ... PAGE_SHIFT_MACRO ... FLAGS ... [LINKER_DEPENDS ...])
#       makes ld.lld the linker of the arch's directory (cmake/freestanding.cmake), reads the page size from its one definition (PAGODA_PAGE_SIZE, for the ELF segment
#       alignment and the embedded programs), and preprocesses arch/<isa>/kernel.ld into
#       PAGODA_LINKER_SCRIPT (target kernel_linker_script) for the constants it shares with
#       the boot stub and the C++;
#   pagoda_arch_objects(TARGET)        compile flags and include paths of kernel objects;
#   pagoda_arch_kernel(TARGET OUTPUT)  links TARGET as a kernel ELF named OUTPUT in build/<isa>/;
#   pagoda_arch_floor()                the do-nothing kernel `pagoda bench boot` compares against
#                                      (arch/<isa>/floor/floor.S and floor.ld).
#
# The caller's kernel is then: an OBJECT library kernel-objects (compiled once, and linked
# again by the grader's hostile fixtures, cmake/grader_fixtures.cmake) and `kernel` made of it.

# Sets @p out to the page size (hexadecimal) that @p header defines: 1 << the macro @p shift_macro.
# The one reader of the page size's one definition: the kernel's and the user programs' links.
function(pagoda_page_size header shift_macro out)
  file(STRINGS ${header} line REGEX "^#define ${shift_macro} ")
  if(NOT line)
    message(FATAL_ERROR "${header} defines no ${shift_macro}")
  endif()
  string(REGEX REPLACE "^#define ${shift_macro} ([0-9]+).*" "\\1" shift "${line}")
  math(EXPR size "1 << ${shift}" OUTPUT_FORMAT HEXADECIMAL)
  set(${out} ${size} PARENT_SCOPE)
endfunction()

# A macro, so that what it sets (PAGODA_PAGE_SIZE, PAGODA_LINKER_SCRIPT, PAGODA_ARCH_CXX_FLAGS)
# is set in the arch's directory scope.
macro(pagoda_arch_setup)
  cmake_parse_arguments(PAGODA_SETUP "" "PAGE_HEADER;PAGE_SHIFT_MACRO" "FLAGS;LINKER_DEPENDS" ${ARGN})
  pagoda_page_size(${PAGODA_SETUP_PAGE_HEADER} ${PAGODA_SETUP_PAGE_SHIFT_MACRO} PAGODA_PAGE_SIZE)
  set(PAGODA_ARCH_CXX_FLAGS ${PAGODA_SETUP_FLAGS})
  pagoda_freestanding_link_rules()   # the kernel, its fixtures and the floor link with ld.lld

  set(PAGODA_LINKER_SCRIPT ${CMAKE_CURRENT_BINARY_DIR}/kernel.ld)
  add_custom_command(OUTPUT ${PAGODA_LINKER_SCRIPT}
    COMMAND ${CMAKE_CXX_COMPILER} -E -P -undef -nostdinc -x c -I${CMAKE_SOURCE_DIR}
            ${CMAKE_CURRENT_SOURCE_DIR}/kernel.ld -o ${PAGODA_LINKER_SCRIPT}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/kernel.ld ${PAGODA_SETUP_PAGE_HEADER} ${PAGODA_SETUP_LINKER_DEPENDS}
    COMMENT "Preprocessing kernel.ld" VERBATIM)
  add_custom_target(kernel_linker_script DEPENDS ${PAGODA_LINKER_SCRIPT})
endmacro()

function(pagoda_arch_objects target)
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR}/kernel ${CMAKE_SOURCE_DIR}
    ${CMAKE_CURRENT_SOURCE_DIR}/include)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:${PAGODA_KERNEL_CXX_FLAGS} ${PAGODA_ARCH_CXX_FLAGS}>
    $<$<COMPILE_LANGUAGE:ASM>:-Wall -Werror>)
endfunction()

function(pagoda_arch_kernel target output)
  pagoda_arch_objects(${target})
  add_dependencies(${target} kernel_linker_script)
  target_link_options(${target} PRIVATE     # ld.lld's own options (cmake/freestanding.cmake)
    -static -T ${PAGODA_LINKER_SCRIPT}
    --no-dynamic-linker -z max-page-size=${PAGODA_PAGE_SIZE} --build-id=none)
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME ${output}
    SUFFIX ""
    LINKER_LANGUAGE CXX
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}
    LINK_DEPENDS ${PAGODA_LINKER_SCRIPT})
endfunction()

function(pagoda_arch_floor)
  set(dir ${CMAKE_CURRENT_SOURCE_DIR}/floor)
  add_executable(boot-floor ${dir}/floor.S)
  target_include_directories(boot-floor PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_options(boot-floor PRIVATE -static -T ${dir}/floor.ld --build-id=none)
  set_target_properties(boot-floor PROPERTIES
    OUTPUT_NAME boot-floor.elf
    SUFFIX ""
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}
    LINK_DEPENDS ${dir}/floor.ld)
endfunction()
