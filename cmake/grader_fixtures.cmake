# Hostile kernels for the grader's own tests (grade/harness_tests): each one is this arch's
# kernel objects plus sources from grade/harness_tests/fixtures/<arch>/ (or common/) that replace chosen
# functions through the linker's --wrap (calls to F go to __wrap_F, which may call __real_F).
# Nothing of them is in kernel/ or arch/, so no lab tree a student gets compiles them, and they
# are built only on request (EXCLUDE_FROM_ALL):
#
#     cmake --build --preset x86_64 --target grader-fixtures   ->  build/x86_64/fixtures/<name>.elf
#
# The list of fixtures of an arch is grade/harness_tests/fixtures/<arch>/fixtures.cmake.

# pagoda_grader_fixture(OBJECTS MAKE_KERNEL NAME SOURCES file... WRAP symbol...): one fixture
# kernel, the OBJECTS library's objects plus SOURCES, made a kernel ELF by the arch's function
# MAKE_KERNEL(target output) and linked with --wrap=symbol for each symbol.
function(pagoda_grader_fixture objects make_kernel name)
  cmake_parse_arguments(F "" "" "SOURCES;WRAP" ${ARGN})
  set(fixture_dir ${CMAKE_SOURCE_DIR}/grade/harness_tests/fixtures)
  # a bare file name is in fixtures/<arch>/; one with a directory (common/x.cpp) in fixtures/
  set(sources "")
  foreach(source IN LISTS F_SOURCES)
    if(source MATCHES "/")
      list(APPEND sources ${fixture_dir}/${source})
    else()
      list(APPEND sources ${fixture_dir}/${PAGODA_ARCH}/${source})
    endif()
  endforeach()
  list(TRANSFORM F_WRAP PREPEND "--wrap=")   # ld.lld options (cmake/freestanding.cmake)
  add_executable(fixture-${name} EXCLUDE_FROM_ALL $<TARGET_OBJECTS:${objects}> ${sources})
  cmake_language(CALL ${make_kernel} fixture-${name} ${name}.elf)
  target_include_directories(fixture-${name} PRIVATE ${fixture_dir})
  target_link_options(fixture-${name} PRIVATE ${F_WRAP})
  set_target_properties(fixture-${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fixtures)
  set_property(GLOBAL APPEND PROPERTY PAGODA_GRADER_FIXTURES fixture-${name})
endfunction()

# Defines every fixture of this arch (none when the arch has no list yet) over the kernel's
# OBJECTS library and the arch's MAKE_KERNEL function, and the target `grader-fixtures` that
# builds them all.
function(pagoda_grader_fixtures objects make_kernel)
  set(list ${CMAKE_SOURCE_DIR}/grade/harness_tests/fixtures/${PAGODA_ARCH}/fixtures.cmake)
  if(EXISTS ${list})
    include(${list})   # calls pagoda_grader_fixture(${objects} ${make_kernel} NAME ...)
  endif()
  get_property(all GLOBAL PROPERTY PAGODA_GRADER_FIXTURES)
  add_custom_target(grader-fixtures)
  if(all)
    add_dependencies(grader-fixtures ${all})
  endif()
endfunction()
