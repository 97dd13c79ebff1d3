# deploy/: the coherence stress guest (run by tests/deploy.cmake and
# `make soak`, checked on the host by deploy/netns/coherence-check).
guest_program(stress_coherence 4 stress deploy/coherence.c)
guest_program(stress_coherence_short 4 stress deploy/coherence_short.c)
