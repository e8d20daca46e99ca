/*
 * ui_assets.c - serves /static/NAME from the assets embedded at build
 * time (ui_assets.h). Assets change only with the binary; replies still
 * carry Cache-Control: no-store like every reply of the daemon, which
 * costs little on the networks operators use.
 */
#include <string.h>

#include "ui.h"
#include "ui_assets.h"

int
ui_asset_serve(struct request *r, h2o_iovec_t name)
{
	const struct ui_asset *a;

	for (a = ui_assets; a->name != NULL; a++) {
		if (!h2o_memis(name.base, name.len, a->name, strlen(a->name)))
			continue;
		if (!request_method_is(r, "GET") && !request_method_is(r, "HEAD")) {
			ui_header(r, "allow", "GET, HEAD");
			reply_text(r, 405, "method not allowed");
			return 0;
		}
		ui_header(r, "x-content-type-options", "nosniff");
		reply_bytes(r, 200, a->content_type, a->data, a->len);
		return 0;
	}
	return -1;
}
