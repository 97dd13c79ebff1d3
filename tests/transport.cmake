if(TARGET spanvm_transport)
  foreach(t test_tp test_tp_fault test_tp_poll)
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/${t}.c)
      add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/unit/${t}.c)
      target_link_libraries(${t} spanvm_transport PkgConfig::CMOCKA)
      string(REPLACE "test_" "" short ${t})
      add_test(NAME unit.${short} COMMAND ${t})
      # Pinned to tcp;ofi_rxm on loopback so FI_PROVIDER in the caller's
      # environment cannot turn the test into a different one.
      set_tests_properties(unit.${short} PROPERTIES LABELS "unit;sanitize" TIMEOUT 120
        ENVIRONMENT "SPANVM_PROVIDER=tcp\\;ofi_rxm")
    endif()
  endforeach()
endif()
