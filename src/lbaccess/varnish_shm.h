/*
 * varnish_shm.h - the counters of Varnish's backends, read from the
 * shared memory of varnishd (its -n working directory) with
 * libvarnishapi's VSM and VSC, the way varnishstat reads them but without
 * a process per reading. The drain proof (drain/lbruntime.c: connections
 * in use, the probes' record) and a deploy's verdict (sample/varnish.c:
 * requests, failures) both read through it; the verdict also reads the
 * log (VSL) through the same attachment (varnish_shm_vsm).
 *
 * A counter is VBE.<vcl>.<backend>.<name>, one set per loaded VCL that
 * has the backend; a reading sums them over the VCLs.
 *
 * varnishd restarting (its worker process, or all of it: the segments go
 * away and come back) makes the next reading say so instead of giving
 * counters: the counters start again from zero, and a reading taken
 * across the restart would mix the old with the new. Includes nothing of
 * ours; no function prints or exits.
 */
#ifndef CM_LBACCESS_VARNISH_SHM_H
#define CM_LBACCESS_VARNISH_SHM_H

#include <stddef.h>
#include <stdint.h>

#define VARNISH_SHM_NAME_MAX 160

/* One backend's counters. The caller sets name (the VCL name, e.g.
 * node_app1); a reading fills the rest. */
struct varnish_shm_backend {
	char name[VARNISH_SHM_NAME_MAX];
	int n_vcls;                    /* loaded VCLs that have it; 0: not found */
	uint64_t req, busy, unhealthy; /* summed over those VCLs */
	uint64_t fail;                 /* connections that failed (see varnish_shm.c), summed */
	uint64_t helddown;             /* connections not tried after a failure, summed */
	uint64_t conn;                 /* connections in use now (in flight), summed */
	int n_happy;                   /* of those, the ones that keep a record of probes */
	uint64_t happy; /* its last probes, bit 0 the newest; meaningful when n_happy is 1 */
};

/* What varnish_shm_read found. */
enum varnish_shm_result {
	VARNISH_SHM_FAILED = -1,   /* why says why: varnishd is not running */
	VARNISH_SHM_READ = 0,      /* the counters are filled */
	VARNISH_SHM_RESTARTED = 1, /* varnishd restarted since the last reading: no counters */
};

struct varnish_shm;
struct vsm;

/* Attaches to the varnishd whose working directory is dir (varnishd -n),
 * waiting at most timeout_ms for its worker process to run. Returns a
 * handle the caller gives back to varnish_shm_close, or NULL with why
 * filled (no such instance, not running, out of memory). */
struct varnish_shm *varnish_shm_open(const char *dir, int timeout_ms, char *why, size_t why_size);

/* Reads the counters of the backends b[0..n) (names set by the caller;
 * the rest is cleared first). Returns a varnish_shm_result. */
int varnish_shm_read(struct varnish_shm *v, struct varnish_shm_backend *b, size_t n, char *why,
                     size_t why_size);

/* The attachment itself, for reading varnishd's log (VSL_CursorVSM);
 * owned by v. */
struct vsm *varnish_shm_vsm(struct varnish_shm *v);

/* Detaches and frees v; NULL is a no-op. */
void varnish_shm_close(struct varnish_shm *v);

#endif
