/* Smallest runtime check: console, printf formats, CHECK, exit code 0. */
#include "rt.h"

int main(void)
{
	rt_printf("hello from hart %u: %d %u 0x%x %lx %s %c %05d\n", rt_hartid(), -42, 42u, 0xbeefu,
		  0x123456789abcdefful, "str", 'c', 7);
	CHECK_EQ(rt_hartid(), 0);
	return 0;
}
