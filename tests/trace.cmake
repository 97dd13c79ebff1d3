# trace/ tests (owned by the trace layer).
if(TARGET spanvm_trace)
  add_executable(test_trace ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_trace.c)
  target_link_libraries(test_trace spanvm_trace PkgConfig::CMOCKA)
  add_test(NAME unit.trace COMMAND test_trace)
  set_tests_properties(unit.trace PROPERTIES LABELS "unit;sanitize" TIMEOUT 120)
endif()
if(TARGET spanvm_trace)
  add_executable(test_trace_stress ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_trace_stress.c)
  target_link_libraries(test_trace_stress spanvm_trace PkgConfig::CMOCKA)
  add_test(NAME unit.trace_stress COMMAND test_trace_stress)
  set_tests_properties(unit.trace_stress PROPERTIES LABELS "unit;sanitize" TIMEOUT 300)
endif()
# Guest-level trace tests: need the runner and the cross-built guests.
get_property(trace_guest_dir GLOBAL PROPERTY SPANVM_GUEST_DIR)
if(TARGET spanvm_trace AND TARGET spanvm AND trace_guest_dir)
  add_executable(test_trace_guest ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_trace_guest.c)
  target_link_libraries(test_trace_guest PkgConfig::CMOCKA PkgConfig::JANSSON)
  add_test(NAME guest.trace COMMAND test_trace_guest $<TARGET_FILE:spanvm> ${trace_guest_dir})
  set_tests_properties(guest.trace PROPERTIES LABELS "guest;integration" TIMEOUT 600
                       SKIP_RETURN_CODE 77)
endif()
# Revocation (tr_revoke): the DSM taking a page away from a node's vCPUs.
if(TARGET spanvm_trace)
  add_executable(test_tr_revoke ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_tr_revoke.c)
  target_link_libraries(test_tr_revoke spanvm_trace PkgConfig::CMOCKA)
  add_test(NAME unit.tr_revoke COMMAND test_tr_revoke)
  set_tests_properties(unit.tr_revoke PROPERTIES LABELS "unit;sanitize" TIMEOUT 60)
endif()
# Revocation in a guest run: mp_pt with its harts on nodes 0 and 1 (the
# page-table page and flag move between them).  Every node's revocations
# went through its trace table (host revocations = the glue's count), they
# interrupted harts, and none reached a hart without a subscription.
get_property(rv_guest_dir GLOBAL PROPERTY SPANVM_GUEST_DIR)
if(TARGET test_multinode_dsm AND rv_guest_dir)
  add_test(NAME multinode.mp_pt.revoke_stats COMMAND sh -c "\
$<TARGET_FILE:test_multinode_dsm> ${rv_guest_dir}/mp_pt.elf 2 --timeout 500 \
--stats-file revoke_stats.json && python3 -c \"import json; d = json.load(open('revoke_stats.json')); \
n = d['nodes']; t = [x['trace'] for x in n]; \
assert sum(x['revocation_interrupts'] for x in n) > 0, 'no hart was interrupted'; \
assert all(x['trace']['host']['revocations'] == x['revocations'] for x in n), 'revocations bypassed the table'; \
assert all(y['totals']['revoke_recv'] == x['revocation_interrupts'] for x, y in zip(n, t)), 'receipts != interrupts'; \
assert all(y['totals']['revoke_nonsub'] == 0 for y in t), 'a non-subscriber was interrupted'; \
print('revocations', [x['revocations'] for x in n], 'silent', [x['revocations_silent'] for x in n])\"")
  set_tests_properties(multinode.mp_pt.revoke_stats PROPERTIES LABELS "integration;guest"
    TIMEOUT 600 ENVIRONMENT "SPANVM_PROVIDER=tcp\\;ofi_rxm")
endif()
