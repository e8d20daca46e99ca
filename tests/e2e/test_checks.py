"""
Application checks (PRODUCT.md §2-§3): a node's `check` is an http URL
that tells whether the application itself is alive. While it fails, the
probe answers 503 `node is down` even for an online node; when it passes
again, 200 `OK`. A check never changes the administrative status.

The check endpoint is a tiny HTTP server in the test whose answer the test
flips. How often the daemon checks is its own choice: waits are bounded
generously (CHECK_WAIT).
"""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

CHECK_WAIT = 10.0


class App:
    """A fake application whose health endpoint answers `code`."""

    def __init__(self):
        app = self
        self.code = 200
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                app.hits += 1
                body = b"alive" if app.code == 200 else b"broken"
                self.send_response(app.code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/ok" % self.port

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def app():
    a = App()
    yield a
    a.close()


def wait_probe(d, node, want, timeout=CHECK_WAIT):
    deadline = time.monotonic() + timeout
    r = d.probe(node)
    while (r.status_code, r.text) != want and time.monotonic() < deadline:
        time.sleep(0.2)
        r = d.probe(node)
    return (r.status_code, r.text)


@pytest.fixture
def checked(daemon, app):
    daemon.set_nodes(["zope1", "zope2"])
    r = daemon.put("/v1/clusters/default/nodes/zope1", auth=daemon.admin,
                   json={"address": "127.0.0.1:%d" % app.port, "check": app.url})
    assert r.status_code == 200, r.text
    return daemon


def test_failing_check_makes_probe_say_node_is_down(checked, app):
    app.code = 500
    assert wait_probe(checked, "zope1", (503, "node is down")) == (503, "node is down")
    assert checked.node_states()["zope1"][0] == "online"  # administrative status unchanged
    assert checked.probe("zope2").text == "OK"


def test_recovered_check_makes_probe_ok_again(checked, app):
    app.code = 500
    assert wait_probe(checked, "zope1", (503, "node is down")) == (503, "node is down")
    app.code = 200
    assert wait_probe(checked, "zope1", (200, "OK")) == (200, "OK")


def test_check_is_actually_requested(checked, app):
    deadline = time.monotonic() + CHECK_WAIT
    while app.hits == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert app.hits > 0, "the daemon never requested the check URL"


def test_check_state_reported_in_node_get(checked, app):
    app.code = 500
    wait_probe(checked, "zope1", (503, "node is down"))
    node = checked.get("/v1/clusters/default/nodes/zope1", auth=checked.admin).json()["node"]
    assert node["check_state"] is not None, node


def test_offline_wins_over_passing_check(checked, app):
    checked.set_status({"zope1": {"status": "offline"}})
    time.sleep(0.5)
    assert (checked.probe("zope1").status_code, checked.probe("zope1").text) == (503, "node is offline")
