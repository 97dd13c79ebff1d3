/*
 * `spanvm run GUEST.elf`: run a bare-metal guest on this host alone.
 * `spanvm run Image --initrd F --append STR`: boot a Linux kernel (the
 * file's RISC-V Image header decides) on the virt machine (virt_int.h).
 * Exit status: the guest's exit code (HTIF tohost or test finisher; for
 * Linux 0 on SBI shutdown, 1 on a failure shutdown, 3 on a reboot request),
 * 124 on --timeout, 1 when the guest cannot be loaded, 2 on usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/cli.h"
#include "node/vm_int.h"
#include "util/util.h"

static void run_usage(FILE *out)
{
	fprintf(out,
		"usage: spanvm run GUEST.elf [--harts N] [--mem MiB] [--timeout S] [--stats]\n"
		"                  [--stats-file F] [--single-step] [--log LEVEL]\n"
		"       spanvm run IMAGE [--initrd F] [--append STR] [--harts N] [...]\n"
		"Loads GUEST.elf into guest RAM at 0x80000000 and starts every hart at its\n"
		"entry in M-mode (a0 = hartid).  The guest ends through HTIF tohost or the\n"
		"test finisher at 0x100000; its exit code is ours.  124 = timeout.\n"
		"A RISC-V Linux Image boots in S-mode at 0x80200000 with the monitor as\n"
		"SBI, a ns16550a console and a PLIC (QEMU virt map); exit 0 on power-off,\n"
		"1 on a failure shutdown, 3 on a reboot request.\n"
		"  --initrd F      initramfs for the Image\n"
		"  --append STR    kernel command line (default \"console=ttyS0\")\n"
		"  --harts N       harts, one host thread each (default 1, max %d)\n"
		"  --mem MiB       guest RAM (default 128)\n"
		"  --timeout S     stop after S seconds (exit 124)\n"
		"  --stats         statistics as JSON on stderr\n"
		"  --stats-file F  statistics as JSON into F\n"
		"  --single-step   one instruction per translated block (debugging)\n"
		"  --retain-walks  keep cached page-table walks across sfence.vma (the\n"
		"                  write traces keep them coherent)\n"
		"  --trace OPTS    trace protocols, e.g. code=pre,pt=post,tlb=pre\n"
		"  --no-trace      no write traces (baseline; implies no --retain-walks)\n",
		VM_MAX_HARTS);
}

static int parse_uint(const char *opt, const char *s, unsigned long long max,
		      unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v > max || s[0] == '-') {
		fprintf(stderr, "spanvm run: %s: '%s' is not a number in 0..%llu\n", opt, s, max);
		return -1;
	}
	*out = v;
	return 0;
}

static int write_stats(struct vm *vm, bool to_stderr, const char *file)
{
	char *js = vm_stats_json(vm);
	int rc = 0;
	if (js == NULL)
		return -ENOMEM;
	if (to_stderr)
		fprintf(stderr, "%s\n", js);
	if (file) {
		FILE *f = fopen(file, "w");
		if (f == NULL || fprintf(f, "%s\n", js) < 0) {
			fprintf(stderr, "spanvm run: --stats-file %s: %s\n", file, strerror(errno));
			rc = -EIO;
		}
		if (f)
			fclose(f);
	}
	free(js);
	return rc;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"harts", required_argument, 0, 'n'}, {"mem", required_argument, 0, 'm'},
		{"timeout", required_argument, 0, 't'}, {"stats", no_argument, 0, 's'},
		{"stats-file", required_argument, 0, 'f'}, {"single-step", no_argument, 0, '1'},
		{"log", required_argument, 0, 'l'}, {"help", no_argument, 0, 'h'},
		{"initrd", required_argument, 0, 'i'}, {"append", required_argument, 0, 'a'},
		{"retain-walks", no_argument, 0, 'R'}, {"trace", required_argument, 0, 'T'},
		{"no-trace", no_argument, 0, 'N'},
		{0, 0, 0, 0}};
	struct vm_cfg cfg = {.harts = 1, .mem_bytes = 128ull << 20};
	bool stats = false;
	const char *stats_file = NULL;
	unsigned long long v;
	int c, level;
	char *end;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_uint("--harts", optarg, VM_MAX_HARTS, &v) || v == 0)
				return 2;
			cfg.harts = (unsigned)v;
			break;
		case 'm':
			if (parse_uint("--mem", optarg, 65536, &v) || v == 0)
				return 2;
			cfg.mem_bytes = v << 20;
			break;
		case 't':
			cfg.timeout_s = strtod(optarg, &end);
			if (end == optarg || *end || !(cfg.timeout_s > 0)) {
				fprintf(stderr, "spanvm run: --timeout: '%s' is not a positive number of seconds\n",
					optarg);
				return 2;
			}
			break;
		case 's': stats = true; break;
		case 'f': stats_file = optarg; break;
		case '1': cfg.single_step = true; break;
		case 'i': cfg.initrd_path = optarg; break;
		case 'a': cfg.cmdline = optarg; break;
		case 'R': cfg.retain_walks = true; break;
		case 'T': cfg.trace_opts = optarg; break;
		case 'N': cfg.no_trace = true; break;
		case 'l':
			if (util_log_parse_level(optarg, &level)) {
				fprintf(stderr, "spanvm run: --log: '%s' is not err|warn|info|debug\n", optarg);
				return 2;
			}
			util_log_set_level(level);
			break;
		case 'h': run_usage(stdout); return 0;
		default: run_usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		run_usage(stderr);
		return 2;
	}
	cfg.elf_path = argv[optind];

	struct vm *vm;
	char err[512];
	int rc = vm_create(&cfg, &vm, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "spanvm run: %s\n", err);
		return 1;
	}
	int code = 1;
	rc = vm_run(vm, &code);
	if (rc < 0) {
		fprintf(stderr, "spanvm run: cannot start the harts: %s\n", strerror(-rc));
		code = 1;
	}
	if (code == 124) {
		fprintf(stderr, "spanvm run: timeout after %g s\n", cfg.timeout_s);
		for (unsigned k = 0; k < cfg.harts; k++) /* where each hart was: for debugging */
			fprintf(stderr, "spanvm run: hart %u: pc 0x%llx priv %d\n", k,
				(unsigned long long)cpu_get_pc(vm->harts[k].cpu),
				cpu_get_priv(vm->harts[k].cpu));
	}
	if ((stats || stats_file) && write_stats(vm, stats, stats_file) < 0 && code == 0)
		code = 1;
	vm_destroy(vm);
	return code;
}
