"""
A load-balanced cluster whose drains can be checked, for the drain tests
(test_drain*.py), test_integrations.py, test_systemd_dropin.py and
bench/rollout.

Layouts (Farm(layout=...)):

  "separate"   every application node, HAProxy and Varnish in a network
               namespace of its own, joined by a bridge: each reaches the
               daemon from its own address, as in the documented multi-host
               layout (probes arrive through each node's front server, so
               from the node's address; HAProxy's agent-check from
               HAProxy's).
  "shared"     the same, but HAProxy and Varnish in one namespace: one
               load balancer host running both.
  "loopback"   everything on 127.0.0.1 (the one-host layout).

Parts, all real processes started here and stopped by process id:

  Network      the namespaces (`ip netns add`), a bridge and veth pairs, on
               a random 10.x.y.0/24; close() deletes them all.
  App          slowapp.py on 127.0.0.1 in the node's namespace: fast (/)
               and slow (/slow, 1.2 s) requests, a log of each request's
               start and end (wall clock) and who sent it; behind its
               Front, nginx at the node's address, which passes the probe
               path to the daemon and the rest to slowapp.py.
  HAProxy      lbconfig haproxy --lb hap1 with agent-check, plus a runtime
               socket `stats socket PATH level admin`.
  Varnish      lbconfig varnish --lb varnish1.
  Traffic      steady requests through one load balancer: keep-alive and
               new connections, fast ones, and slow ones back to back so
               that slow requests are in flight at every moment.

The daemon is conftest's Daemon, listening on 127.0.0.1 (for the CLI) and
on the bridge address (for the namespaces), with its agent listener there.
"""

import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from conftest import Daemon, free_port
from lbharness import HAProxy as _HAProxy
from lbharness import Process, Varnish as _Varnish, cli, wait_until

HERE = Path(__file__).resolve().parent
NODES = ("app1", "app2", "app3")
SLOW_S = 1.2
START_CHECK = "/start-check"  # the farm's own request, not a load balancer's
INTERVAL = "300ms"
LB_OPTIONS = ["--interval", INTERVAL, "--timeout", "250ms", "--fall", "2", "--rise", "2"]


def ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def netns_available():
    """Can this machine create network namespaces (root, iproute2)?"""
    name = "cmprobe%d" % os.getpid()
    try:
        if ip("netns", "add", name, check=False).returncode != 0:
            return False
        ip("netns", "del", name, check=False)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


class Network:
    """Namespaces on a bridge; host() gives each its address."""

    def __init__(self):
        self.id = "%04x" % random.randrange(0x10000)
        self.bridge = "cmb" + self.id
        used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True,
                              timeout=10).stdout
        while True:
            self.prefix = "10.%d.%d" % (random.randrange(200, 250), random.randrange(256))
            if self.prefix + "." not in used:
                break
        self.gateway = self.prefix + ".1"
        self.namespaces = {}  # name -> (netns, address)
        self.links = []
        ip("link", "add", self.bridge, "type", "bridge")
        self.links.append(self.bridge)
        # A bridge takes the lowest MAC address of its ports unless it has
        # one of its own: adding a port could change it under the
        # namespaces that already resolved the gateway.
        ip("link", "set", self.bridge, "address",
           "02:cb:%02x:%02x:%02x:01" % (random.randrange(256), random.randrange(256),
                                        random.randrange(256)))
        ip("addr", "add", self.gateway + "/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add(self, name):
        """A namespace for name with its own address on the bridge."""
        if name in self.namespaces:
            return self.namespaces[name][1]
        index = len(self.namespaces) + 2
        netns = "cm%s-%s" % (self.id, name)
        host_if, peer_if = "cmv%s%d" % (self.id, index), "cmp%s%d" % (self.id, index)
        address = "%s.%d" % (self.prefix, index)
        ip("netns", "add", netns)
        self.namespaces[name] = (netns, address)
        ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        self.links.append(host_if)
        ip("link", "set", peer_if, "netns", netns)
        ip("link", "set", host_if, "master", self.bridge)
        ip("link", "set", host_if, "up")
        ip("-n", netns, "addr", "add", address + "/24", "dev", peer_if)
        ip("-n", netns, "link", "set", peer_if, "up")
        ip("-n", netns, "link", "set", "lo", "up")
        return address

    def netns(self, name):
        return self.namespaces[name][0]

    def close(self):
        problems = []
        for netns, _ in self.namespaces.values():
            r = ip("netns", "del", netns, check=False)
            if r.returncode != 0:
                problems.append(r.stderr.strip())
        for link in self.links:
            ip("link", "del", link, check=False)  # veths went with their namespace
        return problems


def in_netns(netns, argv):
    return (["ip", "netns", "exec", netns] + argv) if netns else argv


def accepts_at(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Front(Process):
    """A node's front server: nginx at the node's address, passing the
    probe path to the daemon and everything else to the application."""

    def __init__(self, name, directory, host, port, app_port, daemon_address, netns=None):
        super().__init__(name + "-front", directory)
        self.host, self.port, self.netns = host, port, netns
        self.instance = os.urandom(8).hex()
        d = self.dir
        self.conf = d / "nginx.conf"
        self.conf.write_text("""
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream app {{
        server 127.0.0.1:{app_port};
        keepalive 16;
    }}
    server {{
        listen {host}:{port};
        location = /health {{
            proxy_pass http://{daemon};
        }}
        location = /front-instance {{
            return 200 "{instance}";
        }}
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_read_timeout 30s;
        }}
    }}
}}
""".format(d=d, host=host, port=port, app_port=app_port, daemon=daemon_address,
           instance=self.instance))

    def argv(self):
        return in_netns(self.netns, ["nginx", "-p", str(self.dir), "-c", str(self.conf),
                                     "-e", str(self.dir / "error.log"), "-g", "daemon off;"])

    def ready(self):
        """This very nginx answers (not anything else on the port)."""
        try:
            return requests.get("http://%s:%d/front-instance" % (self.host, self.port),
                                timeout=1).text == self.instance
        except requests.RequestException:
            return False


class App(Process):
    """One application node: the application (slowapp.py on 127.0.0.1 in
    its namespace) behind its front server at the node's address."""

    def __init__(self, name, directory, host, port, daemon_address, netns=None, app_port=None):
        super().__init__(name, directory)
        self.host, self.port, self.netns = host, port, netns
        self.address = "%s:%d" % (host, port)
        self.app_port = app_port or free_port()
        self.front = Front(name, self.dir, host, port, self.app_port, daemon_address, netns)
        self.requests_log = self.dir / "requests.log"

    def argv(self):
        return in_netns(self.netns, [sys.executable, str(HERE / "slowapp.py"), self.name,
                                     "127.0.0.1:%d" % self.app_port, "127.0.0.1:1",
                                     str(self.requests_log), str(SLOW_S)])

    def start(self):
        if not self.front.running():
            self.front.start()
        return super().start()

    def ready(self):
        """The application listens on 127.0.0.1 inside its namespace: ask
        through the front server (the only process it can be)."""
        try:
            return requests.get("http://%s%s" % (self.address, START_CHECK),
                                timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def kill(self):
        """Abruptly: SIGKILL, the requests it was serving are cut (the
        front server answers them 502)."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)

    def stop(self, sig=None):
        super().stop(sig)
        self.front.stop()

    def requests(self):
        """[(start, end or None, path, peer)] from its log, every run of it."""
        starts, ends = {}, {}
        for line in self.requests_log.read_text().splitlines() if self.requests_log.exists() else []:
            parts = line.split()
            if parts[0] == "S" and len(parts) == 5:
                starts[parts[1]] = (float(parts[2]), parts[3], parts[4])
            elif parts[0] == "E" and len(parts) == 3:
                ends[parts[1]] = float(parts[2])
        return sorted((t, ends.get(rid), path, peer) for rid, (t, path, peer) in starts.items())


class HAProxy(_HAProxy):
    def __init__(self, directory, config_text, host, port, netns=None):
        super().__init__(directory, config_text, port)
        self.host, self.netns = host, netns
        self.url = "http://%s:%d" % (host, port)

    def argv(self):
        return in_netns(self.netns, super().argv())

    def ready(self):
        """Its own stats socket gives its pid: every listener is bound."""
        try:
            info = self.stats_command("show info")
        except OSError:
            return False
        return ("\nPid: %d\n" % self.proc.pid) in info and accepts_at(self.host, self.port)


class Varnish(_Varnish):
    def __init__(self, directory, vcl_text, host, port, netns=None):
        super().__init__(directory, vcl_text, port)
        self.host, self.netns = host, netns
        self.url = "http://%s:%d" % (host, port)

    def argv(self):
        argv = super().argv()
        argv[argv.index("-a") + 1] = "%s:%d" % (self.host, self.port)
        return in_netns(self.netns, argv)

    def ready(self):
        """varnishd binds before it launches the child."""
        return "Child launched OK" in self.log_text(self._mark) and accepts_at(self.host,
                                                                             self.port)


class Traffic:
    """Steady requests through one load balancer.

    Threads: `fast_keepalive` sessions sending / every `period` on one
    keep-alive connection each; one sending / on a new connection each
    time; `slow` threads sending /slow back to back (so about `slow`
    slow requests are in flight at any moment, spread over the nodes).
    records: (started, ended, node or None, failure or None, kind), wall clock.
    """

    def __init__(self, lb, url, fast_keepalive=2, slow=3, period=0.05, timeout=10.0):
        self.lb, self.url, self.period, self.timeout = lb, url, period, timeout
        self.records = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=("keepalive", "/"), daemon=True)
                         for _ in range(fast_keepalive)]
        self._threads.append(threading.Thread(target=self._run, args=("new", "/"), daemon=True))
        self._threads += [threading.Thread(target=self._run, args=("slow", "/slow"), daemon=True)
                          for _ in range(slow)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def _run(self, kind, path):
        s = requests.Session()
        n = 0
        while not self._halt.is_set():
            n += 1
            started = time.time()
            node = failure = None
            try:
                if kind == "new":
                    r = requests.get("%s%s?n=%d" % (self.url, path, n), timeout=self.timeout,
                                     headers={"Connection": "close"})
                else:
                    r = s.get("%s%s?n=%d" % (self.url, path, n), timeout=self.timeout)
                body = r.text.strip()
                if r.status_code == 200 and body in NODES:
                    node = body
                else:
                    failure = "HTTP %d %r" % (r.status_code, body[:80])
            except requests.RequestException as e:
                failure = repr(e)[:200]
                s.close()
                s = requests.Session()
            with self._lock:
                self.records.append((started, time.time(), node, failure, kind))
            if kind != "slow":
                self._halt.wait(self.period)
        s.close()

    def stop(self):
        self._halt.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 2)

    def snapshot(self, since=0.0, until=None):
        with self._lock:
            return [r for r in self.records
                    if r[0] >= since and (until is None or r[0] <= until)]

    def failures(self, since=0.0, until=None):
        return [r for r in self.snapshot(since, until) if r[3] is not None]

    def nodes_seen(self, since=0.0):
        return {r[2] for r in self.snapshot(since) if r[2] is not None}


class Farm:
    """The daemon, three apps, HAProxy (hap1) and Varnish (varnish1), and
    traffic through both, in one of the layouts above."""

    def __init__(self, root, cm_bin, layout="separate", register_lbs=False,
                 lb_names=("hap1", "varnish1")):
        assert layout in ("separate", "shared", "loopback")
        self.root, self.cm_bin, self.layout = Path(root), cm_bin, layout
        self.register_lbs = register_lbs
        self.hap_name, self.varnish_name = lb_names
        self.net = None
        self.daemon = None
        self.apps = {}
        self.haproxy = self.varnish = None
        self.traffic = []

    def cli(self, *args, **kw):
        return cli(self.cm_bin, self.daemon, *args, **kw)

    def _host(self, name):
        """(netns, address) for a part of the farm in this layout."""
        if self.layout == "loopback":
            return None, "127.0.0.1"
        if self.layout == "shared" and name in ("haproxy", "varnish"):
            name = "lb"
        address = self.net.add(name)
        return self.net.netns(name), address

    def start(self):
        if self.layout != "loopback":
            self.net = Network()
            daemon_host = self.net.gateway
        else:
            daemon_host = "127.0.0.1"
        self.daemon_port2 = free_port()
        self.agent_port = free_port()
        extra = ["--agent-listen", "%s:%d" % (daemon_host, self.agent_port)]
        if self.layout != "loopback":
            extra += ["--listen", "%s:%d" % (daemon_host, self.daemon_port2)]
        self.daemon = Daemon(self.root / "daemon", bin_path=self.cm_bin, extra_args=extra,
                             start=False)
        self.daemon.start()
        daemon_address = ("%s:%d" % (daemon_host, self.daemon_port2)
                          if self.layout != "loopback" else "127.0.0.1:%d" % self.daemon.port)
        for name in NODES:
            netns, host = self._host(name)
            port = free_port() if self.layout == "loopback" else 8080
            self.apps[name] = App(name, self.root / name, host, port, daemon_address, netns)
            r = self.daemon.put("/v1/clusters/default/nodes/" + name, auth=self.daemon.admin,
                                json={"address": self.apps[name].address})
            assert r.status_code in (200, 201), r.text
            self.apps[name].start()
        agent = ["--agent", "%s:%d" % (daemon_host, self.agent_port)]
        h_netns, h_host = self._host("haproxy")
        v_netns, v_host = self._host("varnish")
        hport = free_port() if self.layout == "loopback" else 8000
        vport = free_port() if self.layout == "loopback" else 8001
        self.haproxy = HAProxy(self.root / "haproxy", self.cli(
            "lbconfig", "haproxy", "--lb", self.hap_name, "--listen", "%s:%d" % (h_host, hport),
            *(LB_OPTIONS + agent), check=True).stdout, h_host, hport, h_netns)
        self.varnish = Varnish(self.root / "varnish", self.cli(
            "lbconfig", "varnish", "--lb", self.varnish_name, *LB_OPTIONS, check=True).stdout,
            v_host, vport, v_netns)
        if self.register_lbs:
            self.cli("lb", "add", self.hap_name, "--kind", "haproxy", "--runtime",
                     str(self.haproxy.stats_path), check=True)
            self.cli("lb", "add", self.varnish_name, "--kind", "varnish", "--runtime",
                     str(self.varnish.workdir), check=True)
        self.haproxy.start()
        self.varnish.start()
        self.wait_all_serving()
        self.traffic = [Traffic("haproxy", self.haproxy.url).start(),
                        Traffic("varnish", self.varnish.url).start()]
        wait_until(lambda: all(t.nodes_seen(time.time() - 2.0) == set(NODES)
                               for t in self.traffic), 20, interval=0.2,
                   what="traffic through both load balancers to reach every node")
        return self

    def wait_all_serving(self, timeout=20):
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

    def restart_app(self, name):
        """What the rollout's command does: kill the application abruptly,
        start it again (until it accepts connections)."""
        self.apps[name].kill()
        self.apps[name].start()

    def assert_no_failures(self, since, until=None):
        for t in self.traffic:
            failed = t.failures(since, until)
            total = len(t.snapshot(since, until))
            assert total > 0, "no traffic through %s" % t.lb
            assert not failed, "%d of %d requests through %s failed, e.g. %s" % (
                len(failed), total, t.lb, failed[:3])

    def close(self):
        problems = []
        steps = [t.stop for t in self.traffic]
        steps += [p.stop for p in [self.varnish, self.haproxy] + list(self.apps.values())
                  if p is not None]
        for step in steps:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                problems.append(repr(e))
        if self.daemon is not None:
            problem = self.daemon.close()
            if problem:
                problems.append(problem)
        if self.net is not None:
            problems += self.net.close()
        return "\n".join(problems) or None


class Restarter:
    """A small HTTP server the rollout's --exec calls (curl -X POST
    URL/restart/{node}): it kills the application abruptly and starts it.
    The command first writes the wall-clock time it started (= when the
    drain step ended) with `date`, which starts in about a millisecond."""

    def __init__(self, farm):
        import http.server

        outer = self
        self.farm = farm
        self.calls = []  # (node, killed_at, restarted_at), wall clock
        self.started_log = Path(farm.root) / ("commands-%d.log" % id(self))

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                t0 = time.time()
                m = re.match(r"^/restart/([A-Za-z0-9._-]+)$", self.path)
                if m is None or m.group(1) not in outer.farm.apps:
                    self.send_response(404)
                else:
                    outer.farm.restart_app(m.group(1))
                    outer.calls.append((m.group(1), t0, time.time()))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def command(self):
        """The command also lists its shell's open descriptors (ls -l
        /proc/$$/fd) in open-fds-{node}, for open_descriptors."""
        return ("echo {node} $(date +%%s.%%N) >> %s; (ls -l /proc/$$/fd) > %s/open-fds-{node}; "
                "curl -fsS -X POST %s/restart/{node}" % (self.started_log, self.farm.root,
                                                         self.url))

    def open_descriptors(self, node):
        """{fd: what it is} of the shell that ran node's command."""
        text = (Path(self.farm.root) / ("open-fds-%s" % node)).read_text()
        return dict(m.groups() for m in re.finditer(r" (\d+) -> (.*)$", text, re.M))

    def drain_ended(self):
        """{node: wall-clock time its command started}."""
        out = {}
        for line in self.started_log.read_text().splitlines():
            node, at = line.split()
            out[node] = float(at)
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def requests_after_drain(farm, restarter):
    """Requests that reached a node after its drain step ended and before
    it was started again: [(node, start - drain end, path, sender)]."""
    late = []
    ended = restarter.drain_ended()
    for node, _, restarted_at in restarter.calls:
        for start, _, path, peer in farm.apps[node].requests():
            if ended[node] < start < restarted_at and path != START_CHECK:
                late.append((node, round(start - ended[node], 3), path, peer))
    return late
