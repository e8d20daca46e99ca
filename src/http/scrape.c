/*
 * scrape.c - GET /metrics: who may read it, and the answer, which
 * observe/metrics.c renders from the snapshot, the observe table and the
 * daemon's counters (docs/METRICS.md).
 *
 * Access (the router's gate ROUTE_LOCAL_OR_CREDENTIALS). A connection
 * made to a loopback address (the default listener, 127.0.0.1:8080, or
 * 127.0.0.1 on a wildcard listener) comes from this host: /metrics is
 * public there, as node_exporter's port is. On any other address it is a
 * read like the others and needs a viewer (a token is cheapest for a
 * scraper: no argon2id per scrape). A --metrics-listen listener has a
 * worker of its own that answers /metrics and nothing else, without
 * credentials, for a monitoring network; its rendering never holds up a
 * probe.
 *
 * Rendering 10,000 nodes takes about 5 ms on the worker that received the
 * request (docs/BENCHMARKS.md); a probe arriving on that worker then
 * waits that long, which is why the dedicated listener exists.
 */
#include <stdlib.h>

#include "../observe/metrics.h"
#include "../util/timefmt.h"
#include "auth.h"
#include "scrape.h"
#include "http.h"
#include "server_internal.h"

static void
answer(struct request *r)
{
	struct server *s = r->server;
	struct engine_stats engine;
	struct auth_stats auth;
	struct metrics_stats stats;
	struct metrics_process process;
	size_t len;
	char *text;

	engine_stats(s->engine, &engine);
	auth_stats(s->auth, &auth);
	stats = (struct metrics_stats){
	    .store_up = engine.is_store_up,
	    .long_polls_held = (uint64_t)atomic_load(&s->n_long_polls),
	    .password_checks_queued = (uint64_t)auth.pending,
	    .password_checks_hashed = (uint64_t)auth.hashed,
	    .password_checks_dropped = (uint64_t)auth.dropped,
	    .password_checks_refused = (uint64_t)auth.refused,
	    .writes_total = engine.writes_committed,
	    .writes_failed_total = engine.writes_failed,
	    .write_latency = engine.write_latency,
	};
	metrics_process_read(&process); /* what it could not read shows as 0 */
	text =
	    metrics_render(request_snapshot(r), s->observe, &stats, &process, time_now_ms(), &len);
	reply_bytes(r, 200, METRICS_CONTENT_TYPE, text, len);
	free(text);
}

void
scrape_handle(struct request *r, const struct route *rt)
{
	(void)rt;
	answer(r);
}
