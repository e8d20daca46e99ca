/*
 * client.h - the CLI's HTTP client of the clustermgmt API (libcurl).
 *
 * One blocking request per call: JSON in, JSON out. A call either succeeds
 * (2xx with a JSON body) or fails in one of two ways that the CLI reports
 * with different exit codes: the server refused (it answered 4xx/5xx; its
 * "error" sentence becomes the message) or the server could not be reached
 * (connection, DNS, TLS, timeout).
 */
#ifndef CM_CLIENT_H
#define CM_CLIENT_H

#include <signal.h>

#include <jansson.h>

#include "cli.h"
#include "core/error.h"

/* Where and how to connect. The strings are borrowed, not copied: they
 * must outlive the client. NULL means "not set". */
struct client {
	const char *base_url; /* "http://127.0.0.1:8080", no trailing '/' needed */
	const char *user;     /* HTTP Basic, with password */
	const char *password;
	const char *token;  /* Bearer; used when user is NULL */
	const char *cacert; /* PEM file of CAs to trust for https */
	int is_insecure;    /* skip TLS certificate and host verification */
	long timeout_s;     /* whole-request limit; long polls raise it */
	/* a call under way is abandoned (CLI_UNREACHABLE) once *stop is
	 * non-zero; NULL: never (a long wait sets it for SIGINT) */
	volatile sig_atomic_t *stop;
};

/* A successful answer. Owned by the caller; release with
 * client_reply_free. */
struct client_reply {
	long status;  /* HTTP status, 2xx */
	json_t *json; /* the parsed body */
	char *body;   /* the body as received, NUL-terminated */
};

/* Must be called once before any other client function (curl global
 * init). Returns 0, or -1 and fills err. */
int client_global_init(struct error *err);
void client_global_cleanup(void);

/* Sends `method path` to the server, with body (not stolen; NULL for
 * none) as application/json. path starts with '/' and is appended to
 * base_url; build it with client_path.
 *
 * When neither user nor token is set, credentials for the host are taken
 * from ~/.netrc (or the file named by $NETRC) when it has them.
 *
 * Returns CLI_OK and fills reply; or CLI_REFUSED (err->status = the HTTP
 * status, err->what = the server's "error" sentence); or CLI_UNREACHABLE
 * (err->status = 0, err->what = "cannot reach URL: why"). reply is
 * untouched on failure. */
int client_call(const struct client *c, const char *method, const char *path, json_t *body,
                struct client_reply *reply, struct error *err);

void client_reply_free(struct client_reply *reply);

/* Builds "/seg1/seg2/..." from a NULL-terminated list of segments, each
 * percent-encoded, so names with '/', '?', ' ' etc. stay one segment.
 * Returns a malloc'd string the caller frees. */
char *client_path(const char *segment, ...) __attribute__((sentinel));

#endif
