add_executable(test_util ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_util.c)
target_link_libraries(test_util spanvm_util PkgConfig::CMOCKA)
add_test(NAME unit.util COMMAND test_util)
set_tests_properties(unit.util PROPERTIES LABELS "unit;sanitize")
