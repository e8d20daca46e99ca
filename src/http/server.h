/*
 * server.h - the HTTP workers (server.c): start and stop them, and swap
 * the TLS context. Only daemon.c, the room above, calls it.
 */
#ifndef CM_SERVER_H
#define CM_SERVER_H

#include "runtime.h"

/* Sets up h2o, the workers and their loops (listening sockets must be
 * bound already). Returns -1 with err filled. */
int server_start(struct server *s, struct error *err);
/* Stops accepting, answers pending long polls, waits (bounded) for the
 * requests in flight, and joins the workers. Jobs the workers stopped
 * waiting for may still be queued: the engine hands them back to the
 * workers' (now idle) queues, so the workers stay allocated until
 * server_free, which must come after engine_stop. */
void server_stop(struct server *s);
void server_free(struct server *s);
/* Makes ctx (whose reference the server takes over) the TLS context of
 * connections accepted from now on and drops the server's reference to
 * the old one. Any thread; s->ssl_lock must have been initialised. */
void server_set_ssl_ctx(struct server *s, SSL_CTX *ctx);

#endif
