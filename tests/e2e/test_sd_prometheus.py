"""
GET /v1/sd/prometheus (issue 17 points 4 and 6; docs/API.md,
docs/INTEGRATIONS.md "Prometheus service discovery"): Prometheus' HTTP
service discovery format, one target group per node with an address,
labelled with its cluster, name, status and reason; a viewer's read; and
a real Prometheus (Debian's) whose /api/v1/targets shows the targets and
follows a status change within seconds.
"""

import signal
import subprocess
import time

import pytest
import requests

from conftest import REPO, free_port

SD = "/v1/sd/prometheus"


def add_node(d, name, address=None, cluster="default"):
    body = {"address": address} if address else {}
    r = d.put("/v1/clusters/%s/nodes/%s" % (cluster, name), auth=d.as_admin, json=body)
    assert r.status_code in (200, 201), r.text


def add_cluster(d, name):
    r = d.post("/v1/clusters", auth=d.as_admin, json={"name": name, "path": "/" + name})
    assert r.status_code in (200, 201), r.text


def groups(d, query="", auth=None):
    r = d.get(SD + query, auth=auth or d.as_admin)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    return r.json()


def by_node(doc):
    return {g["labels"]["__meta_clustermgmt_node"]: g for g in doc}


def test_sd_is_one_target_group_per_node_with_an_address(daemon):
    daemon.set_nodes([])
    add_node(daemon, "web1", "10.0.0.1:8080")
    add_node(daemon, "web2", "[2001:db8::2]:8080")
    add_node(daemon, "spare")  # no address: nothing to scrape
    daemon.set_status({"web2": {"status": "drain", "reason": "kernel update"}})
    doc = groups(daemon)
    assert sorted(by_node(doc)) == ["web1", "web2"]
    assert by_node(doc)["web1"] == {
        "targets": ["10.0.0.1:8080"],
        "labels": {"__meta_clustermgmt_cluster": "default", "__meta_clustermgmt_node": "web1",
                   "__meta_clustermgmt_status": "online", "__meta_clustermgmt_reason": ""}}
    web2 = by_node(doc)["web2"]
    assert web2["targets"] == ["[2001:db8::2]:8080"]
    assert web2["labels"]["__meta_clustermgmt_status"] == "drain"
    assert web2["labels"]["__meta_clustermgmt_reason"] == "kernel update"


def test_sd_covers_every_cluster_or_the_one_asked_for(daemon):
    daemon.set_nodes([])
    add_node(daemon, "web1", "10.0.0.1:8080")
    add_cluster(daemon, "api")
    add_node(daemon, "api1", "10.0.1.1:9000", cluster="api")
    daemon.set_status({"api1": {"status": "offline"}}, cluster="api")
    every = groups(daemon)
    assert {(g["labels"]["__meta_clustermgmt_cluster"], g["labels"]["__meta_clustermgmt_node"],
             g["labels"]["__meta_clustermgmt_status"]) for g in every} == {
        ("default", "web1", "online"), ("api", "api1", "offline")}
    only_api = groups(daemon, "?cluster=api")
    assert [g["targets"] for g in only_api] == [["10.0.1.1:9000"]]


def test_sd_without_addressed_nodes_is_an_empty_list(daemon):
    daemon.set_nodes(["a", "b"])
    r = daemon.get(SD, auth=daemon.as_admin)
    assert r.status_code == 200 and r.text == "[]"


def test_sd_unknown_or_malformed_cluster_is_refused(daemon):
    r = daemon.get(SD + "?cluster=nosuch", auth=daemon.as_admin)
    assert r.status_code == 404 and "nosuch" in r.json()["error"]
    r = daemon.get(SD + "?cluster=a%20b", auth=daemon.as_admin)
    assert r.status_code == 400 and "invalid name" in r.json()["error"]


def test_sd_is_a_viewers_read(daemon):
    add_node(daemon, "web1", "10.0.0.1:8080")
    assert daemon.get(SD).status_code == 401
    _, token = daemon.make_token("viewer", "prometheus")
    assert len(groups(daemon, auth=("bearer", token))) >= 1
    assert daemon.post(SD, auth=daemon.as_admin).status_code == 405


# --- a real Prometheus ---------------------------------------------------------


def prometheus_targets(url):
    r = requests.get(url + "/api/v1/targets", timeout=5)
    r.raise_for_status()
    return r.json()["data"]


def status_of(targets, node):
    """The node's __meta_clustermgmt_status as Prometheus discovered it,
    and whether the target is active (not dropped by the relabel rule)."""
    for kind in ("activeTargets", "droppedTargets"):
        for t in targets[kind]:
            labels = t["discoveredLabels"]
            if labels.get("__meta_clustermgmt_node") == node:
                return labels.get("__meta_clustermgmt_status"), kind == "activeTargets"
    return None, None


def wait_for(url, node, want, log_path, timeout=30):
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = status_of(prometheus_targets(url), node)
        except requests.RequestException:
            pass  # not up yet
        if seen == want:
            return
        time.sleep(0.1)
    pytest.fail("%s: wanted %r, Prometheus shows %r after %d s; log:\n%s" % (
        node, want, seen, timeout, log_path.read_text()[-3000:]))


def documented_config(port, token_file):
    """The scrape configuration of docs/INTEGRATIONS.md, as written, but
    for the daemon's port, the token file, and a refresh of 1 s."""
    doc = (REPO / "docs" / "INTEGRATIONS.md").read_text()
    section = doc[doc.index("## Prometheus service discovery"):]
    yaml = section[section.index("```yaml\n") + 8:]
    yaml = yaml[:yaml.index("```")]
    for old, new in [("127.0.0.1:8080", "127.0.0.1:%d" % port),
                     ("refresh_interval: 15s", "refresh_interval: 1s"),
                     ("/etc/prometheus/clustermgmt.token", str(token_file))]:
        assert old in yaml, old
        yaml = yaml.replace(old, new)
    return "global: {scrape_interval: 1s}\n" + yaml


@pytest.mark.once
def test_real_prometheus_discovers_the_nodes_and_follows_a_drain(daemon, tmp_path):
    """Debian's Prometheus runs the configuration docs/INTEGRATIONS.md
    gives (a viewer token, a relabel rule that keeps online nodes only),
    refreshed every second. The nodes' addresses are the daemon itself,
    so that the scrapes succeed. After a drain, /api/v1/targets shows the
    new status (and the target dropped) within a few seconds: Prometheus
    hands discovery changes to its scrape manager every 5 s. The
    authorization's type is written out in the document: Debian's 2.42
    sends the credentials without "Bearer " otherwise."""
    add_cluster(daemon, "web")
    add_node(daemon, "web1", "127.0.0.1:%d" % daemon.port, cluster="web")
    add_node(daemon, "web2", "127.0.0.1:%d" % daemon.port, cluster="web")
    _, token = daemon.make_token("viewer", "prometheus")
    token_file = tmp_path / "clustermgmt.token"
    token_file.write_text(token)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(documented_config(daemon.port, token_file))
    log_path = tmp_path / "prometheus.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        ["prometheus", "--config.file", str(config), "--storage.tsdb.path",
         str(tmp_path / "data"), "--web.listen-address", "127.0.0.1:%d" % port],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    try:
        wait_for(url, "web1", ("online", True), log_path, timeout=60)
        wait_for(url, "web2", ("online", True), log_path, timeout=10)
        active = prometheus_targets(url)["activeTargets"]
        assert sorted(t["labels"]["node"] for t in active) == ["web1", "web2"]
        assert {t["labels"]["cluster"] for t in active} == {"web"}
        changed = time.monotonic()
        daemon.set_status({"web2": {"status": "drain", "reason": "deploy"}}, cluster="web")
        wait_for(url, "web2", ("drain", False), log_path, timeout=20)
        took = time.monotonic() - changed
        print("Prometheus showed the drain after %.1f s" % took)
        assert took < 12, took  # refresh 1 s + the scrape manager's 5 s, with slack
        wait_for(url, "web1", ("online", True), log_path, timeout=5)
        daemon.set_status({"web2": {"status": "online"}}, cluster="web")
        wait_for(url, "web2", ("online", True), log_path, timeout=20)
        assert proc.poll() is None, log_path.read_text()[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
