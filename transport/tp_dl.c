/*
 * libfabric is opened with dlopen on the first transport call instead of
 * being linked: Debian's libfabric pulls in libpsm_infinipath, whose library
 * constructor sleeps ~0.2 s calibrating a clock in every process that links
 * it.  `spanvm run` (one node, no fabric) and every tool that never creates
 * a transport would pay that at start-up.  Only the five libfabric entry
 * points that are real functions go through here; everything else in
 * <rdma/...> is an inline call through the provider's ops tables.
 *
 * The function table is written once under pthread_once and read-only after.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define TP_DL_NO_REDIRECT
#include "transport/tp_int.h"

static struct {
	int (*getinfo)(uint32_t, const char *, const char *, uint64_t, const struct fi_info *,
		       struct fi_info **);
	int (*fabric)(struct fi_fabric_attr *, struct fid_fabric **, void *);
	void (*freeinfo)(struct fi_info *);
	struct fi_info *(*dupinfo)(const struct fi_info *);
	const char *(*strerror)(int);
	char err[256];
	bool ok;
} fab;
static pthread_once_t fab_once = PTHREAD_ONCE_INIT;

static void *sym(void *h, const char *name)
{
	void *p = dlsym(h, name);
	if (!p)
		snprintf(fab.err, sizeof(fab.err), "libfabric.so.1 has no %s", name);
	return p;
}

static void fab_load(void)
{
	void *h = dlopen("libfabric.so.1", RTLD_NOW | RTLD_GLOBAL);
	if (!h) {
		snprintf(fab.err, sizeof(fab.err), "cannot load libfabric.so.1: %s", dlerror());
		return;
	}
	fab.getinfo = sym(h, "fi_getinfo");
	fab.fabric = sym(h, "fi_fabric");
	fab.freeinfo = sym(h, "fi_freeinfo");
	fab.dupinfo = sym(h, "fi_dupinfo");
	fab.strerror = sym(h, "fi_strerror");
	fab.ok = fab.getinfo && fab.fabric && fab.freeinfo && fab.dupinfo && fab.strerror;
}

static bool fab_ready(void)
{
	pthread_once(&fab_once, fab_load);
	if (!fab.ok)
		LOG_ERR(TP_SUBSYS, "%s", fab.err);
	return fab.ok;
}

int tp_fi_getinfo(uint32_t version, const char *node, const char *service, uint64_t flags,
		  const struct fi_info *hints, struct fi_info **info)
{
	return fab_ready() ? fab.getinfo(version, node, service, flags, hints, info) : -FI_ENOSYS;
}

int tp_fi_fabric(struct fi_fabric_attr *attr, struct fid_fabric **fabric, void *context)
{
	return fab_ready() ? fab.fabric(attr, fabric, context) : -FI_ENOSYS;
}

void tp_fi_freeinfo(struct fi_info *info)
{
	if (info && fab_ready())
		fab.freeinfo(info);
}

struct fi_info *tp_fi_dupinfo(const struct fi_info *info)
{
	return fab_ready() ? fab.dupinfo(info) : NULL;
}

const char *tp_fi_strerror(int errnum)
{
	pthread_once(&fab_once, fab_load);
	return fab.ok ? fab.strerror(errnum) : strerror(errnum);
}
