# cmake -P script: installs ewnet (MODE=package) or points at its sources (MODE=subdirectory),
# then configures, builds and runs the consumer project.
file(REMOVE_RECURSE ${WORK})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${err}")
  endif()
endfunction()
set(args -S ${SOURCE}/tests/install/consumer -B ${WORK}/build -G ${GENERATOR} -DCMAKE_BUILD_TYPE=Release
  -DEWNET_CONSUME=${MODE})
if(MODE STREQUAL "package")
  run(${CMAKE_COMMAND} --install ${BUILD} --prefix ${WORK}/prefix --component ewnet)
  list(APPEND args -DCMAKE_PREFIX_PATH=${WORK}/prefix)
else()
  list(APPEND args -DEWNET_SOURCE_DIR=${SOURCE} -DEWNET_BUILD_TESTS=OFF -DEWNET_BUILD_EXAMPLES=OFF
    -DEWNET_BUILD_BENCHMARKS=OFF)
endif()
run(${CMAKE_COMMAND} ${args})
run(${CMAKE_COMMAND} --build ${WORK}/build)
run(${WORK}/build/consumer)
