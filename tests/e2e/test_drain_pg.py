"""
The drain proof with several daemons on one PostgreSQL (issue 17,
point 1): the observations are shared, so any daemon gives the same
verdict, also for a load balancer that only ever probed another daemon.

Two daemons, two named load balancers (threads probing like one, lb=
stamped): lb1 probes through daemon a, lb2 through daemon b. Every wait
is bounded; the probers are stopped at the end of each test.
"""

import threading
import time

import requests

from test_postgres import fleet, wait_until  # noqa: F401  (the fixture)

PROPAGATION_TIMEOUT = 10.0
HTTP_TIMEOUT = 30


class Prober:
    """Load balancer lb probing node through daemon d every 100 ms; it can
    be paused."""

    def __init__(self, d, node, lb):
        self.d, self.node, self.lb = d, node, lb
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        s = requests.Session()
        while not self.stop.is_set():
            if not self.paused.is_set():
                try:
                    s.get("%s/health?node=%s&lb=%s" % (self.d.url, self.node, self.lb),
                          timeout=5, headers={"User-Agent": "fake-" + self.lb})
                except requests.RequestException:
                    pass
            time.sleep(0.1)

    def close(self):
        self.stop.set()
        self.thread.join(10)


def ask_all(daemons, path):
    """GET path from every daemon at once: [(status, json)] in order."""
    out = [None] * len(daemons)

    def one(i, d):
        r = d.get(path, auth=d.admin, timeout=HTTP_TIMEOUT)
        out[i] = (r.status_code, r.json())

    threads = [threading.Thread(target=one, args=(i, d)) for i, d in enumerate(daemons)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HTTP_TIMEOUT + 5)
    return out


def acted(verdict):
    return {lb["name"]: lb["acted"] for lb in verdict["lbs"]}


def test_every_daemon_gives_the_same_verdict(fleet, pg_url):  # noqa: F811
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1"])
    for name in ("lb1", "lb2"):
        r = a.put("/v1/clusters/default/lbs/" + name, auth=a.admin, json={"kind": "other"})
        assert r.status_code in (200, 201), r.text
    wait_until(lambda: "web1" in b.node_states(), PROPAGATION_TIMEOUT, "b in sync")
    lb1, lb2 = Prober(a, "web1", "lb1"), Prober(b, "web1", "lb2")
    try:
        path = "/v1/clusters/default/nodes/web1/%s?wait=%s"
        served = ask_all([a, b], path % ("serving", "20s"))
        assert [s for s, _ in served] == [200, 200], served
        assert [acted(v) for _, v in served] == [{"lb1": True, "lb2": True}] * 2
        # lb2, which only ever probed b, does not see the change: neither
        # daemon may call it drained, and both say what lb2 lacks
        lb2.paused.set()
        r = a.post("/v1/clusters/default/nodes/web1/drain?wait=0&reason=deploy", auth=a.admin,
                   timeout=HTTP_TIMEOUT)
        assert r.status_code == 409, r.text
        wait_until(lambda: b.node_states()["web1"][0] == "drain", PROPAGATION_TIMEOUT,
                   "the drain on b")
        time.sleep(1.0)  # lb1's failing answers reach both daemons
        out = ask_all([a, b], path % ("drained", "1500ms"))
        assert [s for s, _ in out] == [409, 409], out
        for _, v in out:
            assert acted(v["detail"]) == {"lb1": True, "lb2": False}, v
            [lacks] = [lb["lacks"] for lb in v["detail"]["lbs"] if lb["name"] == "lb2"]
            assert "has not probed it for" in lacks, lacks  # paused for over a second
        # lb2 probes again (through b only): both daemons prove the drain
        lb2.paused.clear()
        out = ask_all([a, b], path % ("drained", "20s"))
        assert [s for s, _ in out] == [200, 200], out
        assert [acted(v) for _, v in out] == [{"lb1": True, "lb2": True}] * 2
        assert [v["status"] for _, v in out] == ["drain", "drain"]
    finally:
        lb1.close()
        lb2.close()
