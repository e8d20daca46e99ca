/*
 * agent.h - the HAProxy agent-check listener (`serve --agent-listen`).
 *
 * HAProxy connects, may send its `agent-send` line (`NAME` or
 * `CLUSTER/NAME`, newline-terminated; a bare NAME is in the cluster
 * "default"; ` lb=LBNAME` after it names the load balancer, as
 * `lbconfig --lb` writes it), and reads one line back that sets the server's state:
 *
 *   online                      "up ready"
 *   online, check failing       "ready down #application check failing"
 *   drain                       "up drain"
 *   drain, check failing        "drain down #application check failing"
 *   offline                     "maint"
 *   unknown node or cluster     "down #unknown node CLUSTER/NAME"
 *   no line and no --node       "down #no node: set agent-send or serve --node"
 *
 * When nothing (or half a line) arrives within AGENT_READ_TIMEOUT_MS, what
 * arrived is taken as the name, or --node when nothing did. Then the
 * connection is closed. Answers come from the current snapshot and the
 * check states in observe.h, never from the database, and each one is
 * recorded there as an observed probe (protocol "agent").
 *
 * Threading: everything runs on the event loop given to agent_start
 * (worker 0's), which must be a registered engine reader.
 */
#ifndef CM_AGENT_H
#define CM_AGENT_H

#include <h2o.h>

#include "../engine/engine.h"
#include "../observe/observe.h"

#define AGENT_READ_TIMEOUT_MS 300
#define AGENT_LINE_MAX 160 /* CLUSTER/NAME is at most 129 bytes */

struct agent;

/* Closes one idle connection of the loop to free a descriptor; returns 0
 * when there is none. */
typedef int (*agent_make_room_fn)(void *arg);

/* Starts accepting on listen_fd (bound and listening; the agent owns it
 * from now on) on loop. default_node (serve --node) may be NULL; it and
 * the other arguments must outlive the agent. When accept fails for lack
 * of descriptors the agent calls make_room(arg) (may be NULL) and tries
 * again, or stops polling its listener for a short while. Never NULL. */
struct agent *agent_start(h2o_loop_t *loop, int listen_fd, struct engine *engine,
                          struct observe *observe, const char *default_node,
                          agent_make_room_fn make_room, void *make_room_arg);

/* Stops accepting and closes every connection still open, unanswered,
 * then frees the agent. Call it on the loop's thread. NULL is allowed. */
void agent_stop(struct agent *a);

#endif
