# dsm/: protocol unit tests (three dsm instances over real tp endpoints) and
# the bounded spin model check.
if(TARGET spanvm_dsm)
  add_executable(test_dsm ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_dsm.c)
  target_link_libraries(test_dsm spanvm_dsm PkgConfig::CMOCKA)
  add_test(NAME unit.dsm COMMAND test_dsm)
  set_tests_properties(unit.dsm PROPERTIES LABELS "unit;sanitize" TIMEOUT 120
    ENVIRONMENT "SPANVM_PROVIDER=tcp\\;ofi_rxm")
endif()
