# Guest programs (guest/programs.cmake) run as ctest entries, label `guest`:
#   guest.<name>       on `spanvm run` (when the spanvm target exists)
#   guest.qemu.<name>  on qemu-system-riscv64 -machine spike (the reference;
#                      shows the guest itself is right)
# Workloads (work_*) also carry `slow`.  Multi-hart guests run with the hart
# count they were built for.  difftest.* : the bounded differential run.
get_property(spanvm_guests GLOBAL PROPERTY SPANVM_GUESTS)
get_property(spanvm_guest_dir GLOBAL PROPERTY SPANVM_GUEST_DIR)
find_program(QEMU_RV64 qemu-system-riscv64)
if(spanvm_guest_dir)
  foreach(entry ${spanvm_guests})
    string(REPLACE ":" ";" parts "${entry}")
    list(GET parts 0 gname)
    list(GET parts 1 gharts)
    list(GET parts 2 gkind)
    if(gkind STREQUAL "test")
      set(glabels "guest")
    elseif(gkind STREQUAL "work" AND gname MATCHES "^work_")
      set(glabels "guest;slow")
    else()
      continue()
    endif()
    set(elf ${spanvm_guest_dir}/${gname}.elf)
    if(TARGET spanvm)
      add_test(NAME guest.${gname}
        COMMAND $<TARGET_FILE:spanvm> run ${elf} --harts ${gharts} --timeout 240)
      set_tests_properties(guest.${gname} PROPERTIES LABELS "${glabels}" TIMEOUT 300)
    endif()
    if(QEMU_RV64)
      add_test(NAME guest.qemu.${gname}
        COMMAND ${QEMU_RV64} -machine spike -smp ${gharts} -nographic -bios none -kernel ${elf})
      set_tests_properties(guest.qemu.${gname} PROPERTIES LABELS "${glabels};qemu" TIMEOUT 120)
    endif()
  endforeach()
endif()

# Differential testing (tests/difftest/): random RV64IMAC programs on QEMU
# and spanvm, register dumps compared.  Needs both and the cross compiler.
add_executable(difftest_gen ${CMAKE_CURRENT_SOURCE_DIR}/difftest/gen.c)
if(TARGET spanvm AND QEMU_RV64 AND spanvm_guest_dir)
  add_test(NAME difftest.random30
    COMMAND ${CMAKE_SOURCE_DIR}/tests/difftest/difftest.sh
            --spanvm $<TARGET_FILE:spanvm> --gen $<TARGET_FILE:difftest_gen>
            --rt ${CMAKE_SOURCE_DIR}/guest/rt --out ${CMAKE_BINARY_DIR}/difftest
            --seeds 1-30 --len 400)
  set_tests_properties(difftest.random30 PROPERTIES LABELS "guest" TIMEOUT 600)
endif()
