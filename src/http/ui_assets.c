/*
 * ui_assets.c - serves /static/NAME from the assets embedded at build
 * time (ui_assets.h). Assets change only with the binary; replies still
 * carry Cache-Control: no-store like every reply of the daemon, which
 * costs little on the networks operators use.
 */
#include <string.h>

#include "ui.h"
#include "ui_assets.h"

void
ui_asset_get(struct request *r, const struct route *rt)
{
	const struct ui_asset *a;

	for (a = ui_assets; a->name != NULL; a++) {
		if (strcmp(rt->name, a->name) != 0)
			continue;
		ui_header(r, "x-content-type-options", "nosniff");
		reply_bytes(r, 200, a->content_type, a->data, a->len);
		return;
	}
	reply_text(r, 404, "not found");
}
