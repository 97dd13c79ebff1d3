/*
 * The trace table: per-page entries in a striped hash table.
 *
 * Why striped mutexes rather than a lock-free entry: establishing a trace
 * must be ordered with a concurrent write's subscriber snapshot (otherwise
 * a deriver could read the page after the writer looked for subscribers and
 * before it wrote, and keep a stale structure forever).  A mutex per stripe
 * gives that order cheaply; 1024 stripes keep contention low.  The lock-free
 * part is the write-traced hint: a counter per hash slot of pages that have
 * subscribers of write kinds, so "is page P write-traced?" is one relaxed
 * load when it is not (the common case on a TLB fill).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "trace/trace_int.h"
#include "util/util.h"

/* The memory bound stated in trace.h and docs/trace.md. */
_Static_assert(sizeof(struct tr_page) == 128, "page entry is 128 bytes");
_Static_assert(sizeof(struct tr_lmap_ent) == 16, "sub-monitor map entry is 16 bytes");

static const char *const kind_names[TR_KIND_COUNT] = { "code", "pt", "tlb" };

const char *tr_kind_name(enum tr_kind k)
{
	return (unsigned)k < TR_KIND_COUNT ? kind_names[k] : "?";
}

void tr_cfg_default(struct tr_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_vcpus = TR_MAX_VCPUS;
	/* Post-write is exact for CODE and PT: see docs/trace.md. */
	cfg->proto[TR_KIND_CODE] = TR_PROTO_POST;
	cfg->proto[TR_KIND_PT] = TR_PROTO_POST;
	/* A TLB event is the page going away (DSM): nobody may touch it while
	 * it changes hands, so subscribers are suspended first. */
	cfg->proto[TR_KIND_TLB] = TR_PROTO_PRE;
	cfg->write_kinds = TR_KBIT(TR_KIND_CODE) | TR_KBIT(TR_KIND_PT);
	cfg->broadcast = false;
}

int tr_cfg_set(struct tr_cfg *cfg, const char *opt, char *err, size_t n)
{
	const char *eq = opt ? strchr(opt, '=') : NULL;
	if (!eq) {
		snprintf(err, n, "trace option '%s': expected NAME=VALUE", opt ? opt : "");
		return -EINVAL;
	}
	size_t klen = (size_t)(eq - opt);
	const char *val = eq + 1;
	if (klen == 6 && !strncmp(opt, "writes", 6)) {
		if (strcmp(val, "0") && strcmp(val, "1")) {
			snprintf(err, n, "trace option writes: '%s' is not 0 or 1", val);
			return -EINVAL;
		}
		cfg->write_kinds = val[0] == '1' ? TR_KBIT(TR_KIND_CODE) | TR_KBIT(TR_KIND_PT) : 0;
		return 0;
	}
	if (klen == 9 && !strncmp(opt, "broadcast", 9)) {
		if (strcmp(val, "0") && strcmp(val, "1")) {
			snprintf(err, n, "trace option broadcast: '%s' is not 0 or 1", val);
			return -EINVAL;
		}
		cfg->broadcast = val[0] == '1';
		return 0;
	}
	for (int k = 0; k < TR_KIND_COUNT; k++) {
		if (strlen(kind_names[k]) != klen || strncmp(opt, kind_names[k], klen))
			continue;
		if (!strcmp(val, "pre"))
			cfg->proto[k] = TR_PROTO_PRE;
		else if (!strcmp(val, "post"))
			cfg->proto[k] = TR_PROTO_POST;
		else {
			snprintf(err, n, "trace option %s: protocol '%s' is not pre or post",
				 kind_names[k], val);
			return -EINVAL;
		}
		return 0;
	}
	snprintf(err, n, "trace option '%.*s': unknown (code, pt, tlb, broadcast, writes)", (int)klen, opt);
	return -EINVAL;
}

int tr_table_create(const struct tr_cfg *cfg, struct tr_table **out)
{
	if (!cfg || !out || cfg->max_vcpus == 0 || cfg->max_vcpus > TR_MAX_VCPUS ||
	    (cfg->write_kinds & ~TR_KINDS_ALL))
		return -EINVAL;
	struct tr_table *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->cfg = *cfg;
	t->stripes = aligned_alloc(64, sizeof(struct tr_stripe) * TR_STRIPES);
	t->hint = calloc(TR_HINTS, sizeof(*t->hint));
	if (!t->stripes || !t->hint)
		goto err_mem;
	memset(t->stripes, 0, sizeof(struct tr_stripe) * TR_STRIPES);
	for (int i = 0; i < TR_STRIPES; i++)
		pthread_mutex_init(&t->stripes[i].mu, NULL);
	pthread_mutex_init(&t->host_mu, NULL);
	*out = t;
	return 0;
err_mem:
	free(t->hint);
	free(t->stripes);
	free(t);
	return -ENOMEM;
}

void tr_table_destroy(struct tr_table *t)
{
	if (!t)
		return;
	for (int i = 0; i < TR_STRIPES; i++) {
		struct tr_stripe *st = &t->stripes[i];
		for (int b = 0; b < TR_BUCKETS_PER_STRIPE; b++) {
			struct tr_page *pe = st->bucket[b], *nx;
			for (; pe; pe = nx) {
				nx = pe->next;
				free(pe);
			}
		}
		pthread_mutex_destroy(&st->mu);
	}
	pthread_mutex_destroy(&t->host_mu);
	free(t->hint);
	free(t->stripes);
	free(t);
}

static uint64_t page_hash(uint64_t page)
{
	uint64_t h = (page >> TR_PAGE_SHIFT) * 0x9E3779B97F4A7C15ull;
	return h ^ (h >> 29);
}

struct tr_stripe *tr_stripe_of(struct tr_table *t, uint64_t page)
{
	return &t->stripes[page_hash(page) % TR_STRIPES];
}

unsigned tr_hint_of(uint64_t page)
{
	return (unsigned)((page_hash(page) >> 20) % TR_HINTS);
}

static struct tr_page **bucket_of(struct tr_stripe *st, uint64_t page)
{
	return &st->bucket[(page_hash(page) / TR_STRIPES) % TR_BUCKETS_PER_STRIPE];
}

struct tr_page *tr_page_find(struct tr_table *t, struct tr_stripe *st, uint64_t page, bool create)
{
	struct tr_page **b = bucket_of(st, page);
	for (struct tr_page *pe = *b; pe; pe = pe->next)
		if (pe->page == page)
			return pe;
	if (!create)
		return NULL;
	struct tr_page *pe = calloc(1, sizeof(*pe));
	if (!pe)
		return NULL;
	pe->page = page;
	pe->next = *b;
	*b = pe;
	atomic_fetch_add_explicit(&t->npages, 1, memory_order_relaxed);
	return pe;
}

void tr_page_maybe_free(struct tr_table *t, struct tr_stripe *st, struct tr_page *pe)
{
	for (int k = 0; k < TR_KIND_COUNT; k++)
		if (pe->nsubs[k])
			return;
	if (pe->writers || pe->trap_ev)
		return;
	struct tr_page **pp = bucket_of(st, pe->page);
	while (*pp != pe)
		pp = &(*pp)->next;
	*pp = pe->next;
	free(pe);
	atomic_fetch_sub_explicit(&t->npages, 1, memory_order_relaxed);
}

unsigned tr_page_wcount(const struct tr_table *t, const struct tr_page *pe)
{
	unsigned n = 0;
	for (int k = 0; k < TR_KIND_COUNT; k++)
		if (t->cfg.write_kinds & TR_KBIT(k))
			n += pe->nsubs[k];
	return n;
}

static unsigned page_nsubs(const struct tr_page *pe)
{
	return (unsigned)pe->nsubs[0] + pe->nsubs[1] + pe->nsubs[2];
}

void tr_page_sub_add(struct tr_table *t, struct tr_page *pe, unsigned id, enum tr_kind k)
{
	bool wk = t->cfg.write_kinds & TR_KBIT(k);
	if (wk && tr_page_wcount(t, pe) == 0)
		atomic_fetch_add_explicit(&t->hint[tr_hint_of(pe->page)], 1, memory_order_relaxed);
	if (t->cfg.on_page && page_nsubs(pe) == 0)
		t->cfg.on_page(t->cfg.on_page_arg, pe->page, true);
	tr_bit_set(pe->subs[k], id);
	pe->nsubs[k]++;
}

void tr_page_sub_del(struct tr_table *t, struct tr_page *pe, unsigned id, enum tr_kind k)
{
	if (!tr_bit_test(pe->subs[k], id))
		return;
	tr_bit_clr(pe->subs[k], id);
	pe->nsubs[k]--;
	if ((t->cfg.write_kinds & TR_KBIT(k)) && tr_page_wcount(t, pe) == 0)
		atomic_fetch_sub_explicit(&t->hint[tr_hint_of(pe->page)], 1, memory_order_relaxed);
	if (t->cfg.on_page && page_nsubs(pe) == 0)
		t->cfg.on_page(t->cfg.on_page_arg, pe->page, false);
}

bool tr_page_write_traced(struct tr_table *t, uint64_t gpa)
{
	uint64_t page = gpa & ~(TR_PAGE_SIZE - 1);
	if (!atomic_load_explicit(&t->hint[tr_hint_of(page)], memory_order_relaxed))
		return false;
	struct tr_stripe *st = tr_stripe_of(t, page);
	pthread_mutex_lock(&st->mu);
	struct tr_page *pe = tr_page_find(t, st, page, false);
	bool r = pe && tr_page_wcount(t, pe) > 0;
	pthread_mutex_unlock(&st->mu);
	return r;
}

int tr_page_subscribers(struct tr_table *t, uint64_t gpa, unsigned kinds,
			uint64_t bitmap[TR_MAX_VCPUS / 64])
{
	uint64_t page = gpa & ~(TR_PAGE_SIZE - 1);
	struct tr_stripe *st = tr_stripe_of(t, page);
	int n = 0;
	memset(bitmap, 0, sizeof(uint64_t) * TR_WORDS);
	pthread_mutex_lock(&st->mu);
	struct tr_page *pe = tr_page_find(t, st, page, false);
	for (int k = 0; pe && k < TR_KIND_COUNT; k++)
		if (kinds & TR_KBIT(k))
			for (int w = 0; w < TR_WORDS; w++)
				bitmap[w] |= pe->subs[k][w];
	pthread_mutex_unlock(&st->mu);
	for (int w = 0; w < TR_WORDS; w++)
		n += __builtin_popcountll(bitmap[w]);
	return n;
}

unsigned tr_page_kinds(struct tr_table *t, uint64_t gpa)
{
	uint64_t page = gpa & ~(TR_PAGE_SIZE - 1);
	struct tr_stripe *st = tr_stripe_of(t, page);
	unsigned m = 0;
	pthread_mutex_lock(&st->mu);
	struct tr_page *pe = tr_page_find(t, st, page, false);
	for (int k = 0; pe && k < TR_KIND_COUNT; k++)
		if (pe->nsubs[k])
			m |= TR_KBIT(k);
	pthread_mutex_unlock(&st->mu);
	return m;
}
