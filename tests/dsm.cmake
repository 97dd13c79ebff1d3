# dsm/: protocol unit tests (three dsm instances over real tp endpoints) and
# the bounded spin model check.
if(TARGET spanvm_dsm)
  add_executable(test_dsm ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_dsm.c)
  target_link_libraries(test_dsm spanvm_dsm PkgConfig::CMOCKA)
  add_test(NAME unit.dsm COMMAND test_dsm)
  set_tests_properties(unit.dsm PROPERTIES LABELS "unit;sanitize" TIMEOUT 120
    ENVIRONMENT "SPANVM_PROVIDER=tcp\\;ofi_rxm")
endif()

# The spin model (dsm/model/dsm.pml): 3 nodes, 2 pages.  Exhaustive runs:
# lossless with a requester on every node (~5 s), and one lost plus one
# duplicated message anywhere with requesters on two nodes (~15 s, ~0.7 GB).
add_test(NAME model.dsm_3req COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/dsm_model.sh
  ${CMAKE_SOURCE_DIR}/dsm/model/dsm.pml -DOPS=1 -DNREQ=3 -DMAXLOSS=0 -DMAXDUP=0)
add_test(NAME model.dsm_lossy COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/dsm_model.sh
  ${CMAKE_SOURCE_DIR}/dsm/model/dsm.pml -DOPS=1 -DNREQ=2 -DMAXLOSS=1 -DMAXDUP=1)
set_tests_properties(model.dsm_3req model.dsm_lossy PROPERTIES LABELS "integration"
  TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
