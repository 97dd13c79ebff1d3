# Guests of the trace layer (included by guest/CMakeLists.txt when present).
guest_program(trace_smc_nofence 2 util trace/smc_nofence.c)
guest_program(trace_jit 3 work trace/jit.c)
guest_program(trace_asid 1 work trace/asid.c)
