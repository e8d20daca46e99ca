"""
An application node whose "build" a deploy command changes, for
test_canary.py and bench/canary (issue 15):

    python3 canaryapp.py NAME HOST:PORT DAEMON_HOST:PORT BUILD_FILE

BUILD_FILE holds the build the node runs, one word, read at every request
(a deploy is `echo WORD > BUILD_FILE`, a rollback the same with the old
word); a missing file is "good":

  good        GET / answers 200 "NAME\\n" at once
  errP        answers 500 to P percent of the requests (err10: 10 %), drawn
              at random, 200 otherwise
  slowMS      answers 200 after MS milliseconds (slow300)
  dieS        answers 200, and the process exits S seconds after it first
              saw this build (die4: it answers the warm-up, then dies)

GET /metrics: canary_requests_total{code="200"|"500"} in Prometheus' text
format (the requests to / answered so far).

GET /health? is the probe path: passed through to the clustermgmt daemon,
query string, User-Agent and status included, as the application servers
of the other tests do.

HTTP/1.1 with keep-alive, a thread per connection. Stops on SIGTERM.
"""

import http.client
import http.server
import os
import random
import socket
import sys
import threading
import time

NAME, LISTEN, DAEMON, BUILD_FILE = sys.argv[1:5]
HOST, PORT = LISTEN.rsplit(":", 1)
D_HOST, D_PORT = DAEMON.rsplit(":", 1)

_dying = threading.Lock()
_dies_at = [None]
_counts_lock = threading.Lock()
_counts = {"200": 0, "500": 0}


def build():
    try:
        with open(BUILD_FILE) as f:
            return f.read().strip() or "good"
    except OSError:
        return "good"


def schedule_death(seconds):
    with _dying:
        if _dies_at[0] is None:
            _dies_at[0] = time.monotonic() + seconds
            threading.Timer(seconds, lambda: os._exit(0)).start()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        if self.path.startswith("/health"):
            self.probe()
            return
        if self.path == "/metrics":
            self.metrics()
            return
        b, status = build(), 200
        if b.startswith("err") and random.random() * 100 < float(b[3:]):
            status = 500
        elif b.startswith("slow"):
            time.sleep(float(b[4:]) / 1000.0)
        elif b.startswith("die"):
            schedule_death(float(b[3:]))
        body = (NAME + "\n").encode() if status == 200 else b"internal error\n"
        with _counts_lock:
            _counts[str(status)] += 1
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def metrics(self):
        with _counts_lock:
            body = "".join('canary_requests_total{code="%s"} %d\n' % (c, n)
                           for c, n in sorted(_counts.items())).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def probe(self):
        status, body = 502, b"daemon unreachable\n"
        try:
            c = http.client.HTTPConnection(D_HOST, int(D_PORT), timeout=2)
            c.request("GET", self.path, headers={"User-Agent": self.headers.get("User-Agent", "")})
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
