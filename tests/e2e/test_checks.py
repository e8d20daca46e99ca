"""
Application checks (docs/API.md, "Application checks"): a node's `check` is an http URL
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
def checked(make_daemon, app):
    # Rounds every 500 ms instead of the default 2 s: the same behaviour,
    # in a quarter of the time.
    daemon = make_daemon(["--check-interval", "500ms"])
    daemon.set_nodes(["zope1", "zope2"])
    r = daemon.put("/v1/clusters/default/nodes/zope1", auth=daemon.as_admin,
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
    node = checked.get("/v1/clusters/default/nodes/zope1", auth=checked.as_admin).json()["node"]
    assert node["check_state"] is not None, node


def test_offline_wins_over_passing_check(checked, app):
    checked.set_status({"zope1": {"status": "offline"}})
    time.sleep(0.5)
    assert (checked.probe("zope1").status_code, checked.probe("zope1").text) == (503, "node is offline")


# --- thresholds, state and the agent, with a fast checker ---------------------

import os
import socket
import subprocess



# The check timeout is the default 1 s, not shorter: the application is a
# thread of this process, and a stall of it longer than the timeout is a
# failed check; three in a row (fall 3) would take a node the tests expect
# up out. A 1-2 s stall costs at most one or two failures.
@pytest.fixture
def fast(make_daemon, app):
    d = make_daemon(["--check-interval", "200ms", "--check-timeout", "1s"], agent=True)
    d.set_nodes(["zope1", "zope2"])
    r = d.put("/v1/clusters/default/nodes/zope1", auth=d.as_admin, json={"check": app.url})
    assert r.status_code == 200, r.text
    wait_hits(app, 2)
    return d


def wait_hits(app, n, timeout=CHECK_WAIT):
    deadline = time.monotonic() + timeout
    start = app.hits
    while app.hits < start + n and time.monotonic() < deadline:
        time.sleep(0.02)
    return app.hits - start


def check_state(d, node="zope1"):
    return d.get("/v1/clusters/default/nodes/%s" % node, auth=d.as_admin).json()["node"]["check_state"]


def agent_says(d, node="zope1"):
    with socket.create_connection(("127.0.0.1", d.agent_port), timeout=5) as s:
        s.sendall(node.encode() + b"\n")
        return s.recv(1024).decode().strip()


def state_and_probe(d, node="zope1", attempts=50):
    """The check state and the probe's answer as of one moment: the state
    read before and after the probe is the same (last_at included), so no
    check ran in between. Reading them one after the other instead races
    the checker thread."""
    for _ in range(attempts):
        before = check_state(d, node)
        r = d.probe(node)
        if check_state(d, node) == before:
            return before, (r.status_code, r.text)
    pytest.fail("the check state changed during each of %d probes" % attempts)


def test_down_only_after_three_failures(fast, app):
    app.code = 500
    wait_hits(app, 1)
    st, answer = state_and_probe(fast)
    if st["consecutive"] < 3:
        assert st["up"] is True and answer == (200, "OK"), (st, answer)
    assert wait_probe(fast, "zope1", (503, "node is down")) == (503, "node is down")
    st = check_state(fast)
    assert st["up"] is False and st["consecutive"] >= 3
    assert st["last_error"] == "HTTP 500"


def test_back_only_after_two_successes(fast, app):
    app.code = 500
    assert wait_probe(fast, "zope1", (503, "node is down")) == (503, "node is down")
    app.code = 200
    assert wait_probe(fast, "zope1", (200, "OK")) == (200, "OK")
    # The state as of one probe's answer (state_and_probe: a check may run
    # between two reads), once it shows the streak of successes: a check
    # that failed since (a stall longer than the timeout) shows its error
    # until the next success.
    deadline = time.monotonic() + CHECK_WAIT
    st, answer = state_and_probe(fast)
    while st["last_error"] is not None and time.monotonic() < deadline:
        time.sleep(0.05)
        st, answer = state_and_probe(fast)
    assert answer == (200, "OK"), (st, answer)
    assert st["up"] is True and st["consecutive"] >= 2 and st["last_error"] is None, st


def test_check_timeout_counts_as_failure(fast, app):
    app.code = 200
    # a port that accepts and never answers
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        r = fast.put("/v1/clusters/default/nodes/zope2", auth=fast.as_admin,
                     json={"check": "http://127.0.0.1:%d/" % silent.getsockname()[1]})
        assert r.status_code == 200
        assert wait_probe(fast, "zope2", (503, "node is down")) == (503, "node is down")
        assert "1000 ms" in check_state(fast, "zope2")["last_error"]
        assert fast.probe("zope1").text == "OK"  # one slow check delays nobody
    finally:
        silent.close()


def test_agent_says_down_while_check_fails(fast, app):
    assert agent_says(fast) == "up ready"
    app.code = 503
    wait_probe(fast, "zope1", (503, "node is down"))
    reply = agent_says(fast)
    assert reply.split("#")[0].split() == ["ready", "down"], reply
    fast.set_status({"zope1": {"status": "drain"}})
    assert agent_says(fast).split("#")[0].split() == ["drain", "down"]
    fast.set_status({"zope1": {"status": "offline"}})
    assert agent_says(fast) == "maint"


def test_removing_the_check_clears_its_state(fast, app):
    app.code = 500
    wait_probe(fast, "zope1", (503, "node is down"))
    r = fast.put("/v1/clusters/default/nodes/zope1", auth=fast.as_admin, json={"check": ""})
    assert r.status_code == 200
    assert wait_probe(fast, "zope1", (200, "OK")) == (200, "OK")
    assert check_state(fast) is None


def test_node_without_check_has_null_check_state(fast):
    assert check_state(fast, "zope2") is None


def test_down_node_keeps_admin_status_and_audit(fast, app):
    before = len(fast.audit())
    app.code = 500
    wait_probe(fast, "zope1", (503, "node is down"))
    assert fast.node_states()["zope1"] == ("online", "")
    assert len(fast.audit()) == before


def test_status_shows_check_column(fast, app):
    env = dict(os.environ, CLUSTERMGMT_URL=fast.url, CLUSTERMGMT_USER="admin",
               CLUSTERMGMT_PASSWORD=fast.password)
    r = subprocess.run([fast.bin, "status"], env=env, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[-1] == "CHECK", lines
    assert [l for l in lines if l.startswith("zope1")][0].split()[-1] == "ok"
    app.code = 500
    wait_probe(fast, "zope1", (503, "node is down"))
    r = subprocess.run([fast.bin, "status"], env=env, capture_output=True, text=True, timeout=20)
    assert "down (HTTP 500)" in [l for l in r.stdout.splitlines() if l.startswith("zope1")][0]


@pytest.mark.parametrize("args", [["--check-interval", "0"], ["--check-timeout", "fast"],
                                  ["--check-fall", "0"], ["--check-rise", "x"]])
def test_bad_check_options_are_usage_errors(cm_bin, tmp_path, args):
    r = subprocess.run([cm_bin, "serve", "--db", str(tmp_path / "x.db")] + args,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, (r.returncode, r.stderr)
