# Linux guest (node/virt_int.h, guest/linux/).  Labels:
#   unit;linux;sanitize  the machine without a kernel (layout, DTB, PLIC, UART, SBI)
#   linux;slow           build the guest kernel (cached under build/guest-linux),
#                        boot it on 2 harts, bad input before any vCPU starts;
#                        launch3_4harts: 4 harts over 3 local node processes
if(TARGET spanvm_nodelib)
  add_executable(test_linux ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_linux.c)
  target_link_libraries(test_linux spanvm_nodelib PkgConfig::CMOCKA)
  target_include_directories(test_linux PRIVATE ${FDT_INCLUDE_DIR})
  add_test(NAME unit.linux COMMAND test_linux)
  set_tests_properties(unit.linux PROPERTIES LABELS "unit;linux;sanitize" TIMEOUT 60)
endif()

if(TARGET spanvm)
  set(LINUX_GUEST_DIR ${CMAKE_BINARY_DIR}/guest-linux)
  # The kernel build is a fixture: minutes the first time, instant after.
  add_test(NAME linux.build
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/linux_build.sh
            ${CMAKE_SOURCE_DIR}/guest/linux/build.sh ${LINUX_GUEST_DIR})
  set_tests_properties(linux.build PROPERTIES LABELS "linux;slow" TIMEOUT 1200
    SKIP_RETURN_CODE 77 FIXTURES_SETUP linux_guest RESOURCE_LOCK linux_build)
  add_test(NAME linux.boot_2harts
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/linux_boot.sh
            ${SPANVM_BIN_DIR}/spanvm ${LINUX_GUEST_DIR} 2)
  set_tests_properties(linux.boot_2harts PROPERTIES LABELS "linux;slow" TIMEOUT 180
    SKIP_RETURN_CODE 77 FIXTURES_REQUIRED linux_guest)
  add_test(NAME linux.boot_4harts
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/linux_boot.sh
            ${SPANVM_BIN_DIR}/spanvm ${LINUX_GUEST_DIR} 4)
  set_tests_properties(linux.boot_4harts PROPERTIES LABELS "linux;slow" TIMEOUT 180
    SKIP_RETURN_CODE 77 FIXTURES_REQUIRED linux_guest)
  add_test(NAME linux.boot_corrupt
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/linux_boot.sh
            ${SPANVM_BIN_DIR}/spanvm ${LINUX_GUEST_DIR} 2 corrupt)
  set_tests_properties(linux.boot_corrupt PROPERTIES LABELS "linux;slow" TIMEOUT 180
    SKIP_RETURN_CODE 77 FIXTURES_REQUIRED linux_guest)
  add_test(NAME linux.bad_input
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/linux_bad_input.sh
            ${SPANVM_BIN_DIR}/spanvm ${LINUX_GUEST_DIR})
  set_tests_properties(linux.bad_input PROPERTIES LABELS "linux;slow" TIMEOUT 120
    SKIP_RETURN_CODE 77 FIXTURES_REQUIRED linux_guest)
  if(TARGET spanvm-node AND TARGET spanvm-coord)
    add_test(NAME linux.launch3_4harts
      COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/linux_launch3.sh
              ${SPANVM_BIN_DIR} ${LINUX_GUEST_DIR})
    set_tests_properties(linux.launch3_4harts PROPERTIES LABELS "linux;slow" TIMEOUT 1200
      SKIP_RETURN_CODE 77 FIXTURES_REQUIRED linux_guest)
    add_test(NAME linux.launch3_faults
      COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/linux_launch3.sh
              ${SPANVM_BIN_DIR} ${LINUX_GUEST_DIR} "console=ttyS0 spanvm_short" faults)
    set_tests_properties(linux.launch3_faults PROPERTIES LABELS "linux;slow" TIMEOUT 1200
      SKIP_RETURN_CODE 77 FIXTURES_REQUIRED linux_guest)
    add_test(NAME linux.launch3_bad_initrd
      COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/linux_launch3.sh
              ${SPANVM_BIN_DIR} ${LINUX_GUEST_DIR} console=ttyS0 badinitrd)
    set_tests_properties(linux.launch3_bad_initrd PROPERTIES LABELS "linux;slow" TIMEOUT 120
      SKIP_RETURN_CODE 77 FIXTURES_REQUIRED linux_guest)
  endif()
endif()
