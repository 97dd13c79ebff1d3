/*
 * `spanvm dtb CONFIG [-o FILE]`: writes the device tree a Linux guest of
 * this VM config would boot with (vm.vcpus harts, vm.memory_mib, vm.cmdline,
 * the initrd placed as `spanvm run`/`launch` place it), for `dtc -I dtb`.
 * The kernel and initrd named by the config are read and checked the same
 * way as at boot, so a bad image or a misfit is reported here too.
 * Exit: 0 written, 1 bad config/files or cannot write, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/cli.h"
#include "node/virt_int.h"
#include "util/util.h"

static void dtb_usage(FILE *out)
{
	fprintf(out,
		"usage: spanvm dtb CONFIG [-o FILE]\n"
		"Writes the flattened device tree of the Linux guest described by CONFIG\n"
		"(vm.vcpus, vm.memory_mib, vm.kernel, vm.initrd, vm.cmdline) to FILE, or to\n"
		"stdout when it is not a terminal.  Inspect it with: dtc -I dtb -O dts FILE\n"
		"  -o, --output FILE   where to write the DTB\n");
}

static int write_all(const char *path, const void *buf, size_t len)
{
	FILE *f = path ? fopen(path, "wb") : stdout;
	if (f == NULL) {
		fprintf(stderr, "spanvm dtb: %s: %s\n", path, strerror(errno));
		return 1;
	}
	int bad = fwrite(buf, 1, len, f) != len;
	if (path)
		bad |= fclose(f) != 0;
	else
		bad |= fflush(f) != 0;
	if (bad) {
		fprintf(stderr, "spanvm dtb: %s: write failed: %s\n", path ? path : "stdout",
			strerror(errno));
		return 1;
	}
	return 0;
}

int cmd_dtb(int argc, char **argv)
{
	static const struct option opts[] = {
		{"output", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
	const char *out = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'h': dtb_usage(stdout); return 0;
		default: dtb_usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		dtb_usage(stderr);
		return 2;
	}
	if (out == NULL && isatty(STDOUT_FILENO)) {
		fprintf(stderr, "spanvm dtb: not writing a binary DTB to a terminal; use -o FILE\n");
		return 2;
	}
	struct config *cfg;
	char err[CONFIG_ERR_LEN];
	if (config_load_file(argv[optind], &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "spanvm dtb: %s\n", err);
		return 1;
	}
	struct boot_cfg bc = {
		.kernel_path = cfg->kernel,
		.initrd_path = cfg->initrd,
		.cmdline = cfg->cmdline ? cfg->cmdline : "console=ttyS0",
		.harts = cfg->nvcpus,
		.mem_bytes = cfg->mem_bytes,
	};
	struct boot_plan plan;
	int rc = boot_prepare(&bc, &plan, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "spanvm dtb: %s: %s\n", argv[optind], err);
		config_free(cfg);
		return 1;
	}
	rc = write_all(out, plan.dtb, plan.dtb_len);
	boot_plan_free(&plan);
	config_free(cfg);
	return rc;
}
