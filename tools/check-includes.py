#!/usr/bin/env python3
"""Fails when an #include breaks the direction of the layers.

docs/ARCHITECTURE.md draws the layers; this is the same table, enforced.
A layer is a folder of src/; each may include its own headers and those
of the layers listed for it, nothing else. The rule is about quoted
includes of the project's own headers; system and library headers
(<...>) are free. Inside http, the same rule holds between its rooms
(HTTP_ROOMS), so that no include runs back up between them.

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
    "agent": {"observe", "engine", "core", "util"},
    "http": {"agent", "observe", "engine", "lb", "core", "util"},
    "cli": {"lb", "core", "util"},
    # src/main.c only dispatches to the programs' entry points (the
    # daemon, the HTTP client, `store copy`)
    ".": {"cli", "http", "store"},
}

# Inside a layer: headers that only some of its files may include. The
# surfaces of http see struct request (http.h) and their own header, not
# the server's runtime state nor the path table, which belong to the
# server, the router and authentication.
PRIVATE = {
    "http/runtime.h": {"http/daemon.c", "http/server.c", "http/router.c", "http/auth.c",
                       "http/scrape.c", "http/request.c", "http/server.h"},
    "http/server.h": {"http/daemon.c", "http/server.c"},
    "http/router.h": {"http/server.c", "http/router.c"},
}

# Rooms inside http, from the bottom up. A file of http may include the
# headers of its own room and of the rooms below it, never above: the
# request's API, replies and forms call nothing of http; authentication
# calls them; the surfaces call authentication; the router calls the
# surfaces; the server calls the router; the daemon's main starts the
# server. A new file of http must be given a room here (and in
# docs/ARCHITECTURE.md).
HTTP_ROOMS = [
    ("request", {"request.h", "request.c", "runtime.h", "http.h", "reply.c", "form.c"}),
    ("auth", {"auth.h", "auth.c", "auth_basic.c"}),
    ("surfaces", {"probe.h", "probe.c", "compat.h", "compat.c", "api_v1.h", "api_v1.c",
                  "ui.h", "ui.c", "ui_admin.c", "ui_assets.h", "ui_assets.c", "ui_html.c",
                  "ui_nodes.c", "ui_session.c", "scrape.h", "scrape.c"}),
    ("router", {"router.h", "router.c"}),
    ("server", {"server.h", "server.c"}),
    ("daemon", {"daemon.h", "daemon.c"}),
]


def http_room(name):
    """The room of a file of http (its index from the bottom, its name),
    or None."""
    for i, (room, names) in enumerate(HTTP_ROOMS):
        if name in names:
            return i, room
    return None


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


def check(src):
    problems = []
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
            room = http_room(name) if layer == "http" else None
            if layer == "http" and room is None:
                problems.append(f"{path}: file of http in no room (add it to HTTP_ROOMS in "
                                "tools/check-includes.py and to docs/ARCHITECTURE.md)")
                continue
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    target = resolve(path, m.group(1), src)
                    if not target.startswith(os.path.normpath(src) + os.sep):
                        problems.append(f"{path}:{lineno}: includes {m.group(1)}, outside src/")
                        continue
                    other = layer_of(target, src)
                    if other != layer and other not in ALLOWED[layer]:
                        problems.append(f"{path}:{lineno}: {layer} may not include "
                                        f"{other} ({m.group(1)})")
                    if room is not None and other == "http":
                        their = http_room(os.path.basename(target))
                        if their is not None and their[0] > room[0]:
                            problems.append(f"{path}:{lineno}: http room '{room[1]}' may not "
                                            f"include room '{their[1]}' ({m.group(1)})")
                    private = os.path.relpath(target, src).replace(os.sep, "/")
                    me = os.path.relpath(path, src).replace(os.sep, "/")
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
