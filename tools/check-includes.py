#!/usr/bin/env python3
"""Fails when an #include breaks the direction of the layers.

docs/ARCHITECTURE.md draws the layers; this is the same table, enforced.
A layer is a folder of src/; each may include its own headers and those
of the layers listed for it, nothing else, directly or through what those
headers include in turn. Every header has an include guard of its own.
The rule is about quoted includes of the project's own headers; system
and library headers (<...>) are free.

Usage: tools/check-includes.py [SRC_DIR]   (default: src next to tools/)
Prints one line per offending #include and exits 1, or exits 0 silently.
"""
import os
import re
import sys

# Who may include whom. Keep in step with docs/ARCHITECTURE.md.
ALLOWED = {
    "util": set(),
    "core": {"util"},
    "store": {"core", "util"},
    "engine": {"store", "core", "util"},
    "observe": {"engine", "core", "util"},
    "lb": {"core", "util"},
    # the load balancers' runtime access both readers share (HAProxy's
    # socket, Varnish's shared memory): I/O, includes nothing of ours
    "lbaccess": set(),
    # the drain proof's judgement and the load balancers' runtime access
    "drain": {"lbaccess", "util"},
    # the statistics of a rollout's verdict: pure arithmetic, includes nothing
    "analysis": set(),
    # what the load balancers counted per server (HAProxy's socket,
    # Varnish's shared memory): I/O, but nothing of the product's model
    "sample": {"lbaccess"},
    "agent": {"observe", "engine", "core", "util"},
    "http": {"agent", "observe", "engine", "lb", "drain", "core", "util"},
    "cli": {"lb", "drain", "analysis", "sample", "core", "util"},
    # src/main.c only dispatches to the programs' entry points (the
    # daemon, the HTTP client, `store copy`)
    ".": {"cli", "http", "store"},
}

# Inside a layer: headers that only some of its files may include. The
# surfaces of http see struct request (http.h) and their own header, not
# the server's runtime state nor the path table, which belong to the
# server, the router and authentication.
PRIVATE = {
    "http/server_internal.h": {"http/daemon.c", "http/daemon_options.c", "http/daemon_tls.c",
                               "http/server.c", "http/request.c", "http/router.c",
                               "http/auth.c", "http/auth_queue.c", "http/scrape.c"},
    "http/auth_internal.h": {"http/auth.c", "http/auth_queue.c"},
    "http/oidc_internal.h": {"http/oidc.c", "http/oidc_provider.c"},
    "http/router.h": {"http/server.c", "http/router.c"},
    "http/api_v1_internal.h": {"http/api_v1.c", "http/api_v1_observe.c", "http/api_v1_lbs.c",
                               "http/api_v1_admin.c"},
    "http/daemon_internal.h": {"http/daemon.c", "http/daemon_options.c", "http/daemon_tls.c"},
}

# Inside http: rooms, from the bottom up. A file may include the http
# headers of its own room and of the rooms below it, never of one above:
# the request API knows nothing of authentication, authentication nothing
# of the surfaces, the surfaces nothing of the router, the router nothing
# of the accept loop. (The circle this forbids: server.c both dispatching
# to the router and being the API every surface calls back.)
HTTP_ROOMS = [
    ("request", {"request.h", "request.c", "server_internal.h"}),
    ("auth and replies", {"http.h", "auth.h", "auth.c", "auth_internal.h",
                          "auth_queue.c", "auth_basic.c", "auth_principal.c",
                          "roles.h", "roles.c", "oidc.h", "oidc.c", "oidc_internal.h",
                          "oidc_provider.c", "reply.c", "render.h",
                          "render.c", "form.c", "auth_event.h", "auth_event.c",
                          "journal.h", "journal.c"}),
    ("surfaces", {"probe.h", "probe.c", "compat.h", "compat.c", "api_v1.h", "api_v1.c",
                  "api_v1_internal.h", "api_v1_observe.c", "api_v1_lbs.c", "api_v1_admin.c",
                  "scrape.h", "scrape.c", "ui.h", "ui.c", "ui_html.c", "ui_session.c",
                  "ui_nodes.c", "ui_admin.c", "ui_assets.h", "ui_assets.c",
                  "api_drain.h", "api_drain.c", "sd.h", "sd.c", "consul.h", "consul.c",
                  "rollouts.h", "rollouts.c"}),
    ("router", {"router.h", "router.c"}),
    ("server", {"server.c"}),
    ("daemon", {"daemon.h", "daemon.c", "daemon_internal.h", "daemon_options.c",
                "daemon_tls.c"}),
]


def http_room(rel):
    """The rank of an http file's room, or None for another layer's file;
    an http file in no room is an error of its own."""
    if not rel.startswith("http/"):
        return None
    name = rel[len("http/"):]
    for rank, (_room, files) in enumerate(HTTP_ROOMS):
        if name in files:
            return rank
    return -1


INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path, src):
    rel = os.path.relpath(path, src)
    head = rel.split(os.sep)[0]
    return "." if head == rel else head


def resolve(including_file, target, src):
    """The file an include names: relative to the including file first,
    then to src/ (meson's include directory)."""
    beside = os.path.normpath(os.path.join(os.path.dirname(including_file), target))
    if os.path.exists(beside):
        return beside
    return os.path.normpath(os.path.join(src, target))


def includes_of(path, src):
    """The project headers path includes directly: (lineno, text, resolved)."""
    found = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                found.append((lineno, m.group(1), resolve(path, m.group(1), src)))
    return found


def pulled_in(header, src, seen):
    """Every project header that header includes, directly or through
    others (each once), so that a header cannot carry a layer's
    declarations to a file that may not include that layer."""
    for _lineno, _text, target in includes_of(header, src) if os.path.exists(header) else []:
        if target not in seen and target.startswith(os.path.normpath(src) + os.sep):
            seen.add(target)
            pulled_in(target, src, seen)
    return seen


GUARD = re.compile(r"^\s*#\s*ifndef\s+(\w+)\s*$")


def guard_of(path):
    """The include guard of a header: the first #ifndef's name."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = GUARD.match(line)
            if m:
                return m.group(1)
    return None


def check(src):
    problems = []
    guards = {}
    for root, _dirs, files in os.walk(src):
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(root, name)
            layer = layer_of(path, src)
            if layer not in ALLOWED:
                problems.append(f"{path}: folder '{layer}' is not a known layer "
                                "(add it to tools/check-includes.py and docs/ARCHITECTURE.md)")
                continue
            if http_room(os.path.relpath(path, src).replace(os.sep, "/")) == -1:
                problems.append(f"{path}: in no room of http (add it to HTTP_ROOMS in "
                                "tools/check-includes.py and to docs/ARCHITECTURE.md)")
            if name.endswith(".h"):
                guard = guard_of(path)
                if guard is None:
                    problems.append(f"{path}: no include guard")
                elif guard in guards:
                    problems.append(f"{path}: include guard {guard} is also {guards[guard]}'s "
                                    "(one of them is silently skipped where both are included)")
                else:
                    guards[guard] = path
            for lineno, text, target in includes_of(path, src):
                if not target.startswith(os.path.normpath(src) + os.sep):
                    problems.append(f"{path}:{lineno}: includes {text}, outside src/")
                    continue
                for reached in sorted({target} | pulled_in(target, src, set())):
                    other = layer_of(reached, src)
                    if other != layer and other not in ALLOWED[layer]:
                        through = "" if reached == target else \
                            f" through {text}: {os.path.relpath(reached, src)}"
                        problems.append(f"{path}:{lineno}: {layer} may not include "
                                        f"{other} ({text}{through})")
                private = os.path.relpath(target, src).replace(os.sep, "/")
                me = os.path.relpath(path, src).replace(os.sep, "/")
                mine, theirs = http_room(me), http_room(private)
                if mine is not None and theirs is not None and mine >= 0 and theirs > mine:
                    problems.append(f"{path}:{lineno}: the {HTTP_ROOMS[mine][0]} room may not "
                                    f"include {text}, of the {HTTP_ROOMS[theirs][0]} room above "
                                    "it (tools/check-includes.py HTTP_ROOMS)")
                if private in PRIVATE and me not in PRIVATE[private]:
                    problems.append(f"{path}:{lineno}: only "
                                    f"{', '.join(sorted(PRIVATE[private]))} may include "
                                    f"{private}")
    return problems


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "src")
    src = os.path.normpath(src)
    problems = check(src)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
