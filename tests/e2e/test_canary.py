"""
A rollout that judges what it deploys (issue 15): `rollout --canary N
--bake D`, `--verify`, the halt and the rollback, and `clustermgmt verify`,
through real HAProxy and Varnish reading their own counters (HAProxy's
admin socket, Varnish's shared memory through libvarnishapi).

The farm, on loopback: the daemon, three application nodes running
canaryapp.py (its "build" is a word in a file that the deploy command
writes: good, err10, slow300, die4), HAProxy (hap1) and Varnish
(varnish1) configured by lbconfig and registered with runtime access, and
steady client traffic through each. Every process is started here and
stopped by its pid; every wait is bounded.
"""

import json
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import Daemon, free_port
from lbharness import HAProxy, Process, Traffic, Varnish, cli, start_on_free_port, wait_until

# Real HAProxy, Varnish and Prometheus, timed judgements: the release pass
# of make test only (the daemon code they reach, the rollouts registry
# aside, is reached under ASan by the other tests; the verdict's arithmetic
# by tests/unit/test_analysis.c, which runs under ASan too).
pytestmark = pytest.mark.once

HERE = Path(__file__).resolve().parent
NODES = ("app1", "app2", "app3")
LB_OPTIONS = ["--interval", "200ms", "--timeout", "150ms", "--fall", "2", "--rise", "2"]
RATE = 60.0  # client requests/s through each load balancer: 20 per node
RUN_TIMEOUT = 150


class CanaryApp(Process):
    """canaryapp.py on a loopback port; its build is the file self.build."""

    def __init__(self, name, directory, port, daemon_port):
        super().__init__(name, directory)
        self.port = port
        self.address = "127.0.0.1:%d" % port
        self.build = self.dir / "build"
        self.build.write_text("good\n")
        self.daemon_port = daemon_port

    def argv(self):
        return [sys.executable, str(HERE / "canaryapp.py"), self.name, self.address,
                "127.0.0.1:%d" % self.daemon_port, str(self.build)]

    def ready(self):
        try:
            return requests.get("http://%s/" % self.address, timeout=1,
                                headers={"Connection": "close"}).status_code == 200
        except requests.RequestException:
            return False


class Farm:
    def __init__(self, root, cm_bin, varnish=False):
        self.root, self.cm_bin, self.with_varnish = Path(root), cm_bin, varnish
        self.daemon = None
        self.apps, self.lbs, self.traffic = {}, [], []

    def cli(self, *args, **kw):
        return cli(self.cm_bin, self.daemon, *args, **kw)

    def start(self, rate=RATE):
        self.daemon = Daemon(self.root / "daemon", bin_path=self.cm_bin, start=False)
        self.daemon.start()
        for name in NODES:
            self.apps[name] = start_on_free_port(
                lambda port, name=name: CanaryApp(name, self.root / name, port, self.daemon.port))
            r = self.daemon.put("/v1/clusters/default/nodes/" + name, auth=self.daemon.as_admin,
                                json={"address": self.apps[name].address})
            assert r.status_code in (200, 201), r.text
        self.haproxy = start_on_free_port(lambda port: HAProxy(self.root / "haproxy", self.cli(
            "lbconfig", "haproxy", "--lb", "hap1", "--listen", "127.0.0.1:%d" % port,
            "--agent", "none", *LB_OPTIONS, check=True).stdout, port))
        self.lbs.append(self.haproxy)
        self.cli("lb", "add", "hap1", "--kind", "haproxy", "--runtime",
                 str(self.haproxy.stats_path), check=True)
        if self.with_varnish:
            vcl = self.cli("lbconfig", "varnish", "--lb", "varnish1", *LB_OPTIONS,
                           check=True).stdout
            self.varnish = start_on_free_port(
                lambda port: Varnish(self.root / "varnish", vcl, port))
            self.lbs.append(self.varnish)
            self.cli("lb", "add", "varnish1", "--kind", "varnish", "--runtime",
                     str(self.varnish.workdir), check=True)
        # Three requests under way at once: one alone falls behind 60 a second on
        # a loaded machine (about 15 ms each), and the verdicts need the volume.
        self.traffic = [Traffic(lb.name, lb.url, rate=rate, workers=3) for lb in self.lbs]
        for t in self.traffic:
            t.start()
        wait_until(lambda: all(t.nodes_seen(time.monotonic() - 1.0) == set(NODES)
                               for t in self.traffic), 30, interval=0.2,
                   what="traffic through every load balancer to reach every node")
        return self

    def builds(self):
        return {n: a.build.read_text().strip() for n, a in self.apps.items()}

    def deploy_command(self, build):
        return "echo %s > %s/{node}/build" % (build, self.root)

    def rollout(self, *args, timeout=RUN_TIMEOUT):
        return self.cli("rollout", "--json", "--fall", "2", "--drain-timeout", "20s",
                        "--ready-timeout", "20s", *args, timeout=timeout)

    def close(self):
        problems = []
        for step in [t.stop for t in self.traffic] + [p.stop for p in self.lbs] + [
                a.stop for a in self.apps.values()]:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                problems.append(repr(e))
        if self.daemon is not None:
            problem = self.daemon.close()
            if problem:
                problems.append(problem)
        return "\n".join(problems) or None


@pytest.fixture
def farm(cm_bin, tmp_path):
    f = Farm(tmp_path, cm_bin)
    try:
        yield f.start()
    finally:
        problem = f.close()
        if problem:
            pytest.fail(problem, pytrace=False)


@pytest.fixture
def farm_with_varnish(cm_bin, tmp_path):
    f = Farm(tmp_path, cm_bin, varnish=True)
    try:
        yield f.start()
    finally:
        problem = f.close()
        if problem:
            pytest.fail(problem, pytrace=False)


def summary(r):
    assert r.stdout.strip(), "no JSON summary; stderr:\n" + r.stderr
    return json.loads(r.stdout)


def statuses(farm):
    return {n["name"]: n["status"] for n in farm.daemon.nodes()["nodes"]}


def test_good_build_passes_the_canary_and_rolls_out_everywhere(farm):
    r = farm.rollout("--exec", farm.deploy_command("v2"), "--canary", "1", "--bake", "15s",
                     "--rollback", farm.deploy_command("good"))
    doc = summary(r)
    assert r.returncode == 0, r.stderr
    assert doc["result"] == "ok"
    app1 = doc["nodes"][0]
    assert app1["verdict"] == "pass", app1
    assert app1["evidence"][0]["lb"] == "hap1" and app1["evidence"][0]["judged"]
    assert app1["evidence"][0]["responses"] >= 100, app1
    assert app1["evidence"][0]["peer_responses"] >= 100, app1
    assert farm.builds() == {n: "v2" for n in NODES}
    assert statuses(farm) == {n: "online" for n in NODES}


def test_ten_percent_500s_are_stopped_at_the_canary_and_rolled_back(farm):
    t0 = time.monotonic()
    r = farm.rollout("--exec", farm.deploy_command("err10"), "--canary", "1", "--bake", "40s",
                     "--rollback", farm.deploy_command("good"), "--verify", "10s")
    doc = summary(r)
    assert r.returncode == 5, r.stderr
    assert doc["result"] == "verdict fail"
    app1 = doc["nodes"][0]
    assert app1["verdict"] == "fail", app1
    assert "error ratio" in app1["verdict_reason"], app1
    assert app1["verdict_ms"] < 30000, app1  # the goal: 10 % caught within 30 s
    ev = app1["evidence"][0]
    assert ev["errors"] > 0 and ev["statistic"] >= ev["threshold"], ev
    assert app1["rolled_back"] is True and app1["result"] == "rolled back", app1
    assert app1["out_ms"] is not None and app1["out_ms"] < 5000, app1
    # the others never ran the bad build
    assert [n["result"] for n in doc["nodes"][1:]] == ["not started", "not started"]
    assert farm.builds() == {"app1": "good", "app2": "good", "app3": "good"}
    assert statuses(farm) == {n: "online" for n in NODES}
    assert "verdict fail" in r.stderr and "hap1:" in r.stderr
    # the price of the canary: the 500s clients saw, from app1 only
    failed = farm.traffic[0].failures(t0)
    assert all("HTTP 500" in f[3] for f in failed), failed[:3]


def test_a_bad_build_without_rollback_is_left_offline_without_ttl(farm):
    r = farm.rollout("--exec", farm.deploy_command("err50"), "--canary", "1", "--bake", "30s")
    doc = summary(r)
    assert r.returncode == 5, r.stderr
    assert doc["nodes"][0]["result"] == "verdict fail"
    node = [n for n in farm.daemon.nodes()["nodes"] if n["name"] == "app1"][0]
    assert node["status"] == "offline" and node["expires_at"] is None, node
    assert "verdict fail" in node["reason"], node
    assert statuses(farm)["app2"] == "online" and statuses(farm)["app3"] == "online"


def test_three_hundred_ms_slower_is_stopped_at_the_canary(farm):
    r = farm.rollout("--exec", farm.deploy_command("slow300"), "--canary", "1", "--bake", "40s")
    doc = summary(r)
    assert r.returncode == 5, r.stderr
    app1 = doc["nodes"][0]
    assert app1["verdict"] == "fail", app1
    assert "response time" in app1["verdict_reason"], app1


def test_rollback_all_also_rolls_back_the_nodes_that_passed(farm):
    """app1 passes the canary with v2; app2's build (err50) fails --verify
    against app3, not deployed yet: app2 is rolled back, and with
    --rollback-all app1 too, as a rollout step of its own; app3 never
    runs anything."""
    deploy = ("if [ {node} = app2 ]; then echo err50; else echo v2; fi > %s/{node}/build"
              % farm.root)
    # About 20 responses a second reach each node: a 6 s verify sees
    # about 120, so the default 100 for a verdict left a loaded machine
    # no room (the rolled-back app2 judged again came out inconclusive,
    # "rollback failed"). 40 leaves a threefold margin and still judges
    # err50's half of errors.
    r = farm.rollout("--exec", deploy, "--canary", "1", "--bake", "8s", "--verify", "6s",
                     "--min-requests", "40",
                     "--rollback", farm.deploy_command("good"), "--rollback-all")
    doc = summary(r)
    assert r.returncode == 5, r.stderr
    assert doc["result"] == "verdict fail", doc
    app1, app2, app3 = doc["nodes"]
    assert app1["verdict"] == "pass", app1
    assert app1["rolled_back"] is True and app1["result"] == "rolled back", app1
    assert app2["verdict"] == "fail" and "error ratio" in app2["verdict_reason"], app2
    assert app2["rolled_back"] is True and app2["result"] == "rolled back", (app2, r.stderr)
    assert app3["result"] == "not started", app3
    assert "app1: rolling back (--rollback-all)" in r.stderr, r.stderr
    assert farm.builds() == {n: "good" for n in NODES}
    assert statuses(farm) == {n: "online" for n in NODES}


def test_a_build_that_dies_after_the_warmup_is_stopped(farm):
    r = farm.rollout("--exec", farm.deploy_command("die4"), "--warmup", "/", "--canary", "1",
                     "--bake", "40s")
    doc = summary(r)
    assert r.returncode == 5, r.stderr
    assert doc["nodes"][0]["verdict"] == "fail", doc["nodes"][0]
    assert statuses(farm)["app1"] == "offline"


def test_low_traffic_is_inconclusive_never_a_pass(cm_bin, tmp_path):
    f = Farm(tmp_path, cm_bin)
    try:
        f.start(rate=3.0)  # one request per node per second
        r = f.rollout("--exec", f.deploy_command("v2"), "--canary", "1", "--bake", "8s")
        doc = summary(r)
        assert r.returncode == 6, r.stderr
        assert doc["result"] == "inconclusive"
        assert doc["nodes"][0]["verdict"] == "inconclusive"
        assert "too little traffic" in doc["nodes"][0]["verdict_reason"]
        assert doc["nodes"][1]["result"] == "not started"
        # with --on-inconclusive continue it goes on
        r = f.rollout("--exec", f.deploy_command("v3"), "--canary", "1", "--bake", "3s",
                      "--on-inconclusive", "continue")
        assert r.returncode == 0, r.stderr
        assert f.builds() == {n: "v3" for n in NODES}
    finally:
        problem = f.close()
        if problem:
            pytest.fail(problem, pytrace=False)


def test_a_load_balancer_reload_during_the_bake_gives_no_false_verdict(farm):
    import subprocess
    import threading

    def restart_haproxy():
        time.sleep(6)
        farm.haproxy.stop()
        farm.haproxy.start()

    t = threading.Thread(target=restart_haproxy)
    t.start()
    r = farm.rollout("--exec", farm.deploy_command("v2"), "--canary", "1", "--bake", "20s",
                     "--nodes", "app1")
    t.join(timeout=30)
    doc = summary(r)
    assert r.returncode == 0, r.stderr
    ev = doc["nodes"][0]["evidence"][0]
    assert doc["nodes"][0]["verdict"] == "pass", doc["nodes"][0]
    assert ev["resets"] + ev["failed_reads"] >= 1, ev  # the reload was seen
    del subprocess


def test_verify_judges_a_deploy_done_elsewhere(farm):
    farm.apps["app2"].build.write_text("err20\n")
    r = farm.cli("verify", "app2", "--for", "40s", "--json", timeout=60)
    assert r.returncode == 5, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "fail"
    assert doc["nodes"][0]["name"] == "app2"
    farm.apps["app2"].build.write_text("good\n")
    r = farm.cli("verify", "app1", "--against", "app2,app3", "--for", "10s", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "app1: pass" in r.stdout


def test_verify_and_rollout_refuse_a_judgement_no_load_balancer_can_give(farm):
    farm.cli("lb", "rm", "hap1", check=True)
    farm.cli("lb", "add", "ngx1", "--kind", "nginx", check=True)
    r = farm.cli("verify", "app1", "--for", "2s")
    assert r.returncode == 1
    assert "nginx keeps no per-server counters" in r.stderr, r.stderr
    r = farm.rollout("--exec", farm.deploy_command("v2"), "--canary", "1", "--bake", "5s")
    assert r.returncode == 1
    assert farm.builds() == {n: "good" for n in NODES}  # nothing ran


@pytest.mark.parametrize("args", [
    ["--bake", "10s"],
    ["--canary", "0", "--bake", "10s"],
    ["--canary", "1", "--bake", "0s"],
    ["--canary", "1", "--max-error-ratio", "2"],
    ["--canary", "1", "--max-error-ratio", "x"],
    ["--canary", "1", "--on-inconclusive", "maybe"],
    ["--rollback-all", "--canary", "1"],
    ["--rollback", "true"],
])
def test_verdict_usage_errors_exit_2_before_any_change(farm, args):
    r = farm.cli("rollout", "--exec", farm.deploy_command("v2"), *args)
    assert r.returncode == 2, r.stderr
    assert farm.builds() == {n: "good" for n in NODES}


def test_varnish_counts_the_500s_of_its_backends(farm_with_varnish):
    f = farm_with_varnish
    f.apps["app3"].build.write_text("err30\n")
    r = f.cli("verify", "app3", "--for", "40s", "--json", timeout=60)
    doc = json.loads(r.stdout)
    assert r.returncode == 5, r.stdout + r.stderr
    by_lb = {e["lb"]: e for e in doc["nodes"][0]["evidence"]}
    assert by_lb["varnish1"]["judged"] and by_lb["varnish1"]["responses"] > 0, by_lb
    assert by_lb["varnish1"]["errors"] > 0, by_lb


def start_rollout(farm, *args):
    """A rollout in the background (Popen), as lbharness.cli runs one."""
    import os
    import subprocess
    env = dict(os.environ)
    for k in ("CLUSTERMGMT_TOKEN", "NETRC"):
        env.pop(k, None)
    env.update(CLUSTERMGMT_URL=farm.daemon.url, CLUSTERMGMT_USER="admin",
               CLUSTERMGMT_PASSWORD=farm.daemon.password)
    return subprocess.Popen([farm.cm_bin, "rollout", "--json"] + list(args), env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def registered(farm):
    r = farm.daemon.get("/v1/clusters/default/rollouts", auth=farm.daemon.as_admin)
    assert r.status_code == 200, r.text
    return r.json()["rollouts"]


def test_a_running_rollout_is_visible_and_a_second_one_is_refused(farm):
    p = start_rollout(farm, "--exec", farm.deploy_command("v2"), "--canary", "1",
                      "--bake", "12s", "--nodes", "app1,app2")
    try:
        wait_until(lambda: any(x["phase"] == "judging" for x in registered(farm)), 30,
                   interval=0.2, what="the rollout to be shown judging")
        shown = registered(farm)[0]
        assert shown["state"] == "running" and shown["client_gone"] is False, shown
        assert shown["nodes"] == ["app1", "app2"] and shown["current"] == "app1", shown
        assert shown["started_by"] == "admin", shown
        r = farm.rollout("--exec", farm.deploy_command("v3"), "--nodes", "app3")
        assert r.returncode == 1, r.stderr
        assert "in progress" in r.stderr and shown["id"] in r.stderr, r.stderr
        assert farm.builds()["app3"] == "good"  # nothing ran
        out, err = p.communicate(timeout=RUN_TIMEOUT)
        assert p.returncode == 0, err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    done = registered(farm)[0]
    assert done["state"] == "done" and done["verdicts"] == {"app1": "pass"}, done
    # finished: the next one starts
    r = farm.rollout("--exec", farm.deploy_command("v3"), "--nodes", "app3")
    assert r.returncode == 0, r.stderr


def test_a_rollout_whose_client_died_is_shown_gone_and_force_overrides_it(farm):
    import signal as _signal
    p = start_rollout(farm, "--exec", farm.deploy_command("v2"), "--canary", "1",
                      "--bake", "120s", "--nodes", "app1")
    try:
        wait_until(lambda: any(x["phase"] == "judging" for x in registered(farm)), 30,
                   interval=0.2, what="the rollout to be shown judging")
        p.send_signal(_signal.SIGKILL)
        p.wait(timeout=10)
        wait_until(lambda: registered(farm)[0]["client_gone"], 45, interval=1.0,
                   what="the registry to show the client gone")
        assert registered(farm)[0]["state"] == "client gone"
        r = farm.rollout("--exec", farm.deploy_command("v3"), "--nodes", "app3")
        assert r.returncode == 1 and "may be dead" in r.stderr, r.stderr
        r = farm.rollout("--exec", farm.deploy_command("v3"), "--nodes", "app3", "--force")
        assert r.returncode == 0, r.stderr
        shown = registered(farm)
        assert shown[0]["state"] == "done" and shown[1]["state"] == "interrupted", shown
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


class Prometheus(Process):
    """prometheus scraping every app's /metrics each second, each target
    labelled node="NAME"."""

    start_timeout = 30.0

    def __init__(self, directory, port, apps):
        super().__init__("prometheus", directory)
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.cfg = self.dir / "prometheus.yml"
        targets = "".join(
            "      - targets: ['%s']\n        labels: {node: %s}\n" % (a.address, n)
            for n, a in sorted(apps.items()))
        self.cfg.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                            "scrape_configs:\n  - job_name: app\n    static_configs:\n"
                            + targets)

    def argv(self):
        return ["prometheus", "--config.file=%s" % self.cfg,
                "--storage.tsdb.path=%s" % (self.dir / "data"),
                "--web.listen-address=127.0.0.1:%d" % self.port]

    def ready(self):
        try:
            return requests.get(self.url + "/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False


ERROR_RATIO = ('sum(rate(canary_requests_total{node="{node}",code="500"}[5s])) / '
               'sum(rate(canary_requests_total{node="{node}"}[5s]))')


def test_a_prometheus_query_judges_where_no_load_balancer_can(farm):
    prom = start_on_free_port(lambda port: Prometheus(farm.root / "prometheus", port, farm.apps))
    farm.lbs.append(prom)  # stopped with the farm
    wait_until(lambda: len(requests.get(prom.url + "/api/v1/query", params={
        "query": ERROR_RATIO.replace("{node}", "app1")}, timeout=2).json()["data"]["result"]) == 1,
        30, interval=0.5, what="Prometheus to have the apps' rates")
    # only nginx named: the load balancers give nothing, the query does
    farm.cli("lb", "rm", "hap1", check=True)
    farm.cli("lb", "add", "ngx1", "--kind", "nginx", check=True)
    farm.apps["app2"].build.write_text("err30\n")
    r = farm.cli("verify", "app2", "--for", "40s", "--json", "--prometheus", prom.url,
                 "--analysis-query", ERROR_RATIO, timeout=60)
    assert r.returncode == 5, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    by_lb = {e["lb"]: e for e in doc["nodes"][0]["evidence"]}
    assert by_lb["ngx1"]["judged"] is False, by_lb
    assert by_lb["prometheus"]["outcome"] == "fail" and by_lb["prometheus"]["value"] > 0.1, by_lb
    farm.apps["app2"].build.write_text("good\n")
    time.sleep(6)  # the 5 s rate window forgets the 500s
    r = farm.cli("verify", "app1", "--for", "12s", "--prometheus", prom.url,
                 "--analysis-query", ERROR_RATIO, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = farm.cli("verify", "app1", "--for", "2s", "--prometheus", prom.url,
                 "--analysis-query", "up")
    assert r.returncode == 2 and "{node}" in r.stderr, r.stderr


def test_dry_run_prints_the_verdicts_plan_and_changes_nothing(farm):
    r = farm.cli("rollout", "--dry-run", "--exec", farm.deploy_command("v2"), "--canary", "1",
                 "--bake", "30s", "--verify", "10s", "--rollback", farm.deploy_command("good"))
    assert r.returncode == 0, r.stderr
    assert "canary: the first 1 node, judged together for 30.0s" in r.stdout, r.stdout
    assert "later batches: judged for 10.0s" in r.stdout, r.stdout
    assert "then roll back with: echo good" in r.stdout, r.stdout
    r = farm.cli("rollout", "--dry-run", "--json", "--exec", farm.deploy_command("v2"),
                 "--canary", "1", "--bake", "30s")
    plan = json.loads(r.stdout)["verdict"]
    assert plan["canary"] == 1 and plan["bake_ms"] == 30000 and plan["rollback"] is None, plan
    assert farm.builds() == {n: "good" for n in NODES}
    assert registered(farm) == []  # a dry run is not a rollout in progress


def test_the_rollouts_registry_refuses_bad_input_and_changes_nothing(daemon):
    path = "/v1/clusters/default/rollouts"
    admin = daemon.as_admin
    good = {"id": "abc123", "nodes": ["node1"], "command": "true"}
    for body, status in [({"id": "abc123"}, 400),                        # no nodes
                         ({"id": "a/b", "nodes": []}, 400),             # bad id
                         ({"id": "x" * 17, "nodes": []}, 400),          # id too long
                         ({"id": "abc123", "nodes": ["bad name"]}, 400),
                         ({"id": "abc123", "nodes": "node1"}, 400),
                         (dict(good, extra=1), 400),                     # unknown field
                         (dict(good, phase="x" * 513), 400),
                         (dict(good, force="yes"), 400)]:
        r = daemon.post(path, auth=admin, json=body)
        assert r.status_code == status, (body, r.text)
        assert "error" in r.json()
    assert daemon.get(path, auth=admin).json()["rollouts"] == []
    assert daemon.post("/v1/clusters/nope/rollouts", auth=admin, json=good).status_code == 404
    viewer = daemon.make_user("viewer1", "viewer")
    assert daemon.post(path, auth=viewer, json=good).status_code == 403
    assert daemon.get(path, auth=viewer).status_code == 200
    r = daemon.post(path, auth=admin, json=good)
    assert r.status_code == 201, r.text
    one = path + "/abc123"
    for body in [{"state": "maybe"}, {"verdicts": {"node1": "x" * 33}},
                 {"verdicts": {"bad name": "pass"}}, {"nodes": ["node2"]}]:
        assert daemon.put(one, auth=admin, json=body).status_code == 400, body
    assert daemon.put(path + "/zzz", auth=admin, json={"phase": "x"}).status_code == 404
    shown = daemon.get(path, auth=admin).json()["rollouts"]
    assert len(shown) == 1 and shown[0]["state"] == "running" and shown[0]["phase"] is None
    assert shown[0]["nodes"] == ["node1"] and shown[0]["verdicts"] == {}
    # the same id again while it runs is a conflict, also with force
    assert daemon.post(path, auth=admin, json=dict(good, force=True)).status_code == 409
    r = daemon.put(one, auth=admin, json={"state": "done", "verdicts": {"node1": "pass"}})
    assert r.status_code == 200 and r.json()["rollout"]["state"] == "done", r.text
