# Coordinator layer: config loader (util/config.c, owned here) and the
# coordinator state machine.  Both are fast and run under the sanitizers.
add_executable(test_config ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_config.c)
target_link_libraries(test_config spanvm_util PkgConfig::CMOCKA)
target_compile_definitions(test_config PRIVATE SPANVM_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
add_test(NAME unit.config COMMAND test_config)
set_tests_properties(unit.config PROPERTIES LABELS "unit;sanitize")

if(TARGET spanvm_coord AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_coord.c)
  add_executable(test_coord ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_coord.c)
  target_link_libraries(test_coord spanvm_coord PkgConfig::CMOCKA)
  add_test(NAME unit.coord COMMAND test_coord)
  set_tests_properties(unit.coord PROPERTIES LABELS "unit;sanitize")
endif()

# The TCP server on a thread against raw sockets (bad frames, wrong secret,
# status, stop).  Uses 127.0.0.1 with an ephemeral port.
if(TARGET spanvm_coord AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_coord_server.c)
  add_executable(test_coord_server ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_coord_server.c)
  target_link_libraries(test_coord_server spanvm_coord PkgConfig::CMOCKA Threads::Threads)
  add_test(NAME unit.coord_server COMMAND test_coord_server)
  set_tests_properties(unit.coord_server PROPERTIES LABELS "unit;sanitize" TIMEOUT 60)
endif()
