# trace/ tests (owned by the trace layer).
if(TARGET spanvm_trace)
  add_executable(test_trace ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_trace.c)
  target_link_libraries(test_trace spanvm_trace PkgConfig::CMOCKA)
  add_test(NAME unit.trace COMMAND test_trace)
  set_tests_properties(unit.trace PROPERTIES LABELS "unit;sanitize" TIMEOUT 120)
endif()
