/* Does nothing: bench/cpu.sh measures process and VM start-up with it. */
#include "rt.h"
int main(void) { return 0; }
