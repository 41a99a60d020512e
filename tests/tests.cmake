# Tests (ctest). Unit tests: tests/unit/test_<name>.c -> unit.<name>.
# The Kafka tests need librdkafka's mock cluster header (Debian's librdkafka-dev has it).
include(CheckIncludeFiles)
set(CMAKE_REQUIRED_INCLUDES ${RDKAFKA_INCLUDE_DIRS})
check_include_files("librdkafka/rdkafka.h;librdkafka/rdkafka_mock.h" SP_HAVE_RDKAFKA_MOCK)
unset(CMAKE_REQUIRED_INCLUDES)
file(GLOB SP_UNIT_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/unit/test_*.c)
if(NOT SP_HAVE_RDKAFKA_MOCK)
  list(FILTER SP_UNIT_TESTS EXCLUDE REGEX "/test_kafka\\.c$")
endif()
foreach(src ${SP_UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  string(REPLACE "test_" "" short ${name})
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE sagepipe_core)
  add_test(NAME unit.${short} COMMAND ${name})
  set_tests_properties(unit.${short} PROPERTIES TIMEOUT 120 LABELS unit)
endforeach()

# MPI programs: tests/mpi/test_<name>_mpi.c, run at 1, 2 and 4 ranks.
find_program(SP_MPIRUN NAMES mpirun REQUIRED)
set(SP_MPI_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
    OMPI_MCA_rmaps_base_oversubscribe=1)
file(GLOB SP_MPI_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/mpi/test_*_mpi.c)
foreach(src ${SP_MPI_TESTS})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^test_(.*)_mpi$" "\\1" short ${name})
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE sagepipe_core)
  foreach(np 1 2 4)
    add_test(NAME mpi.${short}.np${np} COMMAND ${SP_MPIRUN} --oversubscribe -np ${np} $<TARGET_FILE:${name}>)
    set_tests_properties(mpi.${short}.np${np} PROPERTIES TIMEOUT 180 LABELS mpi RUN_SERIAL TRUE
      ENVIRONMENT "${SP_MPI_ENV}")
  endforeach()
endforeach()

# End-to-end scripts: tests/e2e/<name>.sh BIN -> e2e.<name> (lib.sh is their library);
# exit 77 = skipped (e.g. the public data is not beside the checkout).
file(GLOB SP_E2E_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/e2e/*.sh)
list(FILTER SP_E2E_TESTS EXCLUDE REGEX "/lib\\.sh$")
foreach(script ${SP_E2E_TESTS})
  get_filename_component(short ${script} NAME_WE)
  add_test(NAME e2e.${short} COMMAND bash ${script} $<TARGET_FILE:sagepipe>)
  set_tests_properties(e2e.${short} PROPERTIES TIMEOUT 600 LABELS e2e RUN_SERIAL TRUE SKIP_RETURN_CODE 77
    ENVIRONMENT "${SP_MPI_ENV};SP_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endforeach()

# Helper programs of e2e tests (tests/<name>.c, not tests themselves); the
# scripts get their paths through the environment.
add_executable(report_sample ${CMAKE_SOURCE_DIR}/tests/report_sample.c)
target_link_libraries(report_sample PRIVATE sagepipe_core)
set_property(TEST e2e.report_html APPEND PROPERTY ENVIRONMENT "SP_REPORT_SAMPLE=$<TARGET_FILE:report_sample>")

# Kafka test helper (a helper, not a test): librdkafka's mock cluster on
# loopback plus produce / committed / dump clients. tests/e2e/kafka.sh finds
# it through SP_KAFKA_MOCK and skips (77) only when it could not be built.
if(SP_HAVE_RDKAFKA_MOCK)
  add_executable(mock_broker ${CMAKE_SOURCE_DIR}/tests/kafka/mock_broker.c)
  target_link_libraries(mock_broker PRIVATE sagepipe_core)
  set_target_properties(mock_broker PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(TEST e2e.kafka)
    set_property(TEST e2e.kafka APPEND PROPERTY ENVIRONMENT "SP_KAFKA_MOCK=$<TARGET_FILE:mock_broker>")
  endif()
endif()

# The CUDA op test exits 77 where no CUDA device (or no CUDA build) is there: skipped, never passed.
set_tests_properties(unit.cuda_ops PROPERTIES SKIP_RETURN_CODE 77)
