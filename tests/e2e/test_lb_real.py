"""
Real load balancers, end to end (docs/LOADBALANCERS.md, issue 4 points 5 and 6).

The configurations come from `clustermgmt lbconfig`; first they are
checked by the servers' own config checkers (varnishd -C, haproxy -c,
nginx -t). Then a module-wide farm runs on loopback: the daemon, three
application nodes (nginx, answering their name and passing /health through
to the daemon), real HAProxy and real Varnish in front of them, configured
by lbconfig with short probe intervals, and steady client traffic through
each (20 requests/s). The scenarios follow the product's deploy sequence:
offline -> wait --drained -> stop the application -> start it -> online ->
wait --serving, and across all of them no client request may fail.

`wait` and `serve --agent-listen` are probed for; the tests that need them
are skipped, saying why, when the binary does not have them yet.

The farm's tests are marked `once`: `make test` runs them in the release
pass only. What they make the daemon do (probes, agent checks, lbconfig,
wait, status changes) the other tests do under ASan too; the lbconfig
checks above run in both passes.
"""

import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import Daemon
from lbharness import AppNode, HAProxy, Traffic, Varnish, cli, start_on_free_port, wait_until

INTERVAL = 0.2  # probe interval given to lbconfig (s)
# Probe timeout (s). Not shorter: on a loaded 2-core machine a probe can
# wait a few hundred ms for a CPU, and FALL such waits in a row would make
# a load balancer take every node out (Varnish then answers 503).
TIMEOUT = 0.5
FALL = 2
RISE = 2
# A node is out of a load balancer at most this long after its status
# changed: FALL probes, the last one possibly timing out, plus scheduling
# slack for a loaded test machine (2 cores shared with other test runs).
FALL_WINDOW = FALL * INTERVAL + TIMEOUT + 2.0
RISE_WINDOW = RISE * INTERVAL + TIMEOUT + 2.0
NODES = ("app1", "app2", "app3")
LB_OPTIONS = ["--interval", "200ms", "--timeout", "%dms" % (TIMEOUT * 1000), "--fall", str(FALL),
              "--rise", str(RISE)]


# --- what the binary supports --------------------------------------------

def _supports_wait(cm_bin):
    r = subprocess.run([cm_bin, "wait", "--help"], capture_output=True, text=True, timeout=10)
    return r.returncode == 0 and "--drained" in r.stdout


def _supports_agent(cm_bin):
    r = subprocess.run([cm_bin, "serve", "--help"], capture_output=True, text=True, timeout=10)
    return "--agent-listen" in r.stdout + r.stderr


@pytest.fixture(scope="module")
def features(cm_bin):
    return {"wait": _supports_wait(cm_bin), "agent": _supports_agent(cm_bin)}


def need(features, name):
    if not features[name]:
        pytest.skip({"wait": "this clustermgmt has no `wait` command yet",
                     "agent": "this clustermgmt has no `serve --agent-listen` yet"}[name])


# --- lbconfig output, checked by the servers' own checkers ------------------

@pytest.fixture
def addressed(daemon):
    for i, name in enumerate(NODES):
        r = daemon.put("/v1/clusters/default/nodes/" + name, auth=daemon.admin,
                       json={"address": "127.0.0.1:%d" % (18100 + i)})
        assert r.status_code in (200, 201), r.text
    return daemon


def lbconfig(cm_bin, daemon, *args):
    r = cli(cm_bin, daemon, "lbconfig", *args)
    assert r.returncode == 0, "lbconfig %s -> %d: %s" % (args, r.returncode, r.stderr)
    return r.stdout


def test_lbconfig_varnish_compiles_in_varnishd(cm_bin, addressed, tmp_path):
    vcl = tmp_path / "cluster.vcl"
    vcl.write_text(lbconfig(cm_bin, addressed, "varnish", *LB_OPTIONS))
    r = subprocess.run(["varnishd", "-C", "-j", "none", "-f", str(vcl), "-n", str(tmp_path / "vn")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in NODES:
        assert "GET /health?node=%s HTTP/1.1" % name in vcl.read_text()


@pytest.mark.parametrize("extra", [[], ["--agent", "none"], ["--probe-via", "daemon"],
                                   ["--agent", "127.0.0.1:9101", "--listen", "127.0.0.1:9100"]])
def test_lbconfig_haproxy_passes_haproxy_check(cm_bin, addressed, tmp_path, extra):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(lbconfig(cm_bin, addressed, "haproxy", *(LB_OPTIONS + extra)))
    r = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[WARNING]" not in r.stdout + r.stderr, r.stdout + r.stderr


class Hangup(threading.Thread):
    """An application node that dies with a request in flight: it accepts,
    reads the request and closes the connection without an answer."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.methods = []
        self.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(2)
                try:
                    self.methods.append(c.recv(65536).split(b" ", 1)[0].decode())
                except OSError:
                    pass

    def close(self):
        self.sock.close()


@pytest.mark.once
def test_haproxy_sends_a_get_a_node_cut_to_another_node_and_never_a_post(cm_bin, daemon,
                                                                        tmp_path):
    """A node whose application stops with a request in flight closes the
    connection without answering: HAProxy, as lbconfig configures it,
    sends a GET or HEAD on to another node, and never sends anything
    else twice (the client gets HAProxy's 502)."""
    good = start_on_free_port(lambda port: AppNode("good", tmp_path / "good", port, daemon.port))
    bad = Hangup()
    haproxy = None
    try:
        for name, address in (("good", good.address), ("bad", bad.address)):
            r = daemon.put("/v1/clusters/default/nodes/" + name, auth=daemon.as_admin,
                           json={"address": address})
            assert r.status_code in (200, 201), r.text
        haproxy = start_on_free_port(lambda port: HAProxy(tmp_path / "haproxy", lbconfig(
            cm_bin, daemon, "haproxy", "--listen", "127.0.0.1:%d" % port, "--probe-via",
            "daemon", "--agent", "none", *LB_OPTIONS), port))
        wait_until(lambda: haproxy.server_status() == {"good": "UP", "bad": "UP"}, 10,
                   interval=0.1, what="HAProxy to see both nodes UP")
        for method in ("GET", "HEAD") * 4:
            r = requests.request(method, haproxy.url + "/", timeout=10)
            assert r.status_code == 200, (method, r.status_code, r.text[:200])
        assert {"GET", "HEAD"} <= set(bad.methods), bad.methods  # each was cut once
        posts = [requests.post(haproxy.url + "/", data="x", timeout=10).status_code
                 for _ in range(4)]
        assert "POST" in bad.methods and 502 in posts, (posts, bad.methods)
        assert bad.methods.count("POST") == posts.count(502), (posts, bad.methods)
    finally:
        if haproxy is not None:
            haproxy.stop()
        bad.close()
        good.stop()


def test_lbconfig_nginx_passes_nginx_check(cm_bin, addressed, tmp_path):
    addressed.set_status({"app2": {"status": "offline"}})
    inc = tmp_path / "cluster.conf"
    inc.write_text(lbconfig(cm_bin, addressed, "nginx", "--listen", "127.0.0.1:9102"))
    assert "down; # app2: offline" in inc.read_text()
    wrapper = tmp_path / "nginx.conf"
    wrapper.write_text("pid %s/nginx.pid;\nevents {}\nhttp {\n    include %s;\n}\n"
                       % (tmp_path, inc))
    r = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(wrapper),
                        "-e", str(tmp_path / "error.log")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_lbconfig_node_without_address_exits_1_naming_it(cm_bin, daemon):
    daemon.set_nodes(["app1", "app2"])
    r = cli(cm_bin, daemon, "lbconfig", "haproxy")
    assert r.returncode == 1, r
    assert "app1" in r.stderr and "address" in r.stderr, r.stderr
    assert r.stdout == ""


def test_lbconfig_unknown_load_balancer_is_a_usage_error(cm_bin, addressed):
    r = cli(cm_bin, addressed, "lbconfig", "f5")
    assert r.returncode == 2 and "varnish, haproxy or nginx" in r.stderr, r


def test_lbconfig_varnish_probes_cannot_go_to_the_daemon(cm_bin, addressed):
    r = cli(cm_bin, addressed, "lbconfig", "varnish", "--probe-via", "daemon")
    assert r.returncode == 2 and "own address" in r.stderr, r


# --- the farm ------------------------------------------------------------------

class Farm:
    def __init__(self, root, cm_bin, with_agent):
        self.root = root
        self.cm_bin = cm_bin
        self.with_agent = with_agent
        self.daemon = Daemon(root / "daemon", bin_path=cm_bin, agent=with_agent, start=False)
        self.apps = {}
        self.haproxy = self.varnish = None
        self.traffic = []

    def cli(self, *args, **kw):
        return cli(self.cm_bin, self.daemon, *args, **kw)

    def start(self):
        self.daemon.start()
        # The applications start before the daemon knows them: until then a
        # probe through them (the readiness check asks for /, not the probe
        # path) could not make the daemon count this test as a load balancer
        # that `wait` has to hear from.
        for name in NODES:
            self.apps[name] = start_on_free_port(
                lambda port, name=name: AppNode(name, self.root / name, port, self.daemon.port))
            r = self.daemon.put("/v1/clusters/default/nodes/" + name,
                                auth=self.daemon.as_admin,
                                json={"address": self.apps[name].address})
            assert r.status_code in (200, 201), r.text
        agent = ["--agent", "127.0.0.1:%d" % self.daemon.agent_port] if self.with_agent else [
            "--agent", "none"]
        self.haproxy = start_on_free_port(lambda port: HAProxy(self.root / "haproxy", self.cli(
            "lbconfig", "haproxy", "--listen", "127.0.0.1:%d" % port, *(LB_OPTIONS + agent),
            check=True).stdout, port))
        vcl = self.cli("lbconfig", "varnish", *LB_OPTIONS, check=True).stdout
        self.varnish = start_on_free_port(
            lambda port: Varnish(self.root / "varnish", vcl, port))
        self.wait_all_serving()
        self.traffic = [Traffic("haproxy", self.haproxy.url), Traffic("varnish", self.varnish.url)]
        for t in self.traffic:
            t.start()
        wait_until(lambda: all(t.nodes_seen() == set(NODES) for t in self.traffic), 10,
                   what="traffic through both load balancers to reach every node")

    def wait_all_serving(self, timeout=15):
        """Until a burst of requests through each LB reaches every node."""
        def every_node_answers(lb):
            seen = set()
            for i in range(12):
                try:
                    r = requests.get("%s/?probe=%d" % (lb.url, i), timeout=2,
                                     headers={"Connection": "close"})
                    seen.add(r.text.strip())
                except requests.RequestException:
                    pass
            return seen >= set(NODES)
        for lb in (self.haproxy, self.varnish):
            wait_until(lambda: lb.assert_alive() or every_node_answers(lb), timeout, interval=0.2,
                       what="%s to send requests to every node" % lb.name)

    def reset(self):
        """Every node online with its application running, both LBs using all."""
        for app in self.apps.values():
            if not app.running():
                app.start()
        self.daemon.set_status({n: {"status": "online"} for n in NODES})
        wait_until(lambda: all(t.nodes_seen(time.monotonic() - 1.0) == set(NODES)
                               for t in self.traffic), 10, interval=0.2,
                   what="both load balancers to send traffic to every node")

    def assert_no_failures(self, since):
        for t in self.traffic:
            failed = t.failures(since)
            total = len(t.snapshot(since))
            assert not failed, "%d of %d requests through %s failed, e.g. %s" % (
                len(failed), total, t.lb, failed[:3])
            assert total > 0, "no traffic through %s" % t.lb

    def close(self):
        """Stops everything, each step on its own so that none is left over."""
        problems = []
        for step in ([t.stop for t in self.traffic] +
                     [p.stop for p in [self.varnish, self.haproxy] + list(self.apps.values())
                      if p is not None]):
            try:
                step()
            except Exception as e:  # keep stopping the others
                problems.append(repr(e))
        problem = self.daemon.close()
        if problem:
            problems.append(problem)
        return "\n".join(problems) or None


@pytest.fixture(scope="module")
def farm(tmp_path_factory, cm_bin, features):
    f = Farm(tmp_path_factory.mktemp("lbfarm"), cm_bin, features["agent"])
    problem = None
    try:
        f.start()
        yield f
    finally:
        problem = f.close()
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture
def fresh(farm):
    """The farm, reset; checks at the end that no request failed meanwhile."""
    farm.reset()
    t0 = time.monotonic()
    yield farm
    time.sleep(0.3)  # requests in flight at the end
    farm.assert_no_failures(t0)


def status(farm, verb, *nodes):
    farm.cli(verb, *nodes, "--reason", "test_lb_real", check=True)
    return time.monotonic()


@pytest.mark.once
def test_traffic_reaches_every_node_through_haproxy_and_varnish(fresh):
    t0 = time.monotonic()
    # awaited: the traffic threads are this process's, which may stall
    wait_until(lambda: all(t.nodes_seen(t0) == set(NODES) for t in fresh.traffic), 10,
               interval=0.1, what="traffic through both load balancers to reach every node")


@pytest.mark.once
def test_offline_stops_traffic_within_fall_window_and_online_brings_it_back(fresh):
    t_off = status(fresh, "offline", "app2")
    time.sleep(FALL_WINDOW)
    # traffic after the fall window, to both other nodes: awaited, since
    # the traffic threads are this process's, which may stall
    wait_until(lambda: all(t.nodes_seen(t_off + FALL_WINDOW) >= {"app1", "app3"}
                           for t in fresh.traffic), 10, interval=0.1,
               what="traffic to app1 and app3 after the fall window")
    for t in fresh.traffic:
        late = [s - t_off for s in t.served("app2", since=t_off + FALL_WINDOW)]
        assert not late, "%s still sent requests to app2 %s s after offline" % (t.lb, late)
        assert t.nodes_seen(t_off + FALL_WINDOW) == {"app1", "app3"}
    t_on = status(fresh, "online", "app2")
    for t in fresh.traffic:
        first = wait_until(lambda: t.served("app2", since=t_on), RISE_WINDOW + 2,
                           what="%s to send traffic to app2 again" % t.lb)[0]
        assert first - t_on <= RISE_WINDOW, (t.lb, first - t_on)


@pytest.mark.once
def test_wait_drained_returns_after_lbs_stopped_and_serving_after_they_resumed(fresh, features):
    need(features, "wait")
    app = fresh.apps["app1"]
    t_off = status(fresh, "offline", "app1")
    r = fresh.cli("wait", "app1", "--drained", "--timeout", "20s")
    t_drained = time.monotonic()
    assert r.returncode == 0, r.stdout + r.stderr
    time.sleep(0.5)
    for t in fresh.traffic:
        after = [s - t_drained for s in t.served("app1", since=t_drained)]
        assert not after, "%s sent app1 requests after wait --drained: %s" % (t.lb, after)
    # the deploy: stop the application, start it again
    app.stop(sig=15)
    time.sleep(0.5)
    app.start()
    t_on = status(fresh, "online", "app1")
    r = fresh.cli("wait", "app1", "--serving", "--timeout", "20s")
    t_serving = time.monotonic()
    assert r.returncode == 0, r.stdout + r.stderr
    for t in fresh.traffic:
        first = wait_until(lambda: t.served("app1", since=t_on), 5,
                           what="%s to send traffic to app1 again" % t.lb)[0]
        # a request to app1 within 4 s: the traffic threads (this
        # process) may stall 2 s before the next request is sent
        assert first <= t_serving + 4.0, (
            "%s sent app1 its first request %.2f s after wait --serving returned"
            % (t.lb, first - t_serving))
    assert t_drained - t_off < 20


@pytest.mark.once
def test_drain_through_the_agent_puts_the_haproxy_server_in_drain(fresh, features):
    need(features, "agent")
    t_cmd = status(fresh, "drain", "app3")
    state = wait_until(lambda: fresh.haproxy.server_status()["app3"].startswith("DRAIN")
                       and fresh.haproxy.server_status()["app3"], FALL_WINDOW + 2,
                       what="HAProxy to put app3 in DRAIN")
    assert state.startswith("DRAIN"), state
    t_drain = time.monotonic()
    # HAProxy drains on the agent's answer; Varnish, whose probe gets 503
    # "node is draining", within its fall window.
    out_from = {"haproxy": t_drain + 0.2, "varnish": t_cmd + FALL_WINDOW}
    time.sleep(max(0.0, max(out_from.values()) + 1.0 - time.monotonic()))
    for t in fresh.traffic:
        late = [s - t_cmd for s in t.served("app3", since=out_from[t.lb])]
        assert not late, "%s sent app3 new requests %s s after drain" % (t.lb, late)
    assert fresh.haproxy.server_status()["app3"].startswith("DRAIN")
    status(fresh, "online", "app3")
    wait_until(lambda: fresh.haproxy.server_status()["app3"] == "UP", RISE_WINDOW + 2,
               what="HAProxy to put app3 back UP")


@pytest.mark.once
def test_stopping_a_node_application_takes_it_out_without_failed_requests(fresh):
    app = fresh.apps["app2"]
    t_stop = time.monotonic()
    app.stop(sig=15)  # nginx fast shutdown; clustermgmt still says online
    wait_until(lambda: fresh.haproxy.server_status()["app2"].startswith("DOWN"),
               FALL_WINDOW + 2, what="HAProxy to mark app2 DOWN")
    time.sleep(FALL_WINDOW)
    wait_until(lambda: all(t.nodes_seen(t_stop) >= {"app1", "app3"} for t in fresh.traffic),
               10, interval=0.1, what="traffic to app1 and app3 since app2 stopped")
    for t in fresh.traffic:
        assert not t.served("app2", since=t_stop), t.lb
        assert t.nodes_seen(t_stop) == {"app1", "app3"}, (t.lb, t.nodes_seen(t_stop))
    t_start = time.monotonic()
    app.start()
    for t in fresh.traffic:
        wait_until(lambda: t.served("app2", since=t_start), RISE_WINDOW + 2,
                   what="%s to send traffic to app2 again" % t.lb)
