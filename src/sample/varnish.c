/*
 * varnish.c - the counters of Varnish's backends, read from varnishd's
 * shared memory with libvarnishapi (see sample.h).
 *
 * Counters (VSC): VBE.<vcl>.<backend>.<counter>, one set per loaded VCL
 * that has the backend; they are summed over the VCLs, so that a VCL
 * reload that keeps the old VCL warm changes nothing, and one that
 * discards it makes the sum go backwards: the caller's reset.
 *
 * The log (VSL) is read from its tail at open, then from where the last
 * reading stopped, one backend transaction (grouped by vxid) at a time:
 * BackendOpen names the backend, BerespStatus is its answer's status (the
 * first one: VCL may rewrite it later), Timestamp Beresp its time since
 * the fetch began. A log that overran the reader (more transactions than
 * it could follow) loses records: the reading says so with a reset, and
 * the reader starts again at the tail. One reading dispatches at most
 * DISPATCH_MAX transactions so that it stays bounded; the rest waits for
 * the next reading.
 *
 * The attachment and the counters are lbaccess/varnish_shm.c's, shared
 * with the drain proof. A varnishd that restarted makes one reading with
 * no data (is_discontinuous) and a log read again from its new tail.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vdef.h>

#include <vapi/vsl.h>
#include <vapi/vsl_int.h>

#include "lbaccess/varnish_shm.h"
#include "sample.h"

#define DISPATCH_MAX 200000
#define BACKENDS_MAX 300 /* a judgement asks about at most 32 nodes and 256 peers */
#define ATTACH_TIMEOUT_MS 2000

/* What the log said about one backend since open. */
struct logged {
	char name[SAMPLE_NAME_MAX];
	uint64_t hrsp[6];
	double latency_ms_total;
	uint64_t timed;
};

struct sample_varnish {
	struct varnish_shm *shm;
	struct VSL_data *vsl;
	struct VSLQ *vslq;
	struct logged backends[BACKENDS_MAX]; /* the backends asked about; a bound */
	size_t n_backends;
	const struct sample_server *asked; /* during a reading: the servers asked about */
	size_t n_asked;
	int is_overrun; /* records were lost since the last reading */
};

static int
start_log(struct sample_varnish *v, char *why, size_t why_size)
{
	struct VSL_cursor *c;

	if (v->vslq != NULL)
		VSLQ_Delete(&v->vslq);
	VSL_ResetError(v->vsl);
	c = VSL_CursorVSM(v->vsl, varnish_shm_vsm(v->shm), VSL_COPT_TAIL | VSL_COPT_BATCH);
	if (c == NULL) {
		snprintf(why, why_size, "cannot read Varnish's log: %s", VSL_Error(v->vsl));
		return -1;
	}
	if ((v->vslq = VSLQ_New(v->vsl, &c, VSL_g_vxid, NULL)) == NULL) {
		snprintf(why, why_size, "cannot read Varnish's log: %s", VSL_Error(v->vsl));
		VSL_DeleteCursor(c);
		return -1;
	}
	return 0;
}

struct sample_varnish *
sample_varnish_open(const char *dir, char *why, size_t why_size)
{
	struct sample_varnish *v = calloc(1, sizeof(*v));

	if (v == NULL) {
		snprintf(why, why_size, "out of memory");
		return NULL;
	}
	if ((v->vsl = VSL_New()) == NULL) {
		snprintf(why, why_size, "out of memory");
		goto bad;
	}
	if ((v->shm = varnish_shm_open(dir, ATTACH_TIMEOUT_MS, why, why_size)) == NULL)
		goto bad;
	if (start_log(v, why, why_size) != 0)
		goto bad;
	return v;
bad:
	sample_varnish_close(v);
	return NULL;
}

void
sample_varnish_close(struct sample_varnish *v)
{
	if (v == NULL)
		return;
	if (v->vslq != NULL)
		VSLQ_Delete(&v->vslq);
	if (v->vsl != NULL)
		VSL_Delete(v->vsl);
	varnish_shm_close(v->shm);
	free(v);
}

static struct logged *
logged_backend(struct sample_varnish *v, const char *name, size_t len)
{
	size_t i;

	if (len >= SAMPLE_NAME_MAX)
		return NULL;
	for (i = 0; i < v->n_backends; i++)
		if (strlen(v->backends[i].name) == len &&
		    memcmp(v->backends[i].name, name, len) == 0)
			return &v->backends[i];
	for (i = 0; i < v->n_asked; i++) /* only a backend asked about gets an entry */
		if (strlen(v->asked[i].name) == len && memcmp(v->asked[i].name, name, len) == 0)
			break;
	if (i == v->n_asked || v->n_backends == BACKENDS_MAX)
		return NULL;
	memcpy(v->backends[v->n_backends].name, name, len);
	v->backends[v->n_backends].name[len] = '\0';
	return &v->backends[v->n_backends++];
}

/* "26 boot.node_app1 127.0.0.1 ..." -> "node_app1" (with or without the
 * VCL's name in front). */
static struct logged *
backend_of_open(struct sample_varnish *v, const char *data)
{
	const char *name = strchr(data, ' '), *end, *dot;

	if (name == NULL)
		return NULL;
	name++;
	end = strchr(name, ' ');
	if (end == NULL)
		end = name + strlen(name);
	for (dot = name; dot < end; dot++)
		if (*dot == '.')
			name = dot + 1;
	return logged_backend(v, name, (size_t)(end - name));
}

/* One backend transaction's records into its backend's counts. */
static void
read_transaction(struct sample_varnish *v, struct VSL_transaction *t)
{
	struct logged *b = NULL;
	int status = 0;
	double since_start = -1;

	while (VSL_Next(t->c) == 1) {
		const uint32_t *rec = t->c->rec.ptr;
		const char *data = VSL_CDATA(rec);
		switch (VSL_TAG(rec)) {
		case SLT_BackendOpen:
			if (b == NULL)
				b = backend_of_open(v, data);
			break;
		case SLT_BerespStatus:
			if (status == 0)
				status = atoi(data);
			break;
		case SLT_Timestamp:
			if (strncmp(data, "Beresp: ", 8) == 0 && since_start < 0 &&
			    sscanf(data + 8, "%*f %lf", &since_start) != 1)
				since_start = -1;
			break;
		default:
			break;
		}
	}
	if (b == NULL || status < 100)
		return;
	b->hrsp[status < 600 ? status / 100 - 1 : 5]++;
	if (since_start >= 0) {
		b->latency_ms_total += since_start * 1000.0;
		b->timed++;
	}
}

static int
on_transactions(struct VSL_data *vsl, struct VSL_transaction *const trans[], void *priv)
{
	struct sample_varnish *v = priv;
	int i;

	(void)vsl;
	for (i = 0; trans[i] != NULL; i++)
		if (trans[i]->type == VSL_t_bereq)
			read_transaction(v, trans[i]);
	return 0;
}

static void
read_log(struct sample_varnish *v, char *why, size_t why_size)
{
	int i, rc = 1;

	for (i = 0; i < DISPATCH_MAX && rc == 1; i++)
		rc = VSLQ_Dispatch(v->vslq, on_transactions, v);
	if (rc < 0) { /* overrun or abandoned: records lost */
		v->is_overrun = 1;
		if (start_log(v, why, why_size) != 0)
			v->vslq = NULL;
	}
}

/* The counters of servers[0..n) into them, or -1 (why filled) when
 * varnishd is not running, 1 when it restarted since the last reading. */
static int
read_counters(struct sample_varnish *v, struct sample_server *servers, size_t n, char *why,
              size_t why_size)
{
	struct varnish_shm_backend *b = calloc(n > 0 ? n : 1, sizeof(*b));
	size_t i;
	int rc;

	if (b == NULL) {
		snprintf(why, why_size, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++)
		snprintf(b[i].name, sizeof(b[i].name), "%s", servers[i].name);
	rc = varnish_shm_read(v->shm, b, n, why, why_size);
	for (i = 0; rc == VARNISH_SHM_READ && i < n; i++) {
		servers[i].is_found = b[i].n_vcls > 0;
		servers[i].requests = b[i].req;
		servers[i].econ = b[i].fail + b[i].helddown; /* both answered 503 */
		servers[i].busy = b[i].busy;
		servers[i].unhealthy = b[i].unhealthy;
	}
	free(b);
	return rc;
}

int
sample_varnish(struct sample_varnish *v, struct sample_server *servers, size_t n, char *why,
               size_t why_size)
{
	size_t i, j;
	int rc;

	for (i = 0; i < n; i++) {
		char name[SAMPLE_NAME_MAX];
		memcpy(name, servers[i].name, sizeof(name));
		memset(&servers[i], 0, sizeof(servers[i]));
		memcpy(servers[i].name, name, sizeof(name));
		servers[i].rtime_ms = -1;
	}
	if ((rc = read_counters(v, servers, n, why, why_size)) < 0)
		return -1;
	why[0] = '\0';
	v->asked = servers;
	v->n_asked = n;
	if (rc == VARNISH_SHM_RESTARTED || v->vslq == NULL) {
		/* the log restarted too, or was lost: read it again from its
		 * tail; what it held meanwhile is not counted, so this reading
		 * cannot be compared with the last */
		v->is_overrun = 1;
		if (start_log(v, why, why_size) != 0)
			v->vslq = NULL;
	} else
		read_log(v, why, why_size);
	v->asked = NULL;
	v->n_asked = 0;
	for (i = 0; i < n; i++)
		for (j = 0; j < v->n_backends; j++)
			if (strcmp(servers[i].name, v->backends[j].name) == 0) {
				memcpy(servers[i].hrsp, v->backends[j].hrsp,
				       sizeof(servers[i].hrsp));
				servers[i].latency_ms_total = v->backends[j].latency_ms_total;
				servers[i].timed_total = v->backends[j].timed;
			}
	if (v->is_overrun) { /* records or counters lost: this reading cannot be compared */
		v->is_overrun = 0;
		for (i = 0; i < n; i++)
			servers[i].is_discontinuous = 1;
	}
	return 0;
}
