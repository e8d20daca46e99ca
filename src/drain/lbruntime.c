/*
 * lbruntime.c - HAProxy's runtime socket and Varnish's counters (see
 * lbruntime.h).
 *
 * Both are read through lbaccess/, as a deploy's verdict reads them, so
 * the two accept the same addresses and stay bounded by the timeout. The
 * HAProxy socket is asked "show stat" (CSV; the header line names the
 * columns, so their order does not matter).
 *
 * Varnish's counters are read from its shared memory. Attaching costs
 * most of a reading (mapping every statistics segment and parsing their
 * description: 1.1 and 6.6 ms with 16 and 1,000 backends on a quiet
 * machine, against 0.03 and 0.5 ms for a reading on a kept attachment:
 * bench/varnish_counters, docs/BENCHMARKS.md), so an
 * attachment is kept per working directory, at most ATTACHED_MAX of them,
 * each closed once unused for ATTACHED_IDLE_MS (looked at on every call)
 * or when varnishd is gone. A reading after varnishd restarted gives no
 * answer (-1, "restarted"), never the old counters. One mutex covers the
 * table and the reading: the daemon asks from one thread (lbwatch), the
 * CLI from its main thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lbaccess/haproxy_socket.h"
#include "lbaccess/monotonic.h"
#include "lbaccess/varnish_shm.h"
#include "lbruntime.h"

#define ANSWER_MAX (1024 * 1024)

/* The index of column name in the CSV header line (without "# "), or -1. */
static int
column_of(const char *header, const char *name)
{
	size_t len = strlen(name);
	const char *p = header;
	int i = 0;

	while (p != NULL && *p != '\0' && *p != '\n') {
		if (strncmp(p, name, len) == 0 && (p[len] == ',' || p[len] == '\n'))
			return i;
		p = strchr(p, ',');
		if (p != NULL)
			p++;
		i++;
	}
	return -1;
}

/* Field i of the CSV line into buf (cut to size). */
static void
field(const char *line, int i, char *buf, size_t size)
{
	const char *p = line, *end;
	size_t len;

	while (i-- > 0 && p != NULL)
		if ((p = strchr(p, ',')) != NULL)
			p++;
	if (p == NULL) {
		buf[0] = '\0';
		return;
	}
	end = p + strcspn(p, ",\n");
	len = (size_t)(end - p) < size - 1 ? (size_t)(end - p) : size - 1;
	memcpy(buf, p, len);
	buf[len] = '\0';
}

int
lbruntime_haproxy(const char *addr, const char *backend, const char *server, int timeout_ms,
                  struct lb_server_state *out, char *why, size_t why_size)
{
	int c_px, c_sv, c_scur, c_status, rc = -1;
	char *text, *line, px[128], sv[128], scur[32];

	memset(out, 0, sizeof(*out));
	if ((text = haproxy_socket_ask(addr, "show stat\n", timeout_ms, ANSWER_MAX, why,
	                               why_size)) == NULL)
		return -1;
	if (strncmp(text, "# ", 2) != 0) {
		snprintf(why, why_size, "%s: not a HAProxy stats answer: %.60s", addr, text);
		goto done;
	}
	c_px = column_of(text + 2, "pxname");
	c_sv = column_of(text + 2, "svname");
	c_scur = column_of(text + 2, "scur");
	c_status = column_of(text + 2, "status");
	if (c_px < 0 || c_sv < 0 || c_scur < 0 || c_status < 0) {
		snprintf(why, why_size, "%s: the stats lack pxname, svname, scur or status", addr);
		goto done;
	}
	for (line = strchr(text, '\n'); line != NULL && line[1] != '\0';
	     line = strchr(line + 1, '\n')) {
		field(line + 1, c_px, px, sizeof(px));
		field(line + 1, c_sv, sv, sizeof(sv));
		if (strcmp(px, backend) != 0 || strcmp(sv, server) != 0)
			continue;
		field(line + 1, c_scur, scur, sizeof(scur));
		field(line + 1, c_status, out->status, sizeof(out->status));
		out->in_flight = strtol(scur, NULL, 10);
		rc = 0;
		goto done;
	}
	snprintf(why, why_size, "%s has no server %s in backend %s", addr, server, backend);
done:
	free(text);
	return rc;
}

int
lbruntime_haproxy_is_out(const char *status)
{
	return strncmp(status, "MAINT", 5) == 0 || strncmp(status, "DRAIN", 5) == 0 ||
	       strncmp(status, "DOWN", 4) == 0 || strncmp(status, "NOLB", 4) == 0;
}

int
lbruntime_haproxy_is_in(const char *status)
{
	return strncmp(status, "UP", 2) == 0 && strstr(status, "DRAIN") == NULL;
}

void
lbruntime_varnish_backend(const char *node, char *buf, size_t size)
{
	size_t used = 0;

	used = (size_t)snprintf(buf, size, "node_");
	for (; *node != '\0' && used + 3 < size; node++) {
		if (*node == '_') {
			buf[used++] = '_';
			buf[used++] = '_';
		} else if (*node == '.') {
			buf[used++] = '_';
			buf[used++] = 'd';
		} else
			buf[used++] = *node;
	}
	buf[used] = '\0';
}

#define ATTACHED_MAX 16
#define ATTACHED_IDLE_MS 60000
#define ATTACHED_DIR_MAX 256

/* A kept attachment to the varnishd of dir. */
struct attached {
	char dir[ATTACHED_DIR_MAX];
	struct varnish_shm *shm; /* NULL: a free slot */
	long long used_at;       /* ms, monotonic */
};

static pthread_mutex_t attached_lock = PTHREAD_MUTEX_INITIALIZER;
static struct attached attached[ATTACHED_MAX];

static void
detach(struct attached *a)
{
	varnish_shm_close(a->shm);
	a->shm = NULL;
	a->dir[0] = '\0';
}

/* Is slot a better place for a new attachment than than: a free slot,
 * or one used less recently? */
static int
is_better_slot(const struct attached *slot, const struct attached *than)
{
	if (than->shm == NULL)
		return 0;
	return slot->shm == NULL || slot->used_at < than->used_at;
}

/* The attachment to dir, made when there is none (in a free slot, or in
 * the least recently used one); NULL with why filled. Closes the idle
 * ones on the way. With attached_lock held. */
static struct attached *
attachment(const char *dir, int timeout_ms, char *why, size_t why_size)
{
	struct attached *a, *slot = NULL;
	long long now = monotonic_ms();

	for (a = attached; a < attached + ATTACHED_MAX; a++) {
		if (a->shm != NULL && strcmp(a->dir, dir) == 0)
			return a;
		if (a->shm != NULL && now - a->used_at > ATTACHED_IDLE_MS)
			detach(a);
		if (slot == NULL || is_better_slot(a, slot))
			slot = a;
	}
	if (slot->shm != NULL)
		detach(slot);
	if ((slot->shm = varnish_shm_open(dir, timeout_ms, why, why_size)) == NULL)
		return NULL;
	memcpy(slot->dir, dir, strlen(dir) + 1);
	return slot;
}

/* The counters of backend at the Varnish with working directory dir.
 * Returns 0, or -1 with why filled. */
static int
read_varnish(const char *dir, const char *backend, int timeout_ms, struct varnish_shm_backend *b,
             char *why, size_t why_size)
{
	struct attached *a;
	int rc = VARNISH_SHM_FAILED;

	memset(b, 0, sizeof(*b));
	if (strlen(backend) >= sizeof(b->name)) {
		snprintf(why, why_size, "backend name too long: %.60s...", backend);
		return -1;
	}
	if (strlen(dir) >= ATTACHED_DIR_MAX) {
		snprintf(why, why_size, "Varnish working directory too long: %.60s...", dir);
		return -1;
	}
	memcpy(b->name, backend, strlen(backend) + 1);
	pthread_mutex_lock(&attached_lock);
	if ((a = attachment(dir, timeout_ms, why, why_size)) != NULL) {
		a->used_at = monotonic_ms();
		rc = varnish_shm_read(a->shm, b, 1, why, why_size);
		if (rc == VARNISH_SHM_FAILED) /* gone: attach again next time */
			detach(a);
	}
	pthread_mutex_unlock(&attached_lock);
	if (rc != VARNISH_SHM_READ)
		return -1;
	if (b->n_vcls == 0) {
		snprintf(why, why_size, "Varnish at %s has no backend %s", dir, backend);
		return -1;
	}
	return 0;
}

int
lbruntime_varnish(const char *dir, const char *backend, int timeout_ms, struct lb_server_state *out,
                  char *why, size_t why_size)
{
	struct varnish_shm_backend b;

	memset(out, 0, sizeof(*out));
	if (read_varnish(dir, backend, timeout_ms, &b, why, why_size) != 0)
		return -1;
	out->in_flight = (long)b.conn;
	return 0;
}

int
lbruntime_varnish_happy(const char *dir, const char *backend, int timeout_ms,
                        unsigned long long *bits, char *why, size_t why_size)
{
	struct varnish_shm_backend b;

	*bits = 0;
	if (read_varnish(dir, backend, timeout_ms, &b, why, why_size) != 0)
		return -1;
	if (b.n_happy != 1) {
		snprintf(why, why_size, "Varnish at %s has %s backend %s", dir,
		         b.n_happy == 0 ? "no" : "more than one", backend);
		return -1;
	}
	*bits = b.happy;
	return 0;
}
