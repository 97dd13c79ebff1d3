# dsm/ guests (multi-node litmus tests), included by guest/CMakeLists.txt.
guest_program(dsm_sb 2 test dsm/sb.c)
guest_program(dsm_falseshare 3 test dsm/falseshare.c)
guest_program(dsm_lowshare 2 test dsm/lowshare.c)
