/* SPDX-License-Identifier: MIT */
/* fc-serve --stats-json: what every VM of the run did, as one JSON object. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fc/server.h"

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void vm_json(FILE *f, const struct fc_vm_record *r)
{
	const struct lvm_stats *st = &r->st;
	fprintf(f, "{\"id\":%u,\"uid\":%u,\"pid\":%d,\"served\":%s,\"regions\":%u,"
		"\"bytes\":%llu,\"page_size\":%llu,\"seconds\":%.3f,\"faults\":%llu,"
		"\"pages_demand\":%llu,\"pages_background\":%llu,\"pages_zero\":%llu,"
		"\"pages_failed\":%llu,\"remove_events\":%llu,\"fault_p50_ns\":%llu,"
		"\"fault_p99_ns\":%llu,\"pages_prefetch\":%llu,\"error\":",
		r->id, (unsigned)r->uid, (int)r->pid, r->served ? "true" : "false", r->regions,
		(unsigned long long)r->bytes, (unsigned long long)r->page_size, r->seconds,
		(unsigned long long)st->faults, (unsigned long long)st->pages_demand,
		(unsigned long long)st->pages_background, (unsigned long long)st->pages_zero,
		(unsigned long long)st->pages_failed, (unsigned long long)st->remove_events,
		(unsigned long long)st->fault_latency.p50_ns,
		(unsigned long long)st->fault_latency.p99_ns,
		(unsigned long long)st->pages_prefetch);
	json_string(f, r->error);
	if (r->secret_free)	/* fc/secret-free.h */
		fprintf(f, ",\"secret_free\":{\"fault_requests\":%llu,\"pwrites\":%llu,"
			"\"pages_written\":%llu,\"pages_copied\":%llu,\"continues\":%llu,"
			"\"already_populated\":%llu}",
			(unsigned long long)r->sf.requests, (unsigned long long)r->sf.pwrites,
			(unsigned long long)r->sf.pages_written,
			(unsigned long long)r->sf.pages_copied,
			(unsigned long long)r->sf.continues,
			(unsigned long long)r->sf.already_populated);
	fputc('}', f);
}

int fc_server_write_stats(struct fc_server *s, const char *path)
{
	FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	uint64_t served = 0, faults = 0, demand = 0, zero = 0, removes = 0;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nrecords; i++) {
		const struct fc_vm_record *r = &s->records[i];
		served += r->served;
		faults += r->st.faults;
		demand += r->st.pages_demand;
		zero += r->st.pages_zero;
		removes += r->st.remove_events;
	}
	fprintf(f, "{\"vms_served\":%llu,\"vms_refused\":%llu,\"peers_refused\":%llu,"
		"\"faults\":%llu,\"pages_demand\":%llu,\"pages_zero\":%llu,"
		"\"remove_events\":%llu,\"vms\":[",
		(unsigned long long)served, (unsigned long long)(s->nrecords - served),
		(unsigned long long)s->refused, (unsigned long long)faults,
		(unsigned long long)demand, (unsigned long long)zero,
		(unsigned long long)removes);
	for (size_t i = 0; i < s->nrecords; i++) {
		if (i)
			fputc(',', f);
		vm_json(f, &s->records[i]);
	}
	pthread_mutex_unlock(&s->lock);
	fputs("]}\n", f);
	return fclose(f) ? -errno : 0;
}

static void totals_add(struct fc_totals *t, const struct lvm_stats *st)
{
	t->faults += st->faults;
	t->pages_demand += st->pages_demand;
	t->pages_background += st->pages_background;
	t->pages_zero += st->pages_zero;
	t->pages_failed += st->pages_failed;
	struct lvm_latency *w = &t->fault_latency;
	const struct lvm_latency *l = &st->fault_latency;
	w->p50_ns = l->p50_ns > w->p50_ns ? l->p50_ns : w->p50_ns;
	w->p90_ns = l->p90_ns > w->p90_ns ? l->p90_ns : w->p90_ns;
	w->p99_ns = l->p99_ns > w->p99_ns ? l->p99_ns : w->p99_ns;
	w->max_ns = l->max_ns > w->max_ns ? l->max_ns : w->max_ns;
	w->count += l->count;
}

void fc_server_totals(struct fc_server *s, struct fc_totals *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_lock(&s->lock);
	t->vms_refused = s->refused;
	for (size_t i = 0; i < s->nrecords; i++) {
		const struct fc_vm_record *r = &s->records[i];
		t->vms_served += r->served;
		t->vms_refused += !r->served;
		t->vms_failed += r->served && (r->st.pages_failed || r->error[0]);
		totals_add(t, &r->st);
	}
	for (struct fc_vm *vm = s->vms; vm; vm = vm->next) {
		if (!vm->engine)
			continue;
		struct lvm_stats st = { .struct_size = sizeof(st) };
		lvm_engine_stats(vm->engine, &st);
		t->vms_served++;
		t->vms_active++;
		totals_add(t, &st);
	}
	pthread_mutex_unlock(&s->lock);
}
