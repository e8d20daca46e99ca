"""
An application node for the drain tests (drainfarm.py), run as its own
process (in its own network namespace or on a loopback address):

    python3 slowapp.py NAME HOST:PORT DAEMON_HOST:PORT LOG [SLOW_SECONDS]

  GET /         answers "NAME\\n" at once
  GET /slow     answers "NAME\\n" after SLOW_SECONDS (default 1.2)
  GET /health?  the probe path: passed through to the clustermgmt daemon,
                query string, User-Agent and status included (drainfarm
                puts an nginx front server before it, which does that
                itself, as in production)

Every request other than the probe is logged to LOG as two lines, written
and flushed as they happen: "S ID T PATH SENDER" when it starts (SENDER:
X-Forwarded-For, else the peer) and "E ID T" when its answer is written,
T being time.time() (the wall clock, which the rollout's command can
write too with `date +%s.%N`). A request cut by a kill has an S line and
no E line.

HTTP/1.1 with keep-alive, a thread per connection. It stops on SIGTERM
(or dies on SIGKILL, which is what the tests do to it).
"""

import http.client
import http.server
import itertools
import os
import socket
import sys
import threading
import time

NAME, LISTEN, DAEMON, LOG = sys.argv[1:5]
SLOW = float(sys.argv[5]) if len(sys.argv) > 5 else 1.2
HOST, PORT = LISTEN.rsplit(":", 1)
D_HOST, D_PORT = DAEMON.rsplit(":", 1)

_log = open(LOG, "a", buffering=1)
_log_lock = threading.Lock()
_ids = itertools.count(1)
_prefix = "%d-" % os.getpid()


def log(line):
    with _log_lock:
        _log.write(line + "\n")
        _log.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # headers and body are two writes: without this, the body waits
        # for the peer's delayed ACK (40 ms) on a keep-alive connection
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        if self.path.startswith("/health"):
            self.probe()
            return
        rid = _prefix + str(next(_ids))
        log("S %s %.6f %s %s" % (rid, time.time(), self.path.split("?")[0],
                                 self.headers.get("X-Forwarded-For", self.client_address[0])))
        if self.path.startswith("/slow"):
            time.sleep(SLOW)
        body = (NAME + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        log("E %s %.6f" % (rid, time.time()))

    def probe(self):
        status, body = 502, b"daemon unreachable\n"
        try:
            c = http.client.HTTPConnection(D_HOST, int(D_PORT), timeout=2)
            headers = {"User-Agent": self.headers.get("User-Agent", "")}
            c.request("GET", self.path, headers=headers)
            r = c.getresponse()
            status, body = r.status, r.read()
            c.close()
        except OSError:
            pass
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


Server((HOST, int(PORT)), Handler).serve_forever()
