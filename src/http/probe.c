/*
 * probe.c - the load balancers' health probe: GET/HEAD {mount}?node=NAME,
 * with &lb=LBNAME when the load balancer names itself (lbconfig --lb).
 *
 * This is the hot path. It reads the published snapshot: one atomic
 * pointer load, a binary search for the node, and a static answer. No
 * database, no allocation outside h2o's request pool. The node name is
 * taken from the raw query string without decoding, since a valid name
 * never needs percent-encoding (an encoded one is simply unknown).
 *
 * The answer for a known node also depends on its application check, and
 * is recorded as an observed probe (who asked, what it was told): both in
 * one call to observe.c, which takes one short, striped mutex and does not
 * allocate once the node and the client are known.
 */
#include <stdlib.h>
#include <string.h>

#include "../observe/observe.h"
#include "../util/url.h"
#include "probe.h"

/* The raw value of the first key=... in the query, or {NULL, 0} when
 * absent. */
static h2o_iovec_t
query_value(h2o_iovec_t query, const char *key)
{
	const char *pos = query.base;
	struct url_form_pair pair;

	while (url_form_next(&pos, query.base + query.len, &pair))
		if (pair.has_value && url_form_key_is(&pair, key))
			return h2o_iovec_init(pair.value, pair.value_len);
	return h2o_iovec_init(NULL, 0);
}

void
probe_handle(struct request *r, const struct route *rt)
{
	const struct cluster *c = rt->mounted;
	h2o_iovec_t name = query_value(r->query, "node");
	h2o_iovec_t lb = query_value(r->query, "lb");
	const char *fallback = r->server_default_node;
	struct observe_client who = {.protocol = OBSERVE_HTTP};
	enum observe_answer answer;
	h2o_iovec_t user_agent;
	const struct node *n;

	if (name.base == NULL && fallback != NULL)
		name = h2o_iovec_init(fallback, strlen(fallback));
	if (name.base == NULL) {
		reply_text(r, 400, "node not present in request");
		return;
	}
	n = cluster_find_node(c, name.base, name.len);
	if (n == NULL) {
		reply_text(r, 404, "specified node not found");
		return;
	}
#ifdef CM_LEAK_CANARY
	/* Test builds only (make lsan-check): a request handler's leak, which
	 * LeakSanitizer must report despite tools/lsan.supp. */
	{
		char *volatile leak = malloc(4242);
		if (leak != NULL)
			leak[0] = 'x';
	}
#endif
	user_agent = request_header(r, H2O_TOKEN_USER_AGENT);
	who.address = r->address;
	who.user_agent = user_agent.base;
	who.user_agent_len = user_agent.len;
	/* lb=NAME (lbconfig --lb) names the load balancer; a value that is not
	 * a valid name is ignored, so a typo never fails the probe. */
	if (lb.base != NULL && observe_lb_is_known(c, lb.base, lb.len)) {
		who.lb = lb.base;
		who.lb_len = lb.len;
	}
	answer = observe_answer_probe(request_observe(r), c->name, n, &who,
	                              (int64_t)h2o_now(r->req->conn->ctx->loop));
	reply_text(r, observe_answer_http_status(answer), observe_answer_http_body(answer));
}
