/*
 * ui.c - the management web page (PRODUCT §7).
 */
#include <string.h>

#include "http.h"

static int
action_is(h2o_iovec_t action, const char *name)
{
	return h2o_memis(action.base, action.len, name, strlen(name));
}

int
ui_handle_root(struct request *r)
{
	(void)r;
	return -1;
}

int
ui_handle_cluster(struct request *r, const struct cluster *c, h2o_iovec_t action)
{
	char location[160];

	if (action_is(action, "manage_main")) {
		snprintf(location, sizeof(location), "%s/managenodes", c->path);
		reply_redirect(r, 302, location);
		return 0;
	}
	return -1;
}

int
ui_session_identify(struct request *r)
{
	(void)r;
	return 0;
}
