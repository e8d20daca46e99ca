#!/bin/sh
# Starts the daemon on the SQLite default (./clustermgmt.db) with a demo
# cluster (node1..node3 in "default", mounted at /health).
# On the first start the admin password is generated and printed once.
BIN=${1:-build/clustermgmt}
echo "clustermgmt: http://127.0.0.1:8080/  (web page: http://127.0.0.1:8080/health/managenodes)"
echo "probe:       curl 'http://127.0.0.1:8080/health?node=node1'"
exec "$BIN" serve --listen 127.0.0.1:8080 --db ./clustermgmt.db --demo
