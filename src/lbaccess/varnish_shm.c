/*
 * varnish_shm.c - Varnish's backend counters from its shared memory (see
 * varnish_shm.h).
 *
 * VSM_Status, called at the start of every reading, refreshes the list of
 * segments (a VCL loaded or discarded since, a worker restarted) and says
 * whether varnishd restarted; VSC_Iter then visits the counters of the
 * segments that are still valid. Only the VBE counters and the manager's
 * MGT.child_start are selected, so a reading maps what the backends need
 * and not the rest of varnishd's statistics. A counter's name is found
 * from its end: a VCL's name may hold dots, a backend's may not.
 *
 * A restart is also told by MGT.child_start, the number of workers the
 * manager started: VSM_Status tells it from the worker's index, which the
 * new worker writes while it starts, so a reading taken then can see the
 * new worker running before the index says it restarted. A reading in
 * which child_start moved gives no counters, whatever VSM_Status said.
 * Between a worker's death and the manager's cleanup a reading still
 * finds the dead worker's last counters: the last values, never counted
 * twice, and gone once the new worker runs.
 *
 * A failed connection: Varnish 7.1 counts a refused connection in
 * fail_econnrefused and leaves fail itself at 0, where the documentation
 * calls fail the connections that failed; a reading takes the larger of
 * fail and the sum of its fail_* parts, right whichever way a version
 * counts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vapi/vsc.h>
#include <vapi/vsm.h>

#include "monotonic.h"
#include "varnish_shm.h"

struct varnish_shm {
	struct vsm *vsm;
	struct vsc *vsc;
	uint64_t child_start; /* MGT.child_start at the last reading */
	int has_child_start;
};

struct reading {
	struct varnish_shm_backend *backends;
	uint64_t *fail_parts; /* per backend: the sum of fail_* */
	size_t n;
	uint64_t child_start;
	int has_child_start;
};

void
varnish_shm_close(struct varnish_shm *v)
{
	if (v == NULL)
		return;
	if (v->vsc != NULL)
		VSC_Destroy(&v->vsc, v->vsm);
	if (v->vsm != NULL)
		VSM_Destroy(&v->vsm);
	free(v);
}

struct vsm *
varnish_shm_vsm(struct varnish_shm *v)
{
	return v->vsm;
}

/* "VBE.boot.node_app1.req": adds the value to the backend asked about. */
static int
on_counter(void *priv, const struct VSC_point *pt)
{
	struct reading *r = priv;
	const char *name = pt->name, *counter, *backend;
	uint64_t value = *pt->ptr;
	size_t i, len;

	if (strcmp(name, "MGT.child_start") == 0) {
		r->child_start = value;
		r->has_child_start = 1;
		return 0;
	}
	if (strncmp(name, "VBE.", 4) != 0 || (counter = strrchr(name, '.')) == NULL ||
	    counter <= name + 4)
		return 0;
	for (backend = counter - 1; backend > name + 4 && backend[-1] != '.'; backend--)
		;
	len = (size_t)(counter - backend);
	for (i = 0; i < r->n; i++) {
		struct varnish_shm_backend *b = &r->backends[i];
		if (strncmp(b->name, backend, len) != 0 || b->name[len] != '\0')
			continue;
		if (strcmp(counter, ".happy") == 0) {
			b->n_happy++;
			b->happy = value;
		} else if (strcmp(counter, ".req") == 0) { /* one per VCL: counts them */
			b->n_vcls++;
			b->req += value;
		} else if (strcmp(counter, ".fail") == 0)
			b->fail += value;
		else if (strncmp(counter, ".fail_", 6) == 0)
			r->fail_parts[i] += value;
		else if (strcmp(counter, ".helddown") == 0)
			b->helddown += value;
		else if (strcmp(counter, ".busy") == 0)
			b->busy += value;
		else if (strcmp(counter, ".unhealthy") == 0)
			b->unhealthy += value;
		else if (strcmp(counter, ".conn") == 0)
			b->conn += value;
	}
	return 0;
}

/* Zeroes everything but the name. */
static void
clear_counters(struct varnish_shm_backend *b)
{
	char name[VARNISH_SHM_NAME_MAX];

	memcpy(name, b->name, sizeof(name));
	memset(b, 0, sizeof(*b));
	memcpy(b->name, name, sizeof(name));
	b->name[sizeof(b->name) - 1] = '\0';
}

int
varnish_shm_read(struct varnish_shm *v, struct varnish_shm_backend *b, size_t n, char *why,
                 size_t why_size)
{
	struct reading r = {b, NULL, n, 0, 0};
	int is_restarted;
	unsigned status;
	size_t i;

	for (i = 0; i < n; i++)
		clear_counters(&b[i]);
	status = VSM_Status(v->vsm);
	if (!(status & VSM_WRK_RUNNING)) {
		snprintf(why, why_size, "Varnish's worker process is not running");
		return VARNISH_SHM_FAILED;
	}
	if ((r.fail_parts = calloc(n > 0 ? n : 1, sizeof(*r.fail_parts))) == NULL) {
		snprintf(why, why_size, "out of memory");
		return VARNISH_SHM_FAILED;
	}
	VSC_Iter(v->vsc, v->vsm, on_counter, &r);
	is_restarted = (status & (VSM_MGT_RESTARTED | VSM_WRK_RESTARTED)) != 0 ||
	               (r.has_child_start && v->has_child_start && r.child_start != v->child_start);
	if (r.has_child_start) {
		v->child_start = r.child_start;
		v->has_child_start = 1;
	}
	for (i = 0; i < n; i++) {
		if (r.fail_parts[i] > b[i].fail)
			b[i].fail = r.fail_parts[i];
		if (is_restarted)
			clear_counters(&b[i]);
	}
	free(r.fail_parts);
	if (is_restarted) {
		snprintf(why, why_size, "Varnish restarted: its counters start again");
		return VARNISH_SHM_RESTARTED;
	}
	return VARNISH_SHM_READ;
}

struct varnish_shm *
varnish_shm_open(const char *dir, int timeout_ms, char *why, size_t why_size)
{
	struct varnish_shm *v = calloc(1, sizeof(*v));
	struct timespec pause = {0, 50 * 1000 * 1000};
	long long deadline = monotonic_ms() + timeout_ms;
	char patience[32];

	if (v == NULL) {
		snprintf(why, why_size, "out of memory");
		return NULL;
	}
	snprintf(patience, sizeof(patience), "%.3f", (timeout_ms > 0 ? timeout_ms : 0) / 1000.0);
	if ((v->vsm = VSM_New()) == NULL || (v->vsc = VSC_New()) == NULL) {
		snprintf(why, why_size, "out of memory");
		goto bad;
	}
	if (VSM_Arg(v->vsm, 'n', dir) <= 0 || VSM_Arg(v->vsm, 't', patience) <= 0 ||
	    VSM_Attach(v->vsm, -1) != 0) {
		snprintf(why, why_size, "cannot attach to Varnish at %s: %s", dir,
		         VSM_Error(v->vsm));
		goto bad;
	}
	if (VSC_Arg(v->vsc, 'I', "VBE.*") <= 0 || VSC_Arg(v->vsc, 'I', "MGT.child_start") <= 0) {
		snprintf(why, why_size, "cannot select Varnish's counters: %s", VSM_Error(v->vsm));
		goto bad;
	}
	/* VSM_Attach waits for the manager only; a first reading takes in the
	 * worker's segments and its child_start, so that the caller's first
	 * reading is a reading, not "restarted" */
	while (varnish_shm_read(v, NULL, 0, why, why_size) != VARNISH_SHM_READ) {
		if (monotonic_ms() >= deadline) {
			snprintf(why, why_size,
			         "cannot attach to Varnish at %s: its worker is not running", dir);
			goto bad;
		}
		nanosleep(&pause, NULL);
	}
	return v;
bad:
	varnish_shm_close(v);
	return NULL;
}
