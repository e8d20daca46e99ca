"""
The drain proof as a service against real load balancers (issue 17,
point 7): HAProxy (agent-check, runtime socket) and Varnish, both named
(`lbconfig --lb`) and registered with runtime access, in front of three
application nodes with steady fast and slow (1.2 s) traffic through both
(drainfarm.py, each part in a network namespace of its own).

HAProxy's runtime access is registered over TCP, as HAProxy writes it
(`stats socket ipv4@HOST:PORT level admin`, HOST its address in its own
namespace: another host, for the daemon); Varnish's is its working
directory (the daemon runs beside it).

`clustermgmt wait` against a daemon without the verdict endpoints
(OlderDaemon, olderdaemon.py) judges by itself and reads both load
balancers' runtime access from where it runs: the same proof, through
the CLI's own access (src/drain/drain.c, "direct access").

A pre-stop hook is one curl line:

    curl -fsS -X POST -u USER:PW "$CM/v1/clusters/default/nodes/NODE/drain?wait=120s"

It must return only once both load balancers stopped sending the node
requests and the requests in flight there are over, so that the
application can then be killed without one client request failing.

Every process is stopped by its pid, every wait bounded.
"""

import json
import os
import subprocess
import time

import pytest

import drainfarm
from drainfarm import SLOW_S, START_CHECK, Farm, netns_available
from lbharness import wait_until
from olderdaemon import OlderDaemon

CURL_TIMEOUT = 150
TCP_STATS_PORT = 9999  # in HAProxy's own namespace


class TcpStatsHAProxy(drainfarm.HAProxy):
    """The farm's HAProxy with a second admin socket, over TCP."""

    def __init__(self, directory, config_text, host, port, netns=None):
        super().__init__(directory, config_text, host, port, netns)
        self.runtime_tcp = "ipv4@%s:%d" % (host, TCP_STATS_PORT)
        self.stats_cfg.write_text(self.stats_cfg.read_text() +
                                  "    stats socket %s level admin\n" % self.runtime_tcp)


@pytest.fixture(scope="module")
def farm(tmp_path_factory, cm_bin):
    if not netns_available():
        pytest.skip("needs network namespaces (root and iproute2): `ip netns add` failed")
    f = Farm(tmp_path_factory.mktemp("drain-api"), cm_bin, layout="separate",
             register_lbs=True)
    plain, drainfarm.HAProxy = drainfarm.HAProxy, TcpStatsHAProxy
    try:
        try:
            f.start()
        finally:
            drainfarm.HAProxy = plain
        f.cli("lb", "add", f.hap_name, "--kind", "haproxy", "--runtime",
              f.haproxy.runtime_tcp, check=True)
        yield f
    finally:
        problem = f.close()
    if problem:
        pytest.fail(problem, pytrace=False)


def curl(farm, method, what, node, wait="120s"):
    """The documented hook, as written: (exit status, wall time it
    returned, parsed answer or None)."""
    d = farm.daemon
    url = "%s/v1/clusters/default/nodes/%s/%s?wait=%s" % (d.url, node, what, wait)
    argv = ["curl", "-fsS", "-u", "admin:" + d.password, url]
    if method == "POST":
        argv[1:1] = ["-X", "POST"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=CURL_TIMEOUT)
    returned = time.time()
    return r.returncode, returned, (json.loads(r.stdout) if r.returncode == 0 else r.stderr)


@pytest.mark.once
def test_pre_stop_curl_returns_after_both_load_balancers_and_in_flight_then_kill_loses_nothing(
        farm):
    node = "app1"
    app = farm.apps[node]
    t0 = time.time()
    # a slow request is in flight to the node at every moment (Traffic)
    rc, returned, answer = curl(farm, "POST", "drain", node)
    assert rc == 0, answer
    app.kill()  # the application stops abruptly at once
    killed = time.time()
    try:
        time.sleep(SLOW_S + 1.0)  # traffic goes on to the other nodes
        farm.assert_no_failures(t0)
        assert answer["drained"] is True and answer["status"] == "drain"
        lbs = {lb["name"]: lb for lb in answer["lbs"]}
        assert set(lbs) == {"hap1", "varnish1"}, answer
        for lb in lbs.values():
            assert lb["acted"] is True and lb["evidence"], lb
            assert lb["in_flight"] == 0, lb  # read from the load balancer itself
        assert lbs["hap1"]["runtime"] is True
        reqs = [q for q in app.requests() if q[2] != START_CHECK and q[0] >= t0]
        assert reqs, "no traffic reached %s before the drain" % node
        late = [q for q in reqs if q[0] > returned]
        assert not late, "requests reached %s after the curl returned: %s" % (node, late)
        cut = [q for q in reqs if q[1] is None or q[1] > killed]
        assert not cut, "requests were in flight when %s was killed: %s" % (node, cut)
        # slow requests were in flight when the drain began: the answer
        # waited for them (one took 1.2 s)
        assert returned - t0 >= 0.5, returned - t0
    finally:
        app.start()
        farm.daemon.set_status({node: {"status": "online"}})
        rc, _, answer = curl(farm, "GET", "serving", node, wait="60s")
        assert rc == 0, answer


@pytest.mark.once
def test_serving_curl_returns_once_both_load_balancers_send_requests_again(farm):
    node = "app2"
    rc, _, answer = curl(farm, "POST", "offline", node, wait="60s")
    assert rc == 0, answer
    farm.daemon.set_status({node: {"status": "online"}})
    rc, returned, answer = curl(farm, "GET", "serving", node, wait="60s")
    assert rc == 0, answer
    assert {lb["name"] for lb in answer["lbs"] if lb["acted"]} == {"hap1", "varnish1"}
    # both send it requests again, soon after (HAProxy said UP, Varnish
    # had its probes answered)
    wait_until(lambda: all(node in t.nodes_seen(returned) for t in farm.traffic), 10,
               interval=0.2, what="traffic through both load balancers to reach " + node)


@pytest.mark.once
def test_a_short_wait_fails_with_what_each_load_balancer_lacks(farm):
    node = "app3"
    try:
        rc, _, err = curl(farm, "POST", "drain", node, wait="1ms")
        assert rc == 22, err  # curl -f: the HTTP status was 400 or above
        r = farm.daemon.get("/v1/clusters/default/nodes/%s/drained?wait=1ms" % node,
                            auth=farm.daemon.admin)
        # either the probes or the requests in flight are still missing
        assert r.status_code in (200, 409), r.text
        if r.status_code == 409:
            assert r.json()["error"].startswith("not drained after 1ms: " + node)
    finally:
        farm.daemon.set_status({node: {"status": "online"}})
        rc, _, answer = curl(farm, "GET", "serving", node, wait="60s")
        assert rc == 0, answer


@pytest.mark.once
def test_with_no_grace_the_load_balancers_own_count_decides(farm):
    """drain_grace=0: no grace at all; the verdict waits for both load
    balancers' own count of requests in flight, never 'unknown'."""
    node = "app3"
    try:
        rc, _, answer = curl(farm, "POST", "drain", node, wait="60s&drain_grace=0")
        assert rc == 0, answer
        assert "grace" not in answer["in_flight"], answer["in_flight"]
        assert answer["in_flight"] == "hap1: 0 in flight; varnish1: 0 in flight", answer
        assert [lb["in_flight"] for lb in answer["lbs"]] == [0, 0], answer
    finally:
        farm.daemon.set_status({node: {"status": "online"}})
        rc, _, answer = curl(farm, "GET", "serving", node, wait="60s")
        assert rc == 0, answer


def wait_judging_by_itself(farm, older, *args):
    """`clustermgmt wait ARGS --json` as admin through older: the CLI
    judges; (CompletedProcess, wall time it returned)."""
    env = dict(os.environ)
    for k in ("CLUSTERMGMT_TOKEN", "NETRC"):
        env.pop(k, None)
    env.update(CLUSTERMGMT_URL=older.url, CLUSTERMGMT_USER="admin",
               CLUSTERMGMT_PASSWORD=farm.daemon.password)
    hidden = older.hidden
    r = subprocess.run([farm.cm_bin, "wait", *args, "--json"], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=CURL_TIMEOUT)
    returned = time.time()
    assert older.hidden > hidden, "wait did not ask the daemon for a verdict first"
    return r, returned


@pytest.mark.once
def test_wait_judging_by_itself_reads_both_load_balancers_runtime_access(farm):
    node = "app2"
    app = farm.apps[node]
    older = OlderDaemon(farm.daemon)
    t0 = time.time()
    try:
        farm.daemon.set_status({node: {"status": "drain"}})
        # no grace: only the load balancers' own count of requests in
        # flight, read by the CLI, can end the wait
        r, returned = wait_judging_by_itself(farm, older, node, "--drained",
                                             "--drain-grace", "0", "--timeout", "60")
        assert r.returncode == 0, r.stderr
        assert older.observed > 0, "wait did not judge from the observations"
        verdict = json.loads(r.stdout)["nodes"][node]
        assert verdict["done"] is True, verdict
        assert verdict["in_flight"] == "hap1: 0 in flight; varnish1: 0 in flight", verdict
        assert "hap1" in verdict["evidence"] and "varnish1" in verdict["evidence"], verdict
        time.sleep(SLOW_S + 0.5)  # traffic goes on to the other nodes
        farm.assert_no_failures(t0)
        reqs = [q for q in app.requests() if q[2] != START_CHECK and q[0] >= t0]
        late = [q for q in reqs if q[0] > returned]
        assert not late, "requests reached %s after wait returned: %s" % (node, late)
        unfinished = [q for q in reqs if q[1] is None or q[1] > returned]
        assert not unfinished, "requests were in flight when wait returned: %s" % unfinished

        farm.daemon.set_status({node: {"status": "online"}})
        r, returned = wait_judging_by_itself(farm, older, node, "--serving", "--timeout", "60")
        assert r.returncode == 0, r.stderr
        verdict = json.loads(r.stdout)["nodes"][node]
        assert verdict["done"] is True, verdict
        wait_until(lambda: all(node in t.nodes_seen(returned) for t in farm.traffic), 10,
                   interval=0.2, what="traffic through both load balancers to reach " + node)
    finally:
        older.close()
        farm.daemon.set_status({node: {"status": "online"}})
        rc, _, answer = curl(farm, "GET", "serving", node, wait="60s")
        assert rc == 0, answer
