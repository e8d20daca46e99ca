#!/usr/bin/env python3
"""Fails when an #include breaks the direction of the layers.

docs/ARCHITECTURE.md draws the layers; this is the same table, enforced.
A layer is a folder of src/; each may include its own headers and those
of the layers listed for it, nothing else. The rule is about quoted
includes of the project's own headers; system and library headers
(<...>) are free.

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
