"""
`clustermgmt rollout` (docs/CLI.md, "rollout"): for each
node in order, offline with a TTL -> wait until drained -> COMMAND -> warm-up
GETs -> online -> wait until served; any failure stops with the failing node
left offline (without TTL) and the later nodes untouched.

Most tests run against the conftest daemon with fake load balancers: one
thread per node probing it every 50 ms from its own loopback address, so
the drain and serving waits take well under a second. The last test is the
real thing: HAProxy and Varnish in front of three nginx nodes (lbharness.py),
steady traffic through both, and a rollout that restarts each node's nginx;
no client request may fail.
"""

import http.server
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import Daemon, free_port, session_from
from lbharness import AppNode, HAProxy, Traffic, Varnish, cli, start_on_free_port, wait_until

NODES = ("zope1", "zope2", "zope3")
RUN_TIMEOUT = 40  # bound on any one rollout run
FAST = ["--fall", "2", "--drain-timeout", "10", "--ready-timeout", "10"]


class Prober(threading.Thread):
    """A fake load balancer probing one node every `interval` seconds."""

    def __init__(self, d, node, ip, interval=0.05):
        super().__init__(daemon=True)
        self.d, self.node, self.ip, self.interval = d, node, ip, interval
        self.halt = threading.Event()
        self.answers = 0

    def run(self):
        s = session_from(self.ip)
        try:
            while not self.halt.is_set():
                try:
                    s.get(self.d.url + "/health?node=" + self.node,
                          headers={"User-Agent": "fake-lb"}, timeout=2)
                    self.answers += 1
                except Exception:  # noqa: BLE001 - a fake LB keeps going
                    pass
                self.halt.wait(self.interval)
        finally:
            s.close()


def run_rollout(d, *args, timeout=RUN_TIMEOUT, env=None):
    e = dict(os.environ)
    for k in ("CLUSTERMGMT_TOKEN", "NETRC"):
        e.pop(k, None)
    e.update({"CLUSTERMGMT_URL": d.url, "CLUSTERMGMT_USER": "admin",
              "CLUSTERMGMT_PASSWORD": d.password})
    e.update(env or {})
    return subprocess.run([d.bin, "rollout"] + list(args), env=e, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def cluster(daemon):
    """Three online nodes with addresses (nothing listens there), each probed."""
    daemon.set_nodes(NODES)
    dead_port = free_port()
    for name in NODES:
        r = daemon.put("/v1/clusters/default/nodes/" + name, auth=daemon.as_admin,
                       json={"address": "127.0.0.1:%d" % dead_port})
        assert r.status_code in (200, 201), r.text
    probers = [Prober(daemon, name, "127.0.3.%d" % (i + 2)) for i, name in enumerate(NODES)]
    for p in probers:
        p.start()
    wait_until(lambda: all(p.answers >= 2 for p in probers), 5, what="probers to start")
    try:
        yield daemon
    finally:
        for p in probers:
            p.halt.set()
        for p in probers:
            p.join(timeout=5)


def node_doc(d, name):
    return d.get("/v1/clusters/default/nodes/" + name, auth=d.as_admin).json()["node"]


def audited_nodes(d, since_id):
    return [e["node"] for e in d.audit(limit=100) if e["id"] > since_id]


def last_audit_id(d):
    entries = d.audit(limit=1)
    return entries[0]["id"] if entries else 0


# --- the happy path ---------------------------------------------------------------


def test_nodes_go_one_by_one_in_the_given_order_and_end_online(cluster, tmp_path):
    log = tmp_path / "log"
    # While COMMAND runs, the node must be offline and every other one online.
    r = run_rollout(cluster, "--nodes", "zope3,zope1,zope2", *FAST, "--exec",
                    '"%s" status --json > "%s/{node}.json"; echo {node} >> "%s"'
                    % (cluster.bin, tmp_path, log))
    assert r.returncode == 0, r.stdout + r.stderr
    assert log.read_text().split() == ["zope3", "zope1", "zope2"]
    for name in NODES:
        seen = {n["name"]: n for n in json.loads((tmp_path / (name + ".json")).read_text())["nodes"]}
        assert seen[name]["status"] == "offline", seen[name]
        assert seen[name]["reason"].startswith("rollout "), seen[name]
        assert seen[name]["expires_at"] is not None, "offline without the safety-net TTL"
        assert all(seen[o]["status"] == "online" for o in NODES if o != name), seen
    assert {n: s[0] for n, s in cluster.node_states().items()} == {n: "online" for n in NODES}


class RecordingProxy:
    """Forwards HTTP requests to the daemon and records each one's method,
    path and answer body, to see what a client asks and is sent."""

    def __init__(self, d):
        import http.client
        upstream = d.url.split("//", 1)[1]
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                seen.append((self.command, self.path, data))
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_status_writes_ask_only_for_the_changed_nodes(cluster):
    """A rollout does not read the answers of its status writes: it asks
    for the changed nodes only, so that a step's write does not carry the
    whole cluster (600 KB at 10,000 nodes) back."""
    proxy = RecordingProxy(cluster)
    try:
        r = run_rollout(cluster, "--nodes", "zope2", *FAST, "--exec", "true",
                        env={"CLUSTERMGMT_URL": proxy.url})
    finally:
        proxy.close()
    assert r.returncode == 0, r.stdout + r.stderr
    writes = [(path, data) for method, path, data in proxy.seen
              if method == "POST" and path.startswith("/v1/clusters/default/status")]
    assert len(writes) >= 2, proxy.seen  # offline, then online
    for path, data in writes:
        assert path.endswith("?answer=changed"), path
        assert [n["name"] for n in json.loads(data)["nodes"]] == ["zope2"], data


def test_progress_lines_and_summary_table(cluster):
    r = run_rollout(cluster, "--nodes", "zope1,zope2", *FAST, "--exec", "true")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for line in ["zope1: offline", "zope1: drained by 1 prober in", "zope1: running: true",
                 "zope1: online", "zope1: served by 1 prober in", "zope1: done in"]:
        assert line in out, (line, out)
    assert out.index("zope1: done") < out.index("zope2: offline"), out
    header = [l for l in out.splitlines() if l.startswith("NODE")]
    assert header and header[0].split() == ["NODE", "DRAIN", "COMMAND", "WARMUP", "READY",
                                            "TOTAL", "RESULT"], out
    rows = {l.split()[0]: l.split() for l in out.splitlines() if l.startswith("zope") and "  " in l}
    assert rows["zope1"][-1] == "ok" and rows["zope2"][-1] == "ok", out
    assert "2 nodes done in" in out


def test_command_gets_node_and_address_substituted_and_in_its_environment(cluster, tmp_path):
    out = tmp_path / "out"
    address = node_doc(cluster, "zope2")["address"]
    r = run_rollout(cluster, "--nodes", "zope2", *FAST, "--exec",
                    'echo "{node} {address} $CLUSTERMGMT_NODE $CLUSTERMGMT_ADDRESS '
                    '$CLUSTERMGMT_CLUSTER" > "%s"; echo to-stdout; echo to-stderr >&2' % out)
    assert r.returncode == 0, r.stderr
    assert out.read_text().split() == ["zope2", address, "zope2", address, "default"]
    assert "zope2| to-stdout" in r.stdout, r.stdout
    assert "zope2| to-stderr" in r.stderr, r.stderr


def test_batch_takes_nodes_out_together(cluster, tmp_path):
    r = run_rollout(cluster, "--batch", "2", *FAST, "--exec",
                    '"%s" status --json > "%s/{node}.json"' % (cluster.bin, tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    first = {n["name"]: n["status"] for n in
             json.loads((tmp_path / "zope1.json").read_text())["nodes"]}
    assert first == {"zope1": "offline", "zope2": "offline", "zope3": "online"}
    last = {n["name"]: n["status"] for n in
            json.loads((tmp_path / "zope3.json").read_text())["nodes"]}
    assert last == {"zope1": "online", "zope2": "online", "zope3": "offline"}


def test_json_prints_the_summary_on_stdout_and_progress_on_stderr(cluster):
    r = run_rollout(cluster, "--nodes", "zope1", "--json", *FAST, "--exec", "echo hello")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["result"] == "ok" and doc["error"] is None
    (node,) = doc["nodes"]
    assert node["name"] == "zope1" and node["result"] == "ok"
    for key in ("drain_ms", "command_ms", "ready_ms", "total_ms"):
        assert isinstance(node[key], int) and node[key] >= 0, (key, node)
    assert node["warmup_ms"] is None
    assert "zope1| hello" in r.stderr and "zope1: done" in r.stderr


# --- failures -------------------------------------------------------------------------


def test_failing_command_stops_with_that_node_offline_and_later_nodes_untouched(cluster, tmp_path):
    ran = tmp_path / "ran"
    mark = last_audit_id(cluster)
    r = run_rollout(cluster, *FAST, "--exec", 'echo {node} >> "%s"; test {node} != zope2' % ran)
    assert r.returncode == 1, r.stdout + r.stderr
    assert ran.read_text().split() == ["zope1", "zope2"]
    assert "zope2: the command exited with status 1" in r.stderr, r.stderr
    assert "left offline" in r.stderr and "1 node not started" in r.stderr, r.stderr
    z2 = node_doc(cluster, "zope2")
    assert z2["status"] == "offline"
    assert z2["expires_at"] is None, "a failed node must not come back by itself"
    assert "failed" in z2["reason"] and "exited with status 1" in z2["reason"], z2["reason"]
    assert cluster.node_states()["zope1"][0] == "online"
    assert cluster.node_states()["zope3"][0] == "online"
    assert "zope3" not in audited_nodes(cluster, mark)
    rows = {l.split()[0]: l for l in r.stdout.splitlines() if l.startswith("zope")}
    assert rows["zope3"].endswith("not started") and rows["zope2"].endswith("failed"), r.stdout


def test_min_online_refusal_changes_nothing_and_runs_nothing(cluster, tmp_path):
    ran = tmp_path / "ran"
    version = cluster.nodes()["version"]
    r = run_rollout(cluster, "--min-online", "3", *FAST, "--exec", 'touch "%s"' % ran)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "refused to take it offline" in r.stderr and "min_online" in r.stderr, r.stderr
    assert not ran.exists()
    assert cluster.nodes()["version"] == version


def test_warmup_timeout_exits_4_and_leaves_the_node_offline(cluster):
    t0 = time.monotonic()
    r = run_rollout(cluster, "--nodes", "zope1,zope2", "--warmup", "/ready", "--fall", "2",
                    "--ready-timeout", "2", "--exec", "true")
    assert r.returncode == 4, r.stdout + r.stderr
    assert time.monotonic() - t0 < 15
    assert "warm-up GET http://127.0.0.1:" in r.stderr and "/ready" in r.stderr, r.stderr
    z1 = node_doc(cluster, "zope1")
    assert z1["status"] == "offline" and z1["expires_at"] is None, z1
    assert "warm-up" in z1["reason"]
    assert cluster.node_states()["zope2"][0] == "online"


def test_drain_timeout_exits_4_and_leaves_the_node_offline(cluster, tmp_path):
    ran = tmp_path / "ran"
    r = run_rollout(cluster, "--nodes", "zope1", "--fall", "100", "--drain-timeout", "1",
                    "--exec", 'touch "%s"' % ran)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "timed out after 1s" in r.stderr and "fake-lb" in r.stderr, r.stderr
    assert not ran.exists(), "the command ran before the node was drained"
    assert node_doc(cluster, "zope1")["status"] == "offline"
    rows = [l for l in r.stdout.splitlines() if l.startswith("zope1 ")]
    assert rows and rows[0].endswith("failed"), r.stdout


class _SlowToWarm(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first two GETs, then 200."""

    hits = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        self.send_response(503 if len(self.hits) <= 2 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_warmup_retries_until_the_path_answers(cluster):
    _SlowToWarm.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowToWarm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cluster.put("/v1/clusters/default/nodes/zope1", auth=cluster.as_admin,
                    json={"address": "127.0.0.1:%d" % server.server_address[1]})
        r = run_rollout(cluster, "--nodes", "zope1", "--warmup", "/warm?x=1", *FAST,
                        "--exec", "true")
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 0, r.stdout + r.stderr
    assert _SlowToWarm.hits == ["/warm?x=1"] * 3
    assert "zope1: warmed up in" in r.stdout


def test_sigint_stops_after_the_current_step_with_the_node_offline(cluster, tmp_path):
    e = dict(os.environ, CLUSTERMGMT_URL=cluster.url, CLUSTERMGMT_USER="admin",
             CLUSTERMGMT_PASSWORD=cluster.password)
    e.pop("CLUSTERMGMT_TOKEN", None)
    # The command runs until the test has sent SIGINT (at most 10 s), not
    # for a fixed second a stall of the test could outlast.
    release = tmp_path / "release"
    p = subprocess.Popen([cluster.bin, "rollout", *FAST, "--exec",
                          'touch "%s/{node}"; for i in $(seq 200); do [ -e "%s" ] && break; '
                          'sleep 0.05; done' % (tmp_path, release)], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (tmp_path / "zope1").exists(), 10, what="the first command")
        p.send_signal(signal.SIGINT)  # to rollout only: the command runs on
        release.touch()
        out, err = p.communicate(timeout=RUN_TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)
    assert p.returncode == 1, out + err
    assert "interrupted" in err, err
    assert "zope1: the command exited with status 0" in out, out
    z1 = node_doc(cluster, "zope1")
    assert z1["status"] == "offline" and z1["expires_at"] is None
    assert "interrupted" in z1["reason"]
    assert not (tmp_path / "zope2").exists()
    assert cluster.node_states()["zope2"][0] == "online"


# --- plan, dry run, usage ---------------------------------------------------------------


def test_dry_run_prints_the_plan_and_changes_nothing(cluster, tmp_path):
    ran = tmp_path / "ran"
    version = cluster.nodes()["version"]
    mark = last_audit_id(cluster)
    r = run_rollout(cluster, "--dry-run", "--batch", "2", "--warmup", "/ok", "--exec",
                    'touch "%s" {node}@{address}' % ran)
    assert r.returncode == 0, r.stderr
    assert "dry run" in r.stdout
    address = node_doc(cluster, "zope3")["address"]
    assert "zope3@%s" % address in r.stdout, r.stdout
    rows = [l.split()[:2] for l in r.stdout.splitlines() if "zope" in l and "@" in l]
    assert rows == [["1", "zope1"], ["1", "zope2"], ["2", "zope3"]], r.stdout
    assert not ran.exists()
    assert cluster.nodes()["version"] == version
    assert audited_nodes(cluster, mark) == []


def test_a_node_that_is_not_online_is_refused_before_anything_changes(cluster):
    cluster.set_status({"zope2": {"status": "offline", "reason": "broken disk"}})
    version = cluster.nodes()["version"]
    r = run_rollout(cluster, *FAST, "--exec", "true")
    assert r.returncode == 1, r.stderr
    assert "zope2" in r.stderr and "not online" in r.stderr, r.stderr
    assert cluster.nodes()["version"] == version


def test_unknown_node_is_refused(cluster):
    r = run_rollout(cluster, "--nodes", "zope1,ghost", "--exec", "true")
    assert r.returncode == 1 and "ghost" in r.stderr, r.stderr


@pytest.mark.parametrize("args", [
    [],
    ["--exec", ""],
    ["--exec", "true", "extra-word"],
    ["--exec", "true", "--batch", "0"],
    ["--exec", "true", "--warmup", "no-slash"],
    ["--exec", "true", "--drain-timeout", "soon"],
    ["--exec", "true", "--nodes", "zope1,,zope2"],
    ["--exec", "true", "--nodes", "zope1,zope1"],
    ["--exec", "true", "--min-online", "-1"],
    ["--exec", "true", "--reason", "x"],
    # no TTL safety net is never a choice, in any unit
    ["--exec", "true", "--ttl", "0"],
    ["--exec", "true", "--ttl", "0ms"],
    ["--exec", "true", "--ttl", "0s"],
    ["--exec", "true", "--drain-timeout", "0ms"],
])
def test_usage_errors_exit_2_before_any_change(cluster, args):
    version = cluster.nodes()["version"]
    r = run_rollout(cluster, *args)
    assert r.returncode == 2, (args, r.returncode, r.stderr)
    assert cluster.nodes()["version"] == version


# --- real load balancers ------------------------------------------------------------------

LB_NODES = ("app1", "app2", "app3")
LB_OPTIONS = ["--interval", "200ms", "--timeout", "150ms", "--fall", "2", "--rise", "2",
              "--agent", "none"]


class _Restarter(http.server.BaseHTTPRequestHandler):
    """POST /restart/NAME stops that app node's nginx and starts it again."""

    apps = {}
    restarted = []

    def do_POST(self):  # noqa: N802
        name = self.path.rsplit("/", 1)[-1]
        app = self.apps.get(name)
        if app is None:
            self.send_response(404)
        else:
            app.stop(sig=signal.SIGQUIT)  # graceful: finish what is in flight
            app.start()
            self.restarted.append(name)
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


# Marked `once` (release pass only): the rollout's daemon and CLI paths are
# the ones the tests above take under ASan too.
@pytest.mark.once
def test_rollout_behind_haproxy_and_varnish_loses_no_request(cm_bin, tmp_path):
    d = Daemon(tmp_path / "daemon", bin_path=cm_bin, start=False)
    apps, lbs, traffic = {}, [], []
    control = None
    try:
        d.start()
        for name in LB_NODES:
            apps[name] = start_on_free_port(
                lambda port, name=name: AppNode(name, tmp_path / name, port, d.port))
            r = d.put("/v1/clusters/default/nodes/" + name, auth=d.as_admin,
                      json={"address": apps[name].address})
            assert r.status_code in (200, 201), r.text
        lbs.append(start_on_free_port(lambda port: HAProxy(tmp_path / "haproxy", cli(
            cm_bin, d, "lbconfig", "haproxy", "--listen", "127.0.0.1:%d" % port,
            *LB_OPTIONS, check=True).stdout, port)))
        vcl = cli(cm_bin, d, "lbconfig", "varnish", *LB_OPTIONS[:-2], check=True).stdout
        lbs.append(start_on_free_port(lambda port: Varnish(tmp_path / "varnish", vcl, port)))
        traffic = [Traffic(lb.name, lb.url) for lb in lbs]
        for t in traffic:
            t.start()
        wait_until(lambda: all(t.nodes_seen(time.monotonic() - 1.0) == set(LB_NODES)
                               for t in traffic), 20, interval=0.2,
                   what="traffic through both load balancers to reach every node")
        _Restarter.apps, _Restarter.restarted = apps, []
        control = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Restarter)
        threading.Thread(target=control.serve_forever, daemon=True).start()

        t0 = time.monotonic()
        r = cli(cm_bin, d, "rollout", "--exec",
                "curl -fsS -X POST http://127.0.0.1:%d/restart/{node}"
                % control.server_address[1],
                "--warmup", "/", "--fall", "2", "--drain-timeout", "20s",
                "--ready-timeout", "20s", timeout=60)
        t1 = time.monotonic()
        assert r.returncode == 0, r.stdout + r.stderr
        assert _Restarter.restarted == list(LB_NODES)
        assert {n["name"]: n["status"] for n in d.nodes()["nodes"]} == {
            n: "online" for n in LB_NODES}
        for name in LB_NODES:
            assert "%s: drained by" % name in r.stdout, r.stdout
            assert "%s: served by" % name in r.stdout, r.stdout
        time.sleep(1.5)  # requests in flight
        # every node back in both: awaited, the traffic threads are this
        # process's, which may stall
        wait_until(lambda: all(t.nodes_seen(t1) == set(LB_NODES) for t in traffic), 10,
                   interval=0.1, what="traffic through both load balancers to every node")
        for t in traffic:
            failed = t.failures(t0)
            assert not failed, "%d of %d requests through %s failed during the rollout, e.g. %s" % (
                len(failed), len(t.snapshot(t0)), t.lb, failed[:3])
            assert len(t.snapshot(t0, t1)) > 20, t.lb
    finally:
        problems = []
        if control is not None:
            control.shutdown()
            control.server_close()
        for step in [t.stop for t in traffic] + [p.stop for p in lbs + list(apps.values())]:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                problems.append(repr(e))
        problem = d.close()
        if problem:
            problems.append(problem)
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)
