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
# duplicated message anywhere with requesters on two nodes (~70 s, ~2.1 GB).
add_test(NAME model.dsm_3req COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/dsm_model.sh
  ${CMAKE_SOURCE_DIR}/dsm/model/dsm.pml -DOPS=1 -DNREQ=3 -DMAXLOSS=0 -DMAXDUP=0)
add_test(NAME model.dsm_lossy COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/dsm_model.sh
  ${CMAKE_SOURCE_DIR}/dsm/model/dsm.pml -DOPS=1 -DNREQ=2 -DMAXLOSS=1 -DMAXDUP=1)
set_tests_properties(model.dsm_3req model.dsm_lossy PROPERTIES LABELS "integration"
  TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)

# Multi-node guests: three nodes in one process (node/vm_dsm.c glue, real
# endpoints), the guests of guest/mp with their harts spread over the nodes,
# with and without dropped/duplicated/reordered/delayed messages.
if(TARGET spanvm_nodelib AND TARGET spanvm_dsm AND EXISTS ${CMAKE_SOURCE_DIR}/node/vm_dsm.c)
  add_executable(test_multinode_dsm ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_multinode_dsm.c)
  target_link_libraries(test_multinode_dsm spanvm_nodelib spanvm_dsm spanvm_cpu)
  get_property(guest_dir GLOBAL PROPERTY SPANVM_GUEST_DIR)
  if(guest_dir)
    foreach(g mp_amo:4 mp_lrsc:4 mp_msg:3 mp_smc:2 mp_pt:2 dsm_sb:2 dsm_falseshare:3)
      string(REPLACE ":" ";" gl ${g})
      list(GET gl 0 name)
      list(GET gl 1 harts)
      # generous: ping-pong guests take ~30 s idle, minutes on a loaded 2-core box
      add_test(NAME multinode.${name} COMMAND test_multinode_dsm ${guest_dir}/${name}.elf ${harts}
        --timeout 500)
      add_test(NAME multinode.${name}.faults COMMAND test_multinode_dsm
        ${guest_dir}/${name}.elf ${harts} --faults --timeout 500)
      set_tests_properties(multinode.${name} multinode.${name}.faults PROPERTIES
        LABELS "integration;guest" TIMEOUT 600 SKIP_RETURN_CODE 77
        ENVIRONMENT "SPANVM_PROVIDER=tcp\\;ofi_rxm")
    endforeach()
    # The DSM's threads under the sanitizers (make check-asan / check-tsan,
    # label sanitize): the quick guests, with and without faults, a few s.
    set_tests_properties(multinode.mp_amo multinode.mp_amo.faults multinode.mp_lrsc
      multinode.mp_lrsc.faults multinode.dsm_falseshare multinode.dsm_falseshare.faults
      PROPERTIES LABELS "integration;guest;sanitize")
    # Flag ping-pong guests take minutes under reordering (a held-back
    # message waits for the next one on its link): also labelled slow.
    set_tests_properties(multinode.mp_msg.faults multinode.mp_smc.faults PROPERTIES
      LABELS "integration;guest;slow")
    # Writer and reader harts on the SAME node (node 0; nodes 1 and 2 are
    # still the homes of two thirds of the pages): local coherence comes
    # from the write traces bound in node/vm_dsm.c.  trace_smc_nofence has
    # no fence.i, so only CODE traces make it exact; --expect-trace checks
    # that node 0's harts notified each other (and no non-subscriber).
    foreach(g mp_smc mp_pt trace_smc_nofence)
      set(extra)
      if(g STREQUAL "trace_smc_nofence")
        set(extra --expect-trace)
      endif()
      add_test(NAME multinode.${g}.samenode COMMAND test_multinode_dsm
        ${guest_dir}/${g}.elf 2 --place 0,0 --timeout 500 ${extra})
      set_tests_properties(multinode.${g}.samenode PROPERTIES
        LABELS "integration;guest" TIMEOUT 600 SKIP_RETURN_CODE 77
        ENVIRONMENT "SPANVM_PROVIDER=tcp\\;ofi_rxm")
    endforeach()
  endif()
endif()

# The same guests through `spanvm launch` on 3 local node processes (hart
# placement from the config, node 0 loads the image, exit code and
# --stats-file checked); faults through SPANVM_DSM_FAULTS.
if(TARGET spanvm AND TARGET spanvm-node AND EXISTS ${CMAKE_SOURCE_DIR}/node/node_vm.c)
  get_property(guest_dir GLOBAL PROPERTY SPANVM_GUEST_DIR)
  if(guest_dir)
    set(mn_sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/multinode_launch.sh)
    set(mn_faults "drop=5,dup=5,reorder,delay_us=50,seed=11")
    add_test(NAME launch3.mp_amo COMMAND sh ${mn_sh} ${SPANVM_BIN_DIR} ${guest_dir}/mp_amo.elf 0,3 1 2)
    add_test(NAME launch3.mp_lrsc COMMAND sh ${mn_sh} ${SPANVM_BIN_DIR} ${guest_dir}/mp_lrsc.elf 0,3 1 2)
    add_test(NAME launch3.mp_msg COMMAND sh ${mn_sh} ${SPANVM_BIN_DIR} ${guest_dir}/mp_msg.elf 0 1 2)
    add_test(NAME launch3.mp_smc COMMAND sh ${mn_sh} ${SPANVM_BIN_DIR} ${guest_dir}/mp_smc.elf 0 1 "")
    add_test(NAME launch3.mp_pt COMMAND sh ${mn_sh} ${SPANVM_BIN_DIR} ${guest_dir}/mp_pt.elf 0 "" 1)
    add_test(NAME launch3.mp_amo.faults COMMAND sh ${mn_sh} ${SPANVM_BIN_DIR}
      ${guest_dir}/mp_amo.elf 0,3 1 2 ${mn_faults})
    add_test(NAME launch3.mp_lrsc.faults COMMAND sh ${mn_sh} ${SPANVM_BIN_DIR}
      ${guest_dir}/mp_lrsc.elf 0,3 1 2 ${mn_faults})
    add_test(NAME launch3.mp_pt.faults COMMAND sh ${mn_sh} ${SPANVM_BIN_DIR}
      ${guest_dir}/mp_pt.elf 0 "" 1 ${mn_faults})
    add_test(NAME launch3.dsm_sb COMMAND sh ${mn_sh} ${SPANVM_BIN_DIR} ${guest_dir}/dsm_sb.elf 0 "" 1)
    add_test(NAME launch3.dsm_falseshare COMMAND sh ${mn_sh} ${SPANVM_BIN_DIR}
      ${guest_dir}/dsm_falseshare.elf 0 1 2)
    add_test(NAME launch3.dsm_falseshare.faults COMMAND sh ${mn_sh} ${SPANVM_BIN_DIR}
      ${guest_dir}/dsm_falseshare.elf 0 1 2 ${mn_faults})
    # bench/dsm's low-sharing guest: private pages pulled by hart 0 at the end
    add_test(NAME launch3.dsm_lowshare COMMAND sh ${mn_sh} ${SPANVM_BIN_DIR}
      ${guest_dir}/dsm_lowshare.elf 0 "" 1)
    set_tests_properties(launch3.mp_amo launch3.mp_lrsc launch3.mp_msg launch3.mp_smc
      launch3.mp_pt launch3.mp_amo.faults launch3.mp_lrsc.faults launch3.mp_pt.faults
      launch3.dsm_sb launch3.dsm_falseshare launch3.dsm_falseshare.faults launch3.dsm_lowshare
      PROPERTIES LABELS "integration;guest" TIMEOUT 600 SKIP_RETURN_CODE 77)
  endif()
endif()
