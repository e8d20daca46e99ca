"""
A drain you can trust (issue 9): real HAProxy and Varnish, named with
`lbconfig --lb`, in front of three application nodes that serve slow
(1.2 s) and fast requests, each on an address of its own (network
namespaces, drainfarm.py), with steady traffic through both.

Shown here:
  - the stamped identity (lb=NAME in HTTP checks, `lb=NAME` after HAProxy's
    agent-send line) reaches the daemon from real HAProxy and Varnish, and
    attributes each probe to its load balancer whatever address it comes
    from;
  - HAProxy applies the agent's `maint` at once and stops its HTTP checks
    in MAINT (the reason an agent's answer is evidence on its own);
  - a rollout whose command kills the application abruptly loses no client
    request through either load balancer, and no new request reaches a
    node after its drain step ended — with the load balancers on separate
    hosts, and on one host;
  - a load balancer that stops probing blocks the wait, named;
  - fake probers cannot satisfy a wait.

Every process is stopped by its pid and every namespace deleted at
teardown; every wait is bounded. The tests with real load balancers are
marked `once` (the release pass of `make test`), but for the one whose
code nothing else reaches.
"""

import re
import shlex
import time
from pathlib import Path

import pytest

from conftest import session_from
from drainfarm import NODES, Farm, Restarter, netns_available, requests_after_drain
from lbharness import wait_until

ROLLOUT_TIMEOUT = 120


@pytest.fixture(scope="module")
def netns():
    if not netns_available():
        pytest.skip("needs network namespaces (root and iproute2): `ip netns add` failed")


def make_farm(tmp_path_factory, cm_bin, layout, **kw):
    return Farm(tmp_path_factory.mktemp("drain-" + layout), cm_bin, layout=layout, **kw)


@pytest.fixture(scope="module")
def farm(netns, tmp_path_factory, cm_bin):
    f = make_farm(tmp_path_factory, cm_bin, "separate")
    try:
        f.start()
        yield f
    finally:
        problem = f.close()
    if problem:
        pytest.fail(problem, pytrace=False)


def observed(farm, node, window=5):
    d = farm.daemon
    r = d.get("/v1/clusters/default/observations?nodes=%s&window=%d" % (node, window),
              auth=d.admin)
    assert r.status_code == 200, r.text
    return r.json()["nodes"][0]


def probers(farm, node):
    return {(p["lb"], p["protocol"]): p for p in observed(farm, node)["probes"]}


def set_status(farm, status, node):
    farm.cli(status, node, "--reason", "test_drain", check=True)
    return time.monotonic()


@pytest.mark.once
def test_probes_of_real_haproxy_and_varnish_say_who_sent_them(farm):
    for node in NODES:
        app = farm.apps[node]
        # each has probed twice at least (an interval is known), bounded
        seen = wait_until(lambda: (lambda p: len(p) == 3 and all(
            v["interval_ms"] is not None for v in p.values()) and p)(probers(farm, node)),
            10, interval=0.1, what="three probers of %s, each seen twice" % node)
        assert set(seen) == {("hap1", "http"), ("hap1", "agent"), ("varnish1", "http")}, seen
        # HTTP checks go through the node's front server: they come from the
        # node's address; the agent-check from HAProxy's own.
        assert seen[("hap1", "http")]["address"] == app.host
        assert seen[("varnish1", "http")]["address"] == app.host
        assert seen[("hap1", "agent")]["address"] == farm.haproxy.host != app.host
        assert seen[("hap1", "http")]["user_agent"] == "HAProxy-check"
        assert seen[("varnish1", "http")]["user_agent"] == "Varnish probe"
        for p in seen.values():
            assert 100 <= p["interval_ms"] <= 1000, p


def maint_answers(seen):
    """How many times the agent was answered 'maint' since the change."""
    agent = seen.get(("hap1", "agent"))
    return agent["since_change"] if agent and agent["last_answer"] == "maint" else 0


@pytest.mark.once
def test_haproxy_applies_maint_at_once_and_stops_its_http_checks(farm):
    node = "app2"
    try:
        set_status(farm, "offline", node)
        # At once means on the first agent exchange that says maint, not
        # after a later one (or after `fall` HTTP checks): ordered, not
        # timed. Each round reads the daemon's count of 'maint' answers,
        # then HAProxy's state; HAProxy sends the next agent-check only
        # after it has handled the last answer, so once the daemon has
        # answered 'maint' twice, the first was handled, and HAProxy must
        # be in MAINT whatever stalled in between.
        deadline = time.monotonic() + 10
        while True:
            answered = maint_answers(probers(farm, node))
            state = farm.haproxy.server_status()[node]
            if state.startswith("MAINT"):
                break
            assert answered < 2, "HAProxy still %s after %d 'maint' answers" % (state, answered)
            assert time.monotonic() < deadline, "HAProxy never put %s in MAINT" % node
            time.sleep(0.02)
        before = probers(farm, node)
        assert before[("hap1", "agent")]["last_answer"] == "maint"
        time.sleep(1.5)  # a window in which HTTP checks would show
        # the agent keeps asking (awaited: HAProxy may stall), Varnish keeps
        # probing, and the HTTP checks have stopped
        after = wait_until(lambda: (lambda p: p[("hap1", "agent")]["consecutive"] >
                                    before[("hap1", "agent")]["consecutive"] and
                                    p[("varnish1", "http")]["since_change"] >= 5 and p)(
            probers(farm, node)), 10, interval=0.1, what="more agent checks and Varnish probes")
        assert after[("hap1", "http")]["age_ms"] >= 1000, after[("hap1", "http")]
    finally:
        set_status(farm, "online", node)
        r = farm.cli("wait", node, "--serving", "--timeout", "20s")
        assert r.returncode == 0, r.stdout + r.stderr


def run_rollout_and_check(farm, *extra):
    restarter = Restarter(farm)
    try:
        t0 = wall0 = time.time()
        r = farm.cli("rollout", "--exec", restarter.command(), "--fall", "2",
                     "--drain-timeout", "30s", "--ready-timeout", "30s", *extra,
                     timeout=ROLLOUT_TIMEOUT)
        t1 = time.time()
        assert r.returncode == 0, r.stdout + r.stderr
        assert [c[0] for c in restarter.calls] == list(NODES)
        for node in NODES:  # nothing of the CLI's (Varnish's files, sockets) leaks into it
            fds = restarter.open_descriptors(node)
            assert set(fds) == {"0", "1", "2"}, (node, fds)
        time.sleep(SLOW_TAIL)  # the requests in flight at the end
        farm.assert_no_failures(t0)
        late = requests_after_drain(farm, restarter)
        assert not late, "requests reached a node after its drain ended: %s" % late
        for node, killed_at, _ in restarter.calls:
            cut = [q for q in farm.apps[node].requests()
                   if q[1] is None and wall0 < q[0] < killed_at]
            assert not cut, "%s was killed with requests in flight: %s (rollout: %s)\n%s" % (
                node, cut, restarter.calls, r.stdout)
        # every node back in both: awaited, the traffic threads are this
        # process's, which may stall
        wait_until(lambda: all(t.nodes_seen(t1) == set(NODES) for t in farm.traffic), 10,
                   interval=0.1, what="traffic through both load balancers to every node")
        for t in farm.traffic:
            assert len(t.snapshot(t0, t1)) > 50, t.lb
            assert any(rec[4] == "slow" for rec in t.snapshot(t0, t1)), t.lb
        return r
    finally:
        restarter.close()


SLOW_TAIL = 2.0


@pytest.mark.once
def test_rollout_killing_each_application_loses_no_request(farm):
    # The grace covers a slow request (SLOW_S, 1.2 s) that started just
    # before the load balancers stopped sending, even if the application
    # stalls 2 s while serving it (2 s of grace did not).
    r = run_rollout_and_check(farm, "--drain-grace", "4")
    for node in NODES:
        assert "%s: drained by" % node in r.stdout
        line = [l for l in r.stdout.splitlines() if l.startswith("%s: drained by" % node)][0]
        assert "hap1 (agent-check): agent answered 'maint'" in line, line
        assert re.search(r"varnish1: [23] failing answers", line), line


def test_rollout_with_haproxy_and_varnish_on_one_host(netns, tmp_path_factory, cm_bin):
    """Both on one load balancer host, named in the cluster with runtime
    access (HAProxy's stats socket, Varnish's working directory): no grace
    period at all, the requests in flight are counted by the load
    balancers themselves. Not marked `once`: no other test outside the
    `once` ones reaches the CLI's reading of Varnish's counters, so it runs
    under ASan+UBSan too."""
    f = make_farm(tmp_path_factory, cm_bin, "shared", register_lbs=True)
    try:
        f.start()
        assert f.haproxy.host == f.varnish.host
        # Varnish and HAProxy's agent come from the same address: the
        # agent's maint must not stand for Varnish.
        seen = probers(f, "app1")
        assert seen[("hap1", "agent")]["address"] == f.varnish.host
        r = run_rollout_and_check(f, "--drain-grace", "0")
        for node in NODES:
            line = [l for l in r.stdout.splitlines() if l.startswith("%s: drained by" % node)][0]
            assert re.search(r"varnish1: [23] failing answers", line), line
            assert "hap1: HAProxy says MAINT" in line or "hap1: agent answered" in line, line
            assert "in flight: hap1: 0 in flight; varnish1: 0 in flight" in line, line
            assert "grace" not in line, line
    finally:
        problem = f.close()
    if problem:
        pytest.fail(problem, pytrace=False)


def readme_rollout_line():
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = [l for l in text.splitlines() if l.startswith("clustermgmt rollout --exec ")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


@pytest.mark.once
def test_readme_rollout_example_works_as_written(farm):
    """README's "Rolling deploy" line, with its ssh command replaced by
    this farm's restart (every other option as written): it used to say
    --warmup /health, which a front server answers 400 (no node=)."""
    argv = readme_rollout_line()
    assert argv[:3] == ["clustermgmt", "rollout", "--exec"], argv
    restarter = Restarter(farm)
    try:
        t0 = time.time()
        r = farm.cli("rollout", "--exec", restarter.command(), *argv[4:],
                     timeout=ROLLOUT_TIMEOUT)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "warmed up" in r.stdout, r.stdout
        time.sleep(SLOW_TAIL)
        farm.assert_no_failures(t0)
    finally:
        restarter.close()


@pytest.mark.once
def test_a_load_balancer_that_stops_probing_blocks_the_wait_by_name(farm):
    node = "app3"
    farm.varnish.stop()
    try:
        set_status(farm, "offline", node)
        # 5 s: hap1 (300 ms checks) acts within it even if it stalls 2 s
        r = farm.cli("wait", node, "--drained", "--fall", "2", "--timeout", "5",
                     "--drain-grace", "0", timeout=30)
        assert r.returncode == 4, r.stdout + r.stderr
        assert "varnish1" in r.stderr and "timed out" in r.stderr, r.stderr
        assert "hap1" not in r.stderr.split("timed out")[1], r.stderr  # hap1 did act
    finally:
        set_status(farm, "online", node)
        farm.varnish.start()
        farm.wait_all_serving()


def test_fake_probers_cannot_satisfy_a_wait(daemon):
    """Observed mode (no load balancer named): more fake clients than the
    daemon tracks make `wait` refuse to report success from a partial
    view, even when every client it tracks saw the node out."""
    daemon.set_nodes(["n1"])
    sessions = [session_from("127.0.5.%d" % (i + 2)) for i in range(20)]
    try:
        def probe_all():
            for s in sessions:
                s.get(daemon.url + "/health?node=n1", headers={"User-Agent": "fake"}, timeout=10)
        probe_all()
        daemon.set_status({"n1": {"status": "offline"}})
        for _ in range(3):
            probe_all()
        doc = daemon.get("/v1/clusters/default/nodes/n1?window=30", auth=daemon.admin).json()
        assert doc["node"]["probes_untracked"] > 0
        assert all(p["since_change"] >= 3 for p in doc["node"]["probes"])
        from lbharness import cli
        r = cli(daemon.bin, daemon, "wait", "n1", "--drained", "--timeout", "2",
                "--drain-grace", "0", timeout=30)
        assert r.returncode == 4, r.stdout + r.stderr
        assert "partial view" in r.stderr, r.stderr
    finally:
        for s in sessions:
            s.close()
