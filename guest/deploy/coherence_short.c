/* The coherence stress guest with fewer rounds, for runs with injected
 * message faults and the short soak rounds (see coherence.c). */
#define ROUNDS 40
#include "coherence.c"
