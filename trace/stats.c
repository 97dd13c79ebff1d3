/*
 * Trace statistics as JSON for `spanvm run --stats` (and later the DSM
 * summary).  Counters are read with relaxed loads while vCPUs may still
 * run, so a snapshot taken mid-run is approximate; at exit it is exact.
 */
#include <errno.h>
#include <string.h>

#include "trace/trace_int.h"

void tr_table_stats(struct tr_table *t, struct tr_stats *host, uint64_t *pages)
{
	if (host) {
		pthread_mutex_lock(&t->host_mu);
		*host = t->host;
		pthread_mutex_unlock(&t->host_mu);
	}
	if (pages)
		*pages = atomic_load_explicit(&t->npages, memory_order_relaxed);
}

static void add_stats(struct tr_stats *sum, const struct tr_stats *s)
{
	for (int k = 0; k < TR_KIND_COUNT; k++) {
		sum->kind[k].held += s->kind[k].held;
		sum->kind[k].established += s->kind[k].established;
		sum->kind[k].events += s->kind[k].events;
		sum->kind[k].notify_sent += s->kind[k].notify_sent;
		sum->kind[k].notify_recv += s->kind[k].notify_recv;
		sum->kind[k].rederive += s->kind[k].rederive;
	}
	sum->notify_nonsub += s->notify_nonsub;
	sum->self_notify += s->self_notify;
	sum->trap_sync += s->trap_sync;
	sum->suspended_ns += s->suspended_ns;
	sum->writer_wait_ns += s->writer_wait_ns;
	sum->kicks += s->kicks;
	sum->revoke_recv += s->revoke_recv;
	sum->revoke_nonsub += s->revoke_nonsub;
	sum->revocations += s->revocations;
	sum->revoke_sent += s->revoke_sent;
	sum->revoke_silent += s->revoke_silent;
}

static void put_stats(FILE *f, const struct tr_stats *s)
{
	fprintf(f, "\"kinds\":{");
	for (int k = 0; k < TR_KIND_COUNT; k++) {
		const struct tr_kind_stats *ks = &s->kind[k];
		fprintf(f,
			"%s\"%s\":{\"held\":%llu,\"established\":%llu,\"events\":%llu,"
			"\"notify_sent\":%llu,\"notify_recv\":%llu,\"rederive\":%llu}",
			k ? "," : "", tr_kind_name((enum tr_kind)k),
			(unsigned long long)ks->held, (unsigned long long)ks->established,
			(unsigned long long)ks->events, (unsigned long long)ks->notify_sent,
			(unsigned long long)ks->notify_recv, (unsigned long long)ks->rederive);
	}
	fprintf(f,
		"},\"notify_nonsub\":%llu,\"self_notify\":%llu,\"trap_sync\":%llu,"
		"\"suspended_ns\":%llu,\"writer_wait_ns\":%llu,\"kicks\":%llu",
		(unsigned long long)s->notify_nonsub, (unsigned long long)s->self_notify,
		(unsigned long long)s->trap_sync, (unsigned long long)s->suspended_ns,
		(unsigned long long)s->writer_wait_ns, (unsigned long long)s->kicks);
	fprintf(f,
		",\"revoke_recv\":%llu,\"revoke_nonsub\":%llu,\"revocations\":%llu,"
		"\"revoke_sent\":%llu,\"revoke_silent\":%llu",
		(unsigned long long)s->revoke_recv, (unsigned long long)s->revoke_nonsub,
		(unsigned long long)s->revocations, (unsigned long long)s->revoke_sent,
		(unsigned long long)s->revoke_silent);
}

int tr_stats_write_json(struct tr_table *t, FILE *f)
{
	struct tr_stats sum, one, host;
	uint64_t pages;
	memset(&sum, 0, sizeof(sum));
	tr_table_stats(t, &host, &pages);
	fprintf(f, "{\"config\":{\"max_vcpus\":%u,\"broadcast\":%s,\"proto\":{", t->cfg.max_vcpus,
		t->cfg.broadcast ? "true" : "false");
	for (int k = 0; k < TR_KIND_COUNT; k++)
		fprintf(f, "%s\"%s\":\"%s\"", k ? "," : "", tr_kind_name((enum tr_kind)k),
			t->cfg.proto[k] == TR_PROTO_PRE ? "pre" : "post");
	fprintf(f, "}},\"pages\":%llu,\"vcpus\":[", (unsigned long long)pages);
	bool first = true;
	for (unsigned id = 0; id < t->cfg.max_vcpus; id++) {
		struct tr_sub *s = atomic_load(&t->subs[id]);
		if (!s)
			continue;
		tr_sub_stats(s, &one);
		add_stats(&sum, &one);
		fprintf(f, "%s{\"id\":%u,", first ? "" : ",", id);
		put_stats(f, &one);
		fputc('}', f);
		first = false;
	}
	fprintf(f, "],\"host\":{");
	put_stats(f, &host);
	add_stats(&sum, &host);
	fprintf(f, "},\"totals\":{");
	put_stats(f, &sum);
	fprintf(f, "}}");
	return ferror(f) ? -EIO : 0;
}
