"""
The cluster's named load balancers (issue 9, point 1; docs/LOADBALANCERS.md
"Naming load balancers"): `clustermgmt lb list|add|rm` and
GET/PUT/DELETE /v1/clusters/{c}/lbs[/{name}] (admin to change, viewer to
read), kept in the store, shown on the web page with what each last saw of
each node; and what naming them changes for `wait` (point 3): each named
one must act, nobody else counts, made-up names take no named slot.
"""

import os
import subprocess
import time

import pytest

from conftest import session_from

LBS = "/v1/clusters/default/lbs"


def run_cli(d, *args, timeout=60):
    env = dict(os.environ)
    for k in ("CLUSTERMGMT_TOKEN", "NETRC"):
        env.pop(k, None)
    env.update(CLUSTERMGMT_URL=d.url, CLUSTERMGMT_USER="admin", CLUSTERMGMT_PASSWORD=d.password)
    return subprocess.run([d.bin] + list(args), env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def lbs(d, auth=None):
    r = d.get(LBS, auth=auth or d.admin)
    assert r.status_code == 200, r.text
    return {l["name"]: l for l in r.json()["lbs"]}


def probe(d, ip, node, lb=None, user_agent="lb"):
    s = session_from(ip)
    try:
        url = d.url + "/health?node=" + node + ("&lb=" + lb if lb else "")
        return s.get(url, headers={"User-Agent": user_agent}, timeout=5)
    finally:
        s.close()


@pytest.fixture
def nodes(daemon):
    daemon.set_nodes(["n1", "n2"])
    return daemon


def test_add_list_update_remove_through_the_cli(nodes):
    r = run_cli(nodes, "lb", "add", "hap1", "--kind", "haproxy", "--runtime",
                "/run/haproxy/admin.sock", "--backend", "be_web")
    assert r.returncode == 0 and "load balancer 'hap1' added to cluster 'default'" in r.stdout, r
    assert run_cli(nodes, "lb", "add", "varnish1", "--kind", "varnish").returncode == 0
    r = run_cli(nodes, "lb", "list")
    assert r.returncode == 0
    rows = [l.split() for l in r.stdout.splitlines()]
    assert rows == [["NAME", "KIND", "RUNTIME", "BACKEND"],
                    ["hap1", "haproxy", "/run/haproxy/admin.sock", "be_web"],
                    ["varnish1", "varnish", "-", "-"]], r.stdout
    r = run_cli(nodes, "lb", "add", "hap1", "--kind", "haproxy")
    assert r.returncode == 0 and "updated in" in r.stdout, r
    assert lbs(nodes)["hap1"]["runtime"] is None  # what is not given is none
    r = run_cli(nodes, "lb", "rm", "varnish1")
    assert r.returncode == 0 and "removed" in r.stdout, r
    assert set(lbs(nodes)) == {"hap1"}
    assert run_cli(nodes, "lb", "rm", "varnish1").returncode == 1
    actions = [e["action"] for e in nodes.audit(limit=10)]
    assert {"lb-add", "lb-update", "lb-remove"} <= set(actions), actions


@pytest.mark.parametrize("body", [
    {"kind": "f5"}, {}, {"kind": 3}, {"kind": "haproxy", "runtime": "a b"},
    {"kind": "haproxy", "runtime": "x" * 256}, {"kind": "haproxy", "backend": "be web"},
    {"kind": "haproxy", "extra": 1},
])
def test_bad_input_is_400_and_changes_nothing(nodes, body):
    r = nodes.put(LBS + "/hap1", auth=nodes.admin, json=body)
    assert r.status_code == 400, r.text
    assert lbs(nodes) == {}


def test_bad_name_is_400(nodes):
    assert nodes.put(LBS + "/a%20b", auth=nodes.admin, json={"kind": "other"}).status_code == 400


def test_usage_errors_exit_2(nodes):
    assert run_cli(nodes, "lb", "add", "hap1").returncode == 2  # no --kind
    assert run_cli(nodes, "lb", "add").returncode == 2
    assert run_cli(nodes, "lb", "list", "--kind", "x").returncode == 2


def test_at_most_16_per_cluster(nodes):
    for i in range(16):
        r = nodes.put(LBS + "/lb%d" % i, auth=nodes.admin, json={"kind": "other"})
        assert r.status_code == 201, r.text
    r = nodes.put(LBS + "/lb16", auth=nodes.admin, json={"kind": "other"})
    assert r.status_code == 409, r.text
    assert nodes.put(LBS + "/lb3", auth=nodes.admin, json={"kind": "nginx"}).status_code == 200


def test_viewer_reads_and_only_admin_changes(nodes):
    viewer = nodes.make_user("vera", "viewer")
    operator = nodes.make_user("otto", "operator")
    assert nodes.put(LBS + "/hap1", auth=nodes.admin, json={"kind": "haproxy"}).status_code == 201
    assert set(lbs(nodes, auth=viewer)) == {"hap1"}
    for who in (viewer, operator):
        assert nodes.put(LBS + "/x", auth=who, json={"kind": "other"}).status_code == 403
        assert nodes.delete(LBS + "/hap1", auth=who).status_code == 403
    assert nodes.get(LBS).status_code == 401
    assert set(lbs(nodes)) == {"hap1"}


def test_kept_across_a_restart(nodes):
    nodes.put(LBS + "/hap1", auth=nodes.admin,
              json={"kind": "haproxy", "runtime": "10.0.0.5:9999"})
    nodes.put(LBS + "/varnish1", auth=nodes.admin, json={"kind": "varnish"})
    assert nodes.delete(LBS + "/varnish1", auth=nodes.admin).status_code == 200
    nodes.stop()
    nodes.start()
    assert set(lbs(nodes)) == {"hap1"}  # the removal was stored too
    assert lbs(nodes)["hap1"]["runtime"] == "10.0.0.5:9999"


def test_what_each_last_saw_of_each_node_on_the_api_and_the_page(nodes):
    nodes.put(LBS + "/hap1", auth=nodes.admin, json={"kind": "haproxy"})
    nodes.put(LBS + "/varnish1", auth=nodes.admin, json={"kind": "varnish"})
    probe(nodes, "127.0.7.2", "n1", "hap1")
    seen = lbs(nodes)
    assert seen["hap1"]["seen"]["n1"]["last_answer"] == "200 OK"
    assert seen["hap1"]["seen"]["n1"]["address"] == "127.0.7.2"
    assert seen["hap1"]["seen"]["n2"] is None
    assert seen["varnish1"]["seen"] == {"n1": None, "n2": None}
    page = nodes.get("/health/managenodes", auth=nodes.admin).text
    assert 'id="lbs"' in page and "varnish1" in page and "no probe yet" in page
    assert "n1: <span class=\"ans ans-serving\">200 OK</span>" in page


def test_made_up_names_take_no_named_slot_once_the_cluster_names_its_lbs(nodes):
    nodes.put(LBS + "/hap1", auth=nodes.admin, json={"kind": "haproxy"})
    for i in range(20):
        probe(nodes, "127.0.7.3", "n1", "fake%d" % i)
    probe(nodes, "127.0.7.4", "n1", "hap1")
    doc = nodes.get("/v1/clusters/default/nodes/n1", auth=nodes.admin).json()["node"]
    named = [p["lb"] for p in doc["probes"] if p["lb"] is not None]
    assert named == ["hap1"], doc["probes"]
    assert doc["probes_untracked_lbs"] == 0


def test_with_named_lbs_others_never_satisfy_and_a_silent_one_blocks_by_name(nodes):
    nodes.put(LBS + "/hap1", auth=nodes.admin, json={"kind": "other"})
    nodes.put(LBS + "/varnish1", auth=nodes.admin, json={"kind": "varnish"})
    for _ in range(2):
        probe(nodes, "127.0.7.5", "n1", "varnish1")
    nodes.set_status({"n1": {"status": "offline"}})
    for _ in range(4):  # an unnamed prober and varnish1 see it out; hap1 says nothing
        probe(nodes, "127.0.7.6", "n1")
        probe(nodes, "127.0.7.5", "n1", "varnish1")
    r = run_cli(nodes, "wait", "n1", "--drained", "--fall", "2", "--timeout", "2",
                "--drain-grace", "0")
    assert r.returncode == 4, r.stdout + r.stderr
    assert "hap1 has not probed it" in r.stderr, r.stderr
    assert "varnish1" not in r.stderr.split("timed out")[1], r.stderr
    for _ in range(3):
        probe(nodes, "127.0.7.7", "n1", "hap1")
    r = run_cli(nodes, "wait", "n1", "--drained", "--fall", "2", "--timeout", "10",
                "--drain-grace", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hap1: 3 failing answers" in r.stdout and "varnish1: " in r.stdout, r.stdout
    assert "1 prober not a named load balancer (ignored)" in r.stdout, r.stdout


def test_an_nginx_lb_counts_after_the_no_probers_delay(nodes):
    nodes.put(LBS + "/nginx1", auth=nodes.admin, json={"kind": "nginx"})
    nodes.set_status({"n2": {"status": "offline"}})
    t0 = time.monotonic()
    r = run_cli(nodes, "wait", "n2", "--drained", "--no-probers-delay", "1",
                "--drain-grace", "0", "--timeout", "10")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nginx1: no probes (nginx): waited 1.0s" in r.stdout, r.stdout
    assert time.monotonic() - t0 >= 1.0


class FakeHAProxySocket:
    """A unix socket answering `show stat` like HAProxy's runtime API, with
    the server's status and current sessions (scur) set by the test."""

    HEADER = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,weight\n"

    def __init__(self, path, backend, server):
        import socket
        import threading
        self.path, self.backend, self.server = str(path), backend, server
        self.status, self.scur, self.asked = "UP", 0, 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import socket
        while not self.halt.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    if conn.recv(100).startswith(b"show stat"):
                        self.asked += 1
                        conn.sendall((self.HEADER +
                                      "fe,FRONTEND,,,0,0,100,0,OPEN,\n" +
                                      "%s,%s,0,0,%d,4,,9,%s,1\n" % (
                                          self.backend, self.server, self.scur, self.status) +
                                      "%s,BACKEND,0,0,%d,4,,9,UP,1\n\n" % (
                                          self.backend, self.scur)).encode())
                except OSError:
                    pass

    def close(self):
        self.halt.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def fake_haproxy(nodes, tmp_path):
    f = FakeHAProxySocket(tmp_path / "admin.sock", "be_default", "n1")
    nodes.put(LBS + "/hap1", auth=nodes.admin,
              json={"kind": "haproxy", "runtime": f.path})
    yield f
    f.close()


def test_runtime_word_and_sessions_in_flight_decide_the_drain(nodes, fake_haproxy):
    """HAProxy's runtime socket: its MAINT is evidence without any probe,
    and the wait goes on until its sessions to the server are 0; on
    timeout it says how many were still open, and where."""
    nodes.set_status({"n1": {"status": "offline"}})
    fake_haproxy.status, fake_haproxy.scur = "MAINT (via agent)", 2
    r = run_cli(nodes, "wait", "n1", "--drained", "--timeout", "2", "--drain-grace", "0")
    assert r.returncode == 4, r.stdout + r.stderr
    assert "requests were still in flight: hap1: 2 in flight" in r.stderr, r.stderr
    fake_haproxy.scur = 0
    r = run_cli(nodes, "wait", "n1", "--drained", "--timeout", "5", "--drain-grace", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hap1: HAProxy says MAINT (via agent)" in r.stdout, r.stdout
    assert "in flight: hap1: 0 in flight" in r.stdout, r.stdout


def test_runtime_up_is_not_drained_and_a_wrong_backend_is_reported(nodes, fake_haproxy):
    nodes.set_status({"n1": {"status": "offline"}})
    r = run_cli(nodes, "wait", "n1", "--drained", "--timeout", "1", "--drain-grace", "0")
    assert r.returncode == 4, r.stdout + r.stderr
    assert "hap1 has not probed it" in r.stderr, r.stderr  # UP: no evidence, no probes
    assert fake_haproxy.asked > 0
    nodes.put(LBS + "/hap1", auth=nodes.admin, json={
        "kind": "haproxy", "runtime": fake_haproxy.path, "backend": "be_other"})
    fake_haproxy.status = "MAINT"
    for _ in range(3):
        probe(nodes, "127.0.7.8", "n1", "hap1")
    r = run_cli(nodes, "wait", "n1", "--drained", "--fall", "2", "--timeout", "5",
                "--drain-grace", "0")
    # no such backend: the runtime cannot vouch, the probes can; in flight
    # is unknown and the (zero) grace applies, which the line says
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hap1: 3 failing answers" in r.stdout, r.stdout
    assert "hap1: unknown" in r.stdout and "no server n1 in backend be_other" in r.stdout
    assert "grace 0.0s" in r.stdout, r.stdout
