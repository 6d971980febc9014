# ewnet_add_area_tests: one CTest test per area of a Catch2 program, each running the cases tagged
# [area], so that a log shows each area's outcome. The CUDA tests (tests/cuda) and the GPU check's
# practice run (tests/tools/gpu_practice) register theirs with it, so the practice proves the
# limits the real run has:
#   - `-w NoTests`: Catch2 2.13 exits 0 when a tag matches no test case ("No tests ran"); with it
#     the process fails, so a renamed tag or a dropped file cannot pass as an area that passed;
#   - TIMEOUT: CTest's per-test limit. A TIMEOUT property overrides `ctest --timeout`, so the
#     limit is set here, where it applies.
#   - SKIP_RETURN_CODE 77: a process that finds no device says so and CTest reports it skipped.
#
#   ewnet_add_area_tests(PREFIX cuda COMMAND <program> TIMEOUT <seconds> LABELS cuda AREAS a b ...)
function(ewnet_add_area_tests)
  cmake_parse_arguments(ARG "" "PREFIX;TIMEOUT" "COMMAND;LABELS;AREAS" ${ARGN})
  foreach(area IN LISTS ARG_AREAS)
    add_test(NAME ${ARG_PREFIX}:${area} COMMAND ${ARG_COMMAND} "[${area}]" -w NoTests)
    set_tests_properties(${ARG_PREFIX}:${area} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT ${ARG_TIMEOUT}
                         LABELS "${ARG_LABELS}")
  endforeach()
endfunction()
