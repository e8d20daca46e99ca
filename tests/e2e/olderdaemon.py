"""
OlderDaemon: a daemon as one without the verdict endpoints answers (a
`clustermgmt` from before GET .../nodes/{n}/drained and /serving). A proxy
in front of a fixture Daemon that answers those two paths 404, with the
daemon's words for a path it does not know, and passes every other
request on; `wait` and `rollout` then judge by themselves (docs/CLI.md,
"wait"). Used by test_wait.py and test_drain_farm.py.
"""

import http.client
import http.server
import json
import re
import threading

VERDICT_PATH = re.compile(r"^/v1/clusters/[^/]+/nodes/[^/]+/(drained|serving)$")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-connection", "host", "content-length"}


class _OlderHandler(http.server.BaseHTTPRequestHandler):
    """OlderDaemon's requests; self.server.older is the OlderDaemon."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        older = self.server.older
        path = self.path.split("?", 1)[0]
        if VERDICT_PATH.match(path):
            older.hidden += 1
            self.answer(404, [("content-type", "application/json")],
                        json.dumps({"error": "no such API path: " + path,
                                    "detail": None}).encode())
            return
        if path.endswith("/observations"):
            older.observed += 1
        self.pass_on()

    def pass_on(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        c = http.client.HTTPConnection("127.0.0.1", self.server.older.d.port, timeout=120)
        try:
            c.request(self.command, self.path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            self.answer(r.status, [(k, v) for k, v in r.getheaders()
                                   if k.lower() not in HOP_BY_HOP], data)
        finally:
            c.close()

    do_POST = do_PUT = do_DELETE = do_HEAD = pass_on

    def answer(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class OlderDaemon:
    """A daemon as one without the verdict endpoints answers: a proxy in
    front of d that answers GET .../nodes/{n}/drained and /serving 404
    with the daemon's words for a path it does not know, and passes every
    other request on. .hidden counts the verdicts it refused, .observed
    the observation reads it passed on."""

    def __init__(self, d):
        self.d = d
        self.hidden = self.observed = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OlderHandler)
        self.server.daemon_threads = True
        self.server.older = self
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
