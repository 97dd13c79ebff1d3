/*
 * A kernel's System.map (nm output: "ADDR TYPE NAME" per line), to name
 * guest pages of a Linux Image: the launcher's hot-page table and the
 * kernel-text prefetch of a multi-node boot (vm_dsm_linux.c).  A guest
 * physical address inside the loaded Image maps to the link address
 * linearly: va = gpa - load address + _start.  Read-only after load; any
 * thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/virt_int.h"

struct sysmap_sym {
	uint64_t va;
	char *name;
};

struct sysmap {
	struct sysmap_sym *s;
	size_t n;
	uint64_t start, end; /* _start, _end */
};

static int by_va(const void *a, const void *b)
{
	const struct sysmap_sym *x = a, *y = b;
	return x->va < y->va ? -1 : x->va > y->va;
}

int sysmap_load(const char *path, struct sysmap **out)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	struct sysmap *m = calloc(1, sizeof(*m));
	size_t cap = 0;
	char line[512], type, name[400];
	unsigned long long va;
	while (m && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx %c %399s", &va, &type, name) != 3)
			continue;
		if (type != 't' && type != 'T' && type != 'd' && type != 'D' && type != 'b' &&
		    type != 'B' && type != 'r' && type != 'R')
			continue; /* absolute symbols (A) and the like name no code or data */
		if (m->n == cap) {
			cap = cap ? 2 * cap : 4096;
			struct sysmap_sym *ns = realloc(m->s, cap * sizeof(*ns));
			if (!ns)
				break;
			m->s = ns;
		}
		m->s[m->n].va = va;
		if (!(m->s[m->n].name = strdup(name)))
			break;
		m->n++;
	}
	fclose(f);
	if (!m)
		return -ENOMEM;
	qsort(m->s, m->n, sizeof(*m->s), by_va);
	m->start = sysmap_addr(m, "_start");
	m->end = sysmap_addr(m, "_end");
	if (!m->start || m->end <= m->start) {
		sysmap_free(m);
		return -EINVAL; /* not a kernel's map */
	}
	*out = m;
	return 0;
}

void sysmap_free(struct sysmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->s[i].name);
	free(m->s);
	free(m);
}

uint64_t sysmap_addr(const struct sysmap *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->s[i].name, name))
			return m->s[i].va;
	return 0;
}

const char *sysmap_name(const struct sysmap *m, uint64_t gpa, uint64_t *off)
{
	uint64_t va = gpa - VIRT_KERNEL_ADDR + m->start;
	if (gpa < VIRT_KERNEL_ADDR || va >= m->end || !m->n || va < m->s[0].va)
		return NULL;
	size_t lo = 0, hi = m->n; /* last symbol with s.va <= va */
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (m->s[mid].va <= va)
			lo = mid;
		else
			hi = mid;
	}
	*off = va - m->s[lo].va;
	return m->s[lo].name;
}

uint64_t sysmap_gpa(const struct sysmap *m, const char *name)
{
	uint64_t va = sysmap_addr(m, name);
	return va ? va - m->start + VIRT_KERNEL_ADDR : 0;
}
