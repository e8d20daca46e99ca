"""
docs/INTEGRATIONS.md's systemd recipe, as written, under a real systemd
(issue 17 point 3): an application's unit on Debian 12 booted with systemd
in a container (nspawn.py), plus the drop-in read from the document, behind
a real HAProxy and a real Varnish that clustermgmt knows with their runtime
access (HAProxy's admin socket, Varnish's working directory).

  network    drainfarm.Network: a bridge; the container in namespace
             "app1" (so node app1's address is the container's), the
             application app2 (drainfarm.App) in "app2", HAProxy and
             Varnish in "lb"
  daemon     conftest's Daemon on the host, listening on the bridge too
  app.service  slowapp.py as node app1 (its probe path passed through to
             the daemon), with the recipe's drop-in, and a second drop-in
             of the test's that writes the time when the recipe's
             ExecStop=/ExecStartPost= lines returned (systemd runs a
             unit's ExecStop= lines in order, the next only when the one
             before succeeded)
  traffic    steady requests through both (drainfarm.Traffic)

`systemctl stop app` must return only after the drain call returned, with
no client request failed and none reaching app1 after the call returned;
`systemctl start app` must return only once both send app1 traffic.
"""

import re
import time

import pytest
import requests

import nspawn
from conftest import REPO, Daemon, free_port
from drainfarm import LB_OPTIONS, SLOW_S, App, HAProxy, Network, Traffic, Varnish
from lbharness import cli, wait_until

pytestmark = pytest.mark.once

CLUSTER = "default"
APP_PORT = 8080
TEST_DROPIN = """[Service]
ExecStartPost=/bin/sh -c 'date +%%s.%%N > /run/serving-returned'
ExecStop=/bin/sh -c 'date +%%s.%%N > /run/drain-returned'
"""


def recipe():
    """The drop-in from docs/INTEGRATIONS.md's systemd section, verbatim."""
    text = (REPO / "docs" / "INTEGRATIONS.md").read_text()
    section = re.search(r"^## systemd\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "docs/INTEGRATIONS.md has no '## systemd' section"
    block = re.search(r"```ini\n(.*?)```", section.group(1), re.S)
    assert block, "the systemd section has no ```ini drop-in"
    return block.group(1)


def test_recipe_uses_the_blocking_endpoints():
    dropin = recipe()
    assert re.search(r"^ExecStop=.*-X POST .*/nodes/%H/drain\?wait=\d+s$", dropin, re.M), dropin
    assert re.search(r"^ExecStartPost=.*/nodes/%H/serving\?wait=\d+s$", dropin, re.M), dropin


def hap_server_state(haproxy, server):
    """HAProxy's own view of server in its backend: the status column of
    `show stat` (UP, DOWN, DRAIN, MAINT...)."""
    out = haproxy.stats_command("show stat")
    header = out.splitlines()[0].lstrip("# ").split(",")
    for line in out.splitlines()[1:]:
        fields = line.split(",")
        if len(fields) == len(header) and fields[1] == server and fields[0] != "stats":
            return fields[header.index("status")]
    return None


def sends_to(lb_url, node, tries=6):
    """Does the load balancer send node requests now? tries requests on
    new connections (both balance round robin over two nodes)."""
    seen = set()
    for i in range(tries):
        try:
            seen.add(requests.get("%s/?sends_to=%d" % (lb_url, i), timeout=5,
                                  headers={"Connection": "close"}).text.strip())
        except requests.RequestException:
            pass
    return node in seen


def lbs_sending(setup, node):
    return {"haproxy": sends_to(setup.haproxy.url, node),
            "varnish": sends_to(setup.varnish.url, node)}


class Setup:
    """Every part, started by start() in order; close() stops those that
    were started, also after start() failed half way."""

    def __init__(self):
        self.net = self.daemon = self.app2 = self.haproxy = self.varnish = None
        self.machine = None
        self.traffic = []

    def start(self, root_dir, tmp):
        self.net = Network()
        gw = self.net.gateway
        self.tmp = tmp
        self.dport, self.aport = free_port(), free_port()
        self.daemon = Daemon(tmp / "daemon", start=False,
                             extra_args=["--listen", "%s:%d" % (gw, self.dport),
                                         "--agent-listen", "%s:%d" % (gw, self.aport)])
        self.daemon.start()
        self.daemon_address = "%s:%d" % (gw, self.dport)
        self.app1_host = self.net.add("app1")
        app2_host = self.net.add("app2")
        lb_host = self.net.add("lb")
        for name, host in (("app1", self.app1_host), ("app2", app2_host)):
            r = self.daemon.put("/v1/clusters/%s/nodes/%s" % (CLUSTER, name),
                                auth=self.daemon.admin, json={"address": "%s:%d" % (host, APP_PORT)})
            assert r.status_code in (200, 201), r.text
        self.app2 = App("app2", tmp / "app2", app2_host, APP_PORT, self.daemon_address,
                        self.net.netns("app2"))
        self.app2.start()
        config = cli(self.daemon.bin, self.daemon, "lbconfig", "haproxy", "--lb", "hap1",
                     "--listen", "%s:8000" % lb_host, *LB_OPTIONS, "--agent",
                     "%s:%d" % (gw, self.aport), check=True).stdout
        self.haproxy = HAProxy(tmp / "haproxy", config, lb_host, 8000, self.net.netns("lb"))
        cli(self.daemon.bin, self.daemon, "lb", "add", "hap1", "--kind", "haproxy",
            "--runtime", str(self.haproxy.stats_path), check=True)
        vcl = cli(self.daemon.bin, self.daemon, "lbconfig", "varnish", "--lb", "varnish1",
                  *LB_OPTIONS, check=True).stdout
        self.varnish = Varnish(tmp / "varnish", vcl, lb_host, 8001, self.net.netns("lb"))
        cli(self.daemon.bin, self.daemon, "lb", "add", "varnish1", "--kind", "varnish",
            "--runtime", str(self.varnish.workdir), check=True)
        self.haproxy.start()
        self.varnish.start()
        self.machine = nspawn.Machine(root_dir, tmp / "machine", "app1%d" % free_port(),
                                      hostname="app1", netns=self.net.netns("app1"),
                                      binds=[(str(REPO / "tests" / "e2e"), "/srv/e2e")])
        self.machine.write("/etc/systemd/system/app.service", """[Unit]
Description=the application behind the load balancers (node app1)

[Service]
Type=exec
ExecStart=/usr/bin/python3 /srv/e2e/slowapp.py app1 {host}:{port} {daemon} /var/log/app-requests.log {slow}
""".format(host=self.app1_host, port=APP_PORT, daemon=self.daemon_address, slow=SLOW_S))
        self.machine.write("/etc/systemd/system/app.service.d/clustermgmt.conf", recipe())
        self.machine.write("/etc/systemd/system/app.service.d/zz-test-times.conf", TEST_DROPIN)
        self.machine.write("/etc/default/app-clustermgmt",
                           "CM=http://%s\nCM_USER=admin\nCM_PASSWORD=%s\nCM_CLUSTER=%s\n"
                           % (self.daemon_address, self.daemon.password, CLUSTER), mode=0o600)
        self.machine.boot()

    def journal(self):
        return self.machine.run("journalctl -u app --no-pager -o short-precise", check=False).stdout

    def app1_requests(self):
        """[(start, end or None, path)] the application in the container served."""
        starts, ends = {}, {}
        try:
            text = self.machine.read("/var/log/app-requests.log")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            parts = line.split()
            if parts[0] == "S" and len(parts) == 5:
                starts[parts[1]] = (float(parts[2]), parts[3])
            elif parts[0] == "E" and len(parts) == 3:
                ends[parts[1]] = float(parts[2])
        return sorted((t, ends.get(rid), path) for rid, (t, path) in starts.items())

    def close(self):
        problems = []
        for t in self.traffic:
            t.stop()
        steps = [self.machine and self.machine.close, self.varnish and self.varnish.stop,
                 self.haproxy and self.haproxy.stop, self.app2 and self.app2.stop,
                 self.daemon and self.daemon.close,
                 self.net and (lambda: "; ".join(self.net.close()) or None)]
        for step in filter(None, steps):
            try:
                problem = step()
                if problem:
                    problems.append(problem)
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                problems.append(repr(e))
        return "\n".join(problems) or None


@pytest.fixture
def setup(tmp_path):
    reason = nspawn.unavailable()
    if reason:
        pytest.fail("cannot boot a container: " + reason)
    root_dir = nspawn.root()
    s = Setup()
    try:
        s.start(root_dir, tmp_path)
        yield s
    finally:
        problem = s.close()
    assert problem is None, problem


def start_app(setup):
    before = time.time()
    out = setup.machine.run("systemctl start app", timeout=200, check=False)
    returned = time.time()
    assert out.returncode == 0, (
        "`systemctl start app` failed (the recipe's ExecStartPost= lines: online, then "
        "GET .../nodes/app1/serving?wait=): %s\njournal:\n%s" % (
            out.stderr.strip(), setup.journal()[-3000:]))
    serving_returned = float(setup.machine.run("cat /run/serving-returned").stdout)
    assert before < serving_returned < returned
    return returned


def start_traffic(setup):
    setup.traffic = [Traffic("haproxy", setup.haproxy.url).start(),
                     Traffic("varnish", setup.varnish.url).start()]


def test_stop_returns_after_the_drain_and_start_after_serving(setup):
    start_app(setup)
    # the moment `systemctl start` returned, both send app1 traffic
    serving = {"haproxy": True, "varnish": True}
    assert lbs_sending(setup, "app1") == serving, setup.haproxy.stats_command("show stat")
    start_traffic(setup)
    wait_until(lambda: all(t.nodes_seen(time.time() - 1.0) == {"app1", "app2"}
                           for t in setup.traffic), 20, interval=0.2,
               what="traffic through HAProxy and Varnish to reach app1 and app2")

    stop_at = time.time()
    out = setup.machine.run("systemctl stop app", timeout=200, check=False)
    stopped_at = time.time()
    assert out.returncode == 0, out.stderr + setup.journal()[-3000:]
    times = setup.machine.run("cat /run/drain-returned", check=False)
    if times.returncode != 0:
        raise AssertionError("the recipe's drain call (ExecStop=) failed, so systemd stopped "
                             "the application without a drain; journal:\n%s"
                             % setup.journal()[-3000:])
    drain_returned = float(times.stdout)
    assert stop_at < drain_returned < stopped_at
    time.sleep(2 * SLOW_S)
    for t in setup.traffic:
        t.stop()
        failed = t.failures(stop_at - 1.0)
        assert not failed, "%d requests through %s failed during the stop, e.g. %s" % (
            len(failed), t.lb, failed[:3])
    served = setup.app1_requests()
    late = [r for r in served if r[0] > drain_returned]
    assert not late, "app1 got requests after the drain returned: %s" % late[:5]
    cut = [r for r in served if r[1] is None]
    assert not cut, "requests in flight when the application stopped: %s" % cut[:5]
    # the drain waited for both: neither sends app1 traffic
    assert lbs_sending(setup, "app1") == {"haproxy": False, "varnish": False}
    assert hap_server_state(setup.haproxy, "app1") != "UP", setup.haproxy.stats_command("show stat")
    states = setup.daemon.node_states(CLUSTER)
    assert states["app1"][0] == "drain", states

    # and back: online, and `systemctl start` returns once both send traffic
    start_traffic(setup)
    start_app(setup)
    assert lbs_sending(setup, "app1") == serving, setup.haproxy.stats_command("show stat")
    wait_until(lambda: all("app1" in t.nodes_seen(time.time() - 0.5) for t in setup.traffic),
               5, interval=0.1, what="traffic to reach app1 once `systemctl start app` returned")
