# deploy/: systemd units, /etc/spanvm examples, the namespace cluster and
# partition tests.  Scripts live in tests/integration; they skip (exit 77)
# with the reason when systemd-analyze is missing or namespaces cannot be
# made (not root).  The netns tests run serially: they are timed against a
# 2 s lease and share two CPU cores with everything else.
set(deploy_dir ${CMAKE_CURRENT_SOURCE_DIR}/integration)

add_test(NAME unit.deploy_systemd_verify
  COMMAND sh ${deploy_dir}/deploy_systemd_verify.sh ${CMAKE_SOURCE_DIR} ${SPANVM_BIN_DIR})
set_tests_properties(unit.deploy_systemd_verify PROPERTIES
  LABELS "unit" SKIP_RETURN_CODE 77 TIMEOUT 60)

# The DSM audit checker on a coherent set of dumps and on one copy per
# defect kind (real dumps: netns.partition_coherence, make soak).
add_test(NAME unit.deploy_audit_check
  COMMAND sh ${deploy_dir}/deploy_audit_check.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(unit.deploy_audit_check PROPERTIES LABELS "unit" TIMEOUT 60)

# The audit dump and lost-page list of three real dsm instances.
if(TARGET spanvm_dsm)
  add_executable(test_dsm_audit ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_dsm_audit.c)
  target_link_libraries(test_dsm_audit spanvm_dsm PkgConfig::CMOCKA)
  add_test(NAME unit.dsm_audit
    COMMAND test_dsm_audit ${CMAKE_SOURCE_DIR}/deploy/netns/dsm-audit-check)
  set_tests_properties(unit.dsm_audit PROPERTIES LABELS "unit" TIMEOUT 60)
endif()

if(TARGET spanvm AND TARGET spanvm-node AND TARGET spanvm-coord)
  add_test(NAME integration.deploy_bad_input
    COMMAND sh ${deploy_dir}/deploy_bad_input.sh ${CMAKE_SOURCE_DIR} ${SPANVM_BIN_DIR})
  set_tests_properties(integration.deploy_bad_input PROPERTIES
    LABELS "integration" TIMEOUT 120)

  foreach(t cluster units)
    add_test(NAME netns.${t}
      COMMAND sh ${deploy_dir}/netns_${t}.sh ${CMAKE_SOURCE_DIR} ${SPANVM_BIN_DIR})
    set_tests_properties(netns.${t} PROPERTIES
      LABELS "netns" SKIP_RETURN_CODE 77 TIMEOUT 150 RUN_SERIAL TRUE)
  endforeach()
  # With the stress guest running, the final status must name the lost pages.
  get_property(lease_guest_dir GLOBAL PROPERTY SPANVM_GUEST_DIR)
  set(lease_guest "")
  if(lease_guest_dir)
    set(lease_guest ${lease_guest_dir}/stress_coherence.elf)
  endif()
  add_test(NAME netns.partition_lease
    COMMAND sh ${deploy_dir}/netns_partition_lease.sh ${CMAKE_SOURCE_DIR} ${SPANVM_BIN_DIR}
      ${lease_guest})
  set_tests_properties(netns.partition_lease PROPERTIES
    LABELS "netns" SKIP_RETURN_CODE 77 TIMEOUT 180 RUN_SERIAL TRUE)
endif()

# A short random partition run (20 s of cuts shorter than the lease, fixed
# seed): the cluster must ride out every cut and stop in order.
if(TARGET spanvm AND TARGET spanvm-node AND TARGET spanvm-coord)
  add_test(NAME netns.partition_random
    COMMAND sh ${CMAKE_SOURCE_DIR}/deploy/netns/soak.sh ${CMAKE_BINARY_DIR} 42 1)
  set_tests_properties(netns.partition_random PROPERTIES
    LABELS "netns" SKIP_RETURN_CODE 77 TIMEOUT 120 RUN_SERIAL TRUE
    ENVIRONMENT "SPANVM_SOAK_SECONDS=20;SPANVM_SOAK_COHERENCE=0")
endif()

# The coordinator's partition rules with virtual time (docs/deploy.md).
if(TARGET spanvm_coord)
  add_executable(test_coord_partition ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_coord_partition.c)
  target_link_libraries(test_coord_partition spanvm_coord PkgConfig::CMOCKA)
  add_test(NAME unit.coord_partition COMMAND test_coord_partition)
  set_tests_properties(unit.coord_partition PROPERTIES LABELS "unit;sanitize")
endif()

# The coherence stress guest (guest/deploy) and its host-side checker.
get_property(deploy_guest_dir GLOBAL PROPERTY SPANVM_GUEST_DIR)
if(TARGET spanvm AND deploy_guest_dir)
  add_test(NAME guest.deploy_coherence
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/deploy_coherence.sh ${CMAKE_SOURCE_DIR}
            ${SPANVM_BIN_DIR} ${deploy_guest_dir}/stress_coherence.elf)
  set_tests_properties(guest.deploy_coherence PROPERTIES
    LABELS "guest" SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()

# The stress guest across three DSM nodes (bin/test_multinode_dsm, the dsm
# layer's harness: one process, tcp;ofi_rxm on 127.0.0.1), checked on the
# host.  The run with injected message faults takes minutes: label slow.
# (tests/dsm.cmake is read after this file, so the binary is found by path.)
if(deploy_guest_dir AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_multinode_dsm.c)
  foreach(v plain faults)
    set(labels "guest")
    if(v STREQUAL "faults")
      set(labels "guest;slow")
    endif()
    add_test(NAME multinode.deploy_coherence.${v}
      COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/deploy_coherence_multinode.sh
        ${SPANVM_BIN_DIR}/test_multinode_dsm ${deploy_guest_dir}/stress_coherence_short.elf ${v}
        ${CMAKE_SOURCE_DIR}/deploy/netns/coherence-check)
    set_tests_properties(multinode.deploy_coherence.${v} PROPERTIES
      LABELS "${labels}" TIMEOUT 600 SKIP_RETURN_CODE 77)
  endforeach()
endif()

# The stress guest across three namespace hosts (spanvm-node processes on
# the DSM) with link cuts shorter than the lease during the run; the
# host-side checker must pass (issue 6: the short partition run).
if(deploy_guest_dir AND TARGET spanvm-node AND TARGET spanvm-coord AND TARGET spanvm)
  add_test(NAME netns.partition_coherence
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/netns_partition_coherence.sh
      ${CMAKE_SOURCE_DIR} ${SPANVM_BIN_DIR} ${deploy_guest_dir}/stress_coherence_short.elf)
  set_tests_properties(netns.partition_coherence PROPERTIES
    LABELS "netns" SKIP_RETURN_CODE 77 TIMEOUT 300 RUN_SERIAL TRUE)
endif()
