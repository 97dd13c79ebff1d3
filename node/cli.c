/*
 * spanvm: the user's entry point.  Dispatches to one subcommand; each lives
 * in its own cmd_*.c.  Subcommands that have not landed in this build are
 * absent from the table (weak references), so --help lists exactly what
 * works.
 */
#include <stdio.h>
#include <string.h>

#include "node/cli.h"

#pragma weak cmd_launch
#pragma weak cmd_status
#pragma weak cmd_stop
#pragma weak cmd_run
#pragma weak cmd_dtb

struct subcommand {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct subcommand subcommands[] = {
	{"launch", cmd_launch, "launch CONFIG [--detach]: start a VM over its nodes"},
	{"status", cmd_status, "status [--json]: state of the running cluster"},
	{"stop", cmd_stop, "stop: orderly stop of the running cluster"},
	{"run", cmd_run, "run GUEST [--harts N] [--stats]: run a guest on this host alone"},
	{"dtb", cmd_dtb, "dtb CONFIG [-o FILE]: write the device tree of a Linux guest"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: spanvm COMMAND [ARGS]   (spanvm COMMAND --help for more)\n\n");
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (subcommands[i].fn)
			fprintf(out, "  %s\n", subcommands[i].summary);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (subcommands[i].fn && !strcmp(argv[1], subcommands[i].name))
			return subcommands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "spanvm: unknown command '%s' (see spanvm --help)\n", argv[1]);
	return 2;
}
