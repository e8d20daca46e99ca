/*
 * haproxy_socket.h - one question to HAProxy's runtime (stats/admin)
 * socket, and its whole answer. Both readers of HAProxy use it: the drain
 * proof (drain/lbruntime.c: "show stat") and a deploy's verdict
 * (sample/haproxy.c: "show stat ... typed"), so they accept the same
 * addresses:
 *
 *   /unix/path          unix@/unix/path
 *   host:port           ipv4@host:port      ipv6@[addr]:port    [addr]:port
 *
 * the forms HAProxy's own `stats socket` line is written in. Includes
 * nothing of ours; bounded by its timeout; leaves no descriptor behind.
 */
#ifndef CM_LBACCESS_HAPROXY_SOCKET_H
#define CM_LBACCESS_HAPROXY_SOCKET_H

#include <stddef.h>

/* Connects to addr, sends question (one command ending in "\n"; HAProxy
 * answers it and closes) and reads the answer until HAProxy closes, all
 * by timeout_ms. Returns the answer as a malloc'd NUL-terminated string
 * the caller frees, or NULL with why filled: an address of no form above,
 * no connection, no complete answer in time, an answer longer than
 * answer_max bytes. */
char *haproxy_socket_ask(const char *addr, const char *question, int timeout_ms, size_t answer_max,
                         char *why, size_t why_size);

#endif
