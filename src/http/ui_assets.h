/*
 * ui_assets.h - the web page's CSS, JS and icon, embedded in the binary at
 * build time (src/http/assets/, turned into a C array by embed.py), so
 * the daemon serves everything the page uses and needs no files at run
 * time.
 */
#ifndef CM_UI_ASSETS_H
#define CM_UI_ASSETS_H

#include <stddef.h>

struct ui_asset {
	const char *name; /* served as /static/NAME */
	const char *content_type;
	const char *data;
	size_t len;
};

/* Ends with an entry whose name is NULL. */
extern const struct ui_asset ui_assets[];

#endif
