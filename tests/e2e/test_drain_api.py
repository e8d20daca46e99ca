"""
The drain proof as a service (issue 17): GET .../nodes/{n}/drained and
/serving, POST .../nodes/{n}/drain and /offline, with ?wait=D.

Here against a daemon alone, with probers that are threads probing like a
load balancer (named with lb=, as `lbconfig --lb` stamps them): the
answers, the errors, the roles, the bound on held waits, a client that
hangs up. tests/e2e/test_drain_farm.py runs the same endpoints against
real HAProxy and Varnish (drainfarm.py).

Every wait is bounded; the probers are threads stopped at the end of each
test.
"""

import re
import socket
import threading
import time

import pytest

from conftest import session_from

HTTP_TIMEOUT = 30
HELD_PER_CLIENT = 64  # api_drain.h DRAIN_HELD_PER_CLIENT


class Prober:
    """A load balancer probing one node every interval seconds, naming
    itself lb (or not, when lb is None)."""

    def __init__(self, d, node, ip, lb=None, interval=0.1):
        self.d, self.node, self.ip, self.lb, self.interval = d, node, ip, lb, interval
        self.answers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        s = session_from(self.ip)
        path = "/health?node=" + self.node + ("&lb=" + self.lb if self.lb else "")
        try:
            while not self._stop.is_set():
                try:
                    r = s.get(self.d.url + path, headers={"User-Agent": "fake-lb"}, timeout=2)
                    self.answers.append((time.monotonic(), r.status_code))
                except Exception:  # noqa: BLE001 - a load balancer keeps probing
                    pass
                self._stop.wait(self.interval)
        finally:
            s.close()

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self.answers and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


def path(node, what, query=""):
    return "/v1/clusters/default/nodes/%s/%s%s" % (node, what, query)


@pytest.fixture
def d(daemon):
    daemon.set_nodes(["web1", "web2"])
    r = daemon.put("/v1/clusters/default/lbs/lb1", auth=daemon.as_admin, json={"kind": "other"})
    assert r.status_code in (200, 201), r.text
    return daemon


def test_drain_post_returns_once_the_named_load_balancer_saw_it(d):
    with Prober(d, "web1", "127.0.2.2", lb="lb1") as p:
        t0 = time.monotonic()
        r = d.post(path("web1", "drain", "?wait=20s"), auth=d.as_admin, timeout=HTTP_TIMEOUT)
        took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["drained"] is True and body["status"] == "drain"
    assert d.node_states()["web1"][0] == "drain"
    [lb] = body["lbs"]
    assert lb["name"] == "lb1" and lb["acted"] is True
    assert re.match(r"^[3-9] failing answers at \+\d+\.\d\ds$", lb["evidence"]), lb["evidence"]
    # three failing answers at 0.1 s, and no runtime access: the grace (3 s)
    assert 2.5 < took < 15, took
    failing = [at for at, code in p.answers if code == 503 and at >= t0]
    assert len(failing) >= 3


def test_drained_times_out_with_what_each_load_balancer_lacks(d):
    with Prober(d, "web1", "127.0.2.3", lb="lb1"):
        r = d.get(path("web1", "drained", "?wait=1s"), auth=d.as_admin, timeout=HTTP_TIMEOUT)
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error"].startswith("not drained after 1s: web1: not every load balancer")
    [lb] = body["detail"]["lbs"]
    assert lb["acted"] is False
    assert "has had 0 of 3 failing answers" in lb["lacks"]


def test_serving_answers_at_once_when_it_is_served(d):
    with Prober(d, "web2", "127.0.2.4", lb="lb1"):
        time.sleep(0.5)  # three serving answers since the node was added
        t0 = time.monotonic()
        r = d.get(path("web2", "serving", "?wait=10s"), auth=d.as_admin, timeout=HTTP_TIMEOUT)
        took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert r.json()["serving"] is True
    assert took < 2, took


def test_offline_then_serving_again(d):
    with Prober(d, "web1", "127.0.2.5", lb="lb1"):
        r = d.post(path("web1", "offline", "?wait=20s&drain_grace=0"), auth=d.as_admin,
                   timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, r.text
        assert d.node_states()["web1"][0] == "offline"
        d.set_status({"web1": {"status": "online"}})
        r = d.get(path("web1", "serving", "?wait=20s"), auth=d.as_admin, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    assert re.match(r"^\d+ serving answers", r.json()["lbs"][0]["evidence"])


def test_unnamed_probers_never_stand_in_for_a_named_one(d):
    with Prober(d, "web1", "127.0.2.6", lb=None):
        r = d.post(path("web1", "drain", "?wait=1500ms"), auth=d.as_admin, timeout=HTTP_TIMEOUT)
    assert r.status_code == 409, r.text
    assert "lb1 has not probed it" in r.json()["error"]
    assert "1 prober not a named load balancer (ignored)" in r.json()["detail"]["evidence"]


@pytest.mark.parametrize("query, words", [
    ("?wait=abc", "wait must be a duration"),
    ("?wait=-1s", "wait must be a duration"),
    ("?wait=16m", "wait is above its maximum of 900s"),
    ("?fall=0", "fall must be a number from 1 to 100"),
    ("?fall=x", "fall must be a number from 1 to 100"),
    ("?window=0", "window must be a duration"),
    ("?require_probers=maybe", "require_probers must be true or false"),
])
def test_bad_query_is_refused_and_changes_nothing(d, query, words):
    before = d.node_states()
    for method, what in (("GET", "drained"), ("POST", "drain")):
        r = d.request(method, path("web1", what, query), auth=d.as_admin, timeout=HTTP_TIMEOUT)
        assert r.status_code == 400, r.text
        assert words in r.json()["error"]
    assert d.node_states() == before


def test_unknown_node_and_cluster_are_404(d):
    r = d.get(path("nosuch", "drained"), auth=d.as_admin, timeout=HTTP_TIMEOUT)
    assert r.status_code == 404 and "node 'nosuch' not found" in r.json()["error"]
    r = d.post(path("nosuch", "drain", "?wait=1s"), auth=d.as_admin, timeout=HTTP_TIMEOUT)
    assert r.status_code == 404
    r = d.get("/v1/clusters/nosuch/nodes/web1/serving", auth=d.as_admin, timeout=HTTP_TIMEOUT)
    assert r.status_code == 404 and "cluster 'nosuch' not found" in r.json()["error"]


def test_roles_viewer_reads_operator_takes_out(d):
    viewer = d.make_user("vera", "viewer")
    operator = d.make_user("otto", "operator")
    r = d.get(path("web1", "drained"), timeout=HTTP_TIMEOUT)
    assert r.status_code == 401
    r = d.get(path("web1", "serving"), auth=viewer, timeout=HTTP_TIMEOUT)
    assert r.status_code in (200, 409), r.text
    r = d.post(path("web1", "drain"), auth=viewer, timeout=HTTP_TIMEOUT)
    assert r.status_code == 403
    assert d.node_states()["web1"][0] == "online"
    r = d.post(path("web1", "drain", "?reason=deploy"), auth=operator, timeout=HTTP_TIMEOUT)
    assert r.status_code in (200, 409), r.text
    assert d.node_states()["web1"] == ("drain", "deploy")
    r = d.get(path("web1", "drain"), auth=operator, timeout=HTTP_TIMEOUT)
    assert r.status_code == 405


def test_no_probers_waits_the_delay_or_refuses(daemon):
    daemon.set_nodes(["solo"])
    t0 = time.monotonic()
    r = daemon.get(path("solo", "drained", "?wait=10s&no_probers_delay=1s&drain_grace=0"),
                   auth=daemon.as_admin, timeout=HTTP_TIMEOUT)
    took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert r.json()["no_probers"] is True
    assert 0.9 < took < 5, took
    assert any("nothing probed solo" in n for n in r.json()["notes"])
    r = daemon.get(path("solo", "drained", "?wait=10s&require_probers=true"),
                   auth=daemon.as_admin, timeout=HTTP_TIMEOUT)
    assert r.status_code == 409 and "nothing probed solo" in r.json()["error"]


def held_wait(d, node, token, wait="60s"):
    """A raw connection holding GET .../drained?wait= (never answered while
    the node is online and probed)."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
               % (path(node, "drained", "?wait=" + wait), token)).encode())
    return s


def status_of(d, node, token):
    r = d.get(path(node, "drained", "?wait=1ms"), auth=("bearer", token), timeout=HTTP_TIMEOUT)
    return r.status_code


def answered(s):
    """What a held connection has been answered so far (b"" if nothing)."""
    s.setblocking(False)
    try:
        return s.recv(4096) or b"(closed)"
    except BlockingIOError:
        return b""
    finally:
        s.settimeout(5)


def test_held_waits_are_bounded_per_client_and_a_hang_up_cancels_one(d):
    _, token = d.make_token("viewer")
    held = []
    try:
        with Prober(d, "web1", "127.0.2.7", lb="lb1", interval=0.2):
            for _ in range(HELD_PER_CLIENT):
                held.append(held_wait(d, "web1", token))
            # every one is held (the bound counts them as they arrive). With
            # several workers (--threads) a later request can be read before
            # a held one and take its place for a moment: the held one is
            # then refused, and is opened again.
            deadline = time.monotonic() + 20
            while status_of(d, "web1", token) != 429 and time.monotonic() < deadline:
                for i, s in enumerate(held):
                    got = answered(s)
                    if got:
                        assert b" 429 " in got.split(b"\r\n")[0], got
                        s.close()
                        held[i] = held_wait(d, "web1", token)
                time.sleep(0.1)
            r = d.get(path("web1", "drained", "?wait=1s"), auth=("bearer", token),
                      timeout=HTTP_TIMEOUT)
            assert r.status_code == 429, r.text
            assert "holds %d waits already" % HELD_PER_CLIENT in r.json()["error"]
            # another client is not affected
            r = d.get(path("web1", "drained", "?wait=1ms"), auth=("bearer", token),
                      source="127.0.2.8", timeout=HTTP_TIMEOUT)
            assert r.status_code == 409, r.text
            # while they are held, the bound stays
            time.sleep(1.5)
            assert [status_of(d, "web1", token) for _ in range(3)] == [429] * 3
            # one hangs up: its wait is cancelled, its place is free again
            held.pop().close()
            deadline = time.monotonic() + 10
            while status_of(d, "web1", token) == 429:
                assert time.monotonic() < deadline, "the hung-up wait still counts"
                time.sleep(0.05)
    finally:
        for s in held:
            s.close()
    # all gone: the daemon still answers at once
    assert d.get("/v1/health", timeout=5).status_code == 200
