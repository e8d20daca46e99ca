/*
 * varnish_shm.c - Varnish's backend counters from its shared memory (see
 * varnish_shm.h).
 *
 * VSM_Status, called at the start of every reading, refreshes the list of
 * segments (a VCL loaded or discarded since, a worker restarted) and says
 * whether varnishd restarted; VSC_Iter then visits the counters of the
 * segments that are still valid. Only the VBE counters are selected, so a
 * reading maps what the backends need and not the rest of varnishd's
 * statistics. A counter's name is found from its end: a VCL's name may
 * hold dots, a backend's may not.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vapi/vsc.h>
#include <vapi/vsm.h>

#include "varnish_shm.h"

struct varnish_shm {
	struct vsm *vsm;
	struct vsc *vsc;
};

struct reading {
	struct varnish_shm_backend *backends;
	size_t n;
};

struct varnish_shm *
varnish_shm_open(const char *dir, int timeout_ms, char *why, size_t why_size)
{
	struct varnish_shm *v = calloc(1, sizeof(*v));
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
	if (VSC_Arg(v->vsc, 'I', "VBE.*") <= 0) {
		snprintf(why, why_size, "cannot select Varnish's counters: %s", VSM_Error(v->vsm));
		goto bad;
	}
	return v;
bad:
	varnish_shm_close(v);
	return NULL;
}

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
		else if (strcmp(counter, ".busy") == 0)
			b->busy += value;
		else if (strcmp(counter, ".unhealthy") == 0)
			b->unhealthy += value;
		else if (strcmp(counter, ".conn") == 0)
			b->conn += value;
	}
	return 0;
}

int
varnish_shm_read(struct varnish_shm *v, struct varnish_shm_backend *b, size_t n, char *why,
                 size_t why_size)
{
	struct reading r = {b, n};
	unsigned status;
	size_t i;

	for (i = 0; i < n; i++) {
		char name[VARNISH_SHM_NAME_MAX];
		memcpy(name, b[i].name, sizeof(name));
		memset(&b[i], 0, sizeof(b[i]));
		memcpy(b[i].name, name, sizeof(name));
		b[i].name[sizeof(b[i].name) - 1] = '\0';
	}
	status = VSM_Status(v->vsm);
	if (!(status & VSM_WRK_RUNNING)) {
		snprintf(why, why_size, "Varnish's worker process is not running");
		return VARNISH_SHM_FAILED;
	}
	if (status & (VSM_MGT_RESTARTED | VSM_WRK_RESTARTED)) {
		snprintf(why, why_size, "Varnish restarted: its counters start again");
		return VARNISH_SHM_RESTARTED;
	}
	VSC_Iter(v->vsc, v->vsm, on_counter, &r);
	return VARNISH_SHM_READ;
}
