# node/ cluster side: the multi-process cluster test drives the real
# spanvm, spanvm-coord and spanvm-node binaries on 127.0.0.1.
if(TARGET spanvm AND TARGET spanvm-node AND TARGET spanvm-coord)
  add_test(NAME integration.cluster
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/cluster.sh ${SPANVM_BIN_DIR})
  set_tests_properties(integration.cluster PROPERTIES LABELS "integration" TIMEOUT 120)
endif()
