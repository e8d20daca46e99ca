"""
GET /metrics (issue 11 point 1; docs/METRICS.md): Prometheus' text format
as `promtool check metrics` reads it, the series for what the daemon
knows, who may read them (public on loopback listeners, a viewer
credential elsewhere, or a --metrics-listen listener of its own), and a
real Prometheus server on loopback scraping the daemon and answering a
query for an offline node's series.
"""

import os
import re
import signal
import subprocess
import time

import pytest
import requests

from conftest import free_port, fresh_source_ip

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics(d, path="/metrics", **kw):
    r = d.get(path, **kw)
    assert r.status_code == 200, r.text
    return r


def sample(text, series):
    """The value of the sample written exactly as series, or None."""
    m = re.search(r"^%s (\S+)$" % re.escape(series), text, re.M)
    return m.group(1) if m else None


def promtool_check(text):
    out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    return out.returncode, out.stdout + out.stderr


def test_metrics_pass_promtool_check(daemon):
    daemon.set_nodes(["a", "b"])
    daemon.set_status({"b": {"status": "offline", "ttl": 600}})
    daemon.probe("a")
    r = metrics(daemon)
    assert r.headers["Content-Type"] == CONTENT_TYPE
    rc, out = promtool_check(r.text)
    assert rc == 0, out


def test_metrics_show_status_per_state_ttl_and_version(daemon):
    daemon.set_nodes(["a", "b", "c"])
    daemon.set_status({"b": {"status": "offline", "ttl": 600}, "c": {"status": "drain"}})
    text = metrics(daemon).text
    assert sample(text, 'clustermgmt_node_status{cluster="default",node="a",status="online"}') == "1"
    assert sample(text, 'clustermgmt_node_status{cluster="default",node="a",status="offline"}') == "0"
    assert sample(text, 'clustermgmt_node_status{cluster="default",node="b",status="offline"}') == "1"
    assert sample(text, 'clustermgmt_node_status{cluster="default",node="c",status="drain"}') == "1"
    ttl = float(sample(text, 'clustermgmt_node_ttl_seconds{cluster="default",node="b"}'))
    assert 500 < ttl <= 600
    assert sample(text, 'clustermgmt_node_ttl_seconds{cluster="default",node="a"}') is None
    version = daemon.nodes()["version"]
    assert sample(text, 'clustermgmt_cluster_version{cluster="default"}') == str(version)
    assert sample(text, 'clustermgmt_store_up') == "1"
    build = re.search(r'^clustermgmt_build_info\{version="([^"]+)"\} 1$', text, re.M)
    assert build, text[:500]


def test_metrics_count_probe_answers_without_prober_labels(daemon):
    daemon.set_nodes(["a", "b"])
    daemon.set_status({"b": {"status": "offline"}})
    for _ in range(3):
        assert daemon.probe("a").status_code == 200
    assert daemon.probe("b").status_code == 503
    text = metrics(daemon).text
    assert sample(text, 'clustermgmt_probe_answers_total{cluster="default",answer="serving"}') == "3"
    assert sample(text, 'clustermgmt_probe_answers_total{cluster="default",answer="offline"}') == "1"
    assert sample(text, 'clustermgmt_node_probers{cluster="default",node="a"}') == "1"
    assert "127.0.0.1" not in text  # no prober address anywhere


def test_metrics_count_writes_and_their_latency(daemon):
    daemon.set_nodes(["a"])
    before = metrics(daemon).text
    count = int(sample(before, "clustermgmt_write_duration_seconds_count"))
    writes = int(sample(before, "clustermgmt_writes_total"))
    daemon.set_status({"a": {"status": "offline"}})
    daemon.set_status({"a": {"status": "online"}})
    after = metrics(daemon).text
    assert int(sample(after, "clustermgmt_write_duration_seconds_count")) == count + 2
    assert int(sample(after, "clustermgmt_writes_total")) == writes + 2
    assert float(sample(after, "clustermgmt_write_duration_seconds_sum")) > 0


def test_metrics_show_process_figures(daemon):
    text = metrics(daemon).text
    rss = int(sample(text, "process_resident_memory_bytes"))
    assert rss > 1024 * 1024
    assert int(sample(text, "process_open_fds")) >= 3
    start = float(sample(text, "process_start_time_seconds"))
    assert time.time() - 120 < start <= time.time() + 1


NETNS_SCRIPT = r"""
set -u
ip link set lo up && ip addr add 10.99.0.1/32 dev lo || exit 99
"$BIN" serve --listen 10.99.0.1:8080 --metrics-listen 10.99.0.1:9150 --db "$DIR/cm.db" \
    --admin-password-file "$DIR/pw" 2>"$DIR/daemon.log" &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
i=0
until curl -s -o /dev/null http://10.99.0.1:8080/v1/health; do
    i=$((i + 1)); [ $i -lt 100 ] || exit 98; sleep 0.1
done
code() { label=$1; shift; curl -s -o /dev/null -w "$label %{http_code}\n" "$@"; }
code main-anonymous http://10.99.0.1:8080/metrics
token=$(curl -s -u "admin:$PW" -H 'Content-Type: application/json' \
    -d '{"role": "viewer", "description": "prometheus"}' http://10.99.0.1:8080/v1/tokens |
    sed 's/.*"token": *"\([^"]*\)".*/\1/')
code main-viewer -H "Authorization: Bearer $token" http://10.99.0.1:8080/metrics
code own-anonymous http://10.99.0.1:9150/metrics
code own-health http://10.99.0.1:9150/v1/health
code own-probe "http://10.99.0.1:9150/health?node=x"
kill $pid; wait $pid; echo "exit $?"
"""


def test_metrics_access_on_non_loopback_listeners(cm_bin, tmp_path):
    """In a network namespace of its own (so nothing listens beyond
    loopback of this machine), the daemon listens on 10.99.0.1, which is
    not a loopback address: /metrics there needs a viewer, while the
    --metrics-listen listener serves /metrics, and only that, to anyone."""
    password = "netns-password-1"
    (tmp_path / "pw").write_text(password)
    out = subprocess.run(["unshare", "--net", "sh", "-c", NETNS_SCRIPT], capture_output=True,
                         text=True, timeout=60,
                         env=dict(os.environ, BIN=cm_bin, DIR=str(tmp_path), PW=password))
    log = (tmp_path / "daemon.log").read_text() if (tmp_path / "daemon.log").exists() else ""
    assert out.returncode == 0, out.stdout + out.stderr + log
    codes = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert codes == {"main-anonymous": "401", "main-viewer": "200", "own-anonymous": "200",
                     "own-health": "404", "own-probe": "404", "exit": "0"}, out.stdout + log


def test_metrics_are_public_on_a_loopback_listener(daemon):
    r = daemon.get("/metrics", source=fresh_source_ip())
    assert r.status_code == 200


def test_metrics_listen_on_loopback(make_daemon):
    port = free_port()
    make_daemon(["--metrics-listen", "127.0.0.1:%d" % port])
    r = requests.get("http://127.0.0.1:%d/metrics" % port, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == CONTENT_TYPE
    assert "clustermgmt_node_status" in r.text or "clustermgmt_build_info" in r.text
    r = requests.post("http://127.0.0.1:%d/metrics" % port, timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    r = requests.get("http://127.0.0.1:%d/metrics/x" % port, timeout=10)
    assert r.status_code == 404


def test_metrics_listen_bad_address_is_a_usage_error(cm_bin, tmp_path):
    out = subprocess.run([cm_bin, "serve", "--metrics-listen", "nowhere", "--db",
                          str(tmp_path / "x.db")], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    assert "--metrics-listen" in out.stderr


# --- a real Prometheus ---------------------------------------------------------


def prometheus_query(url, query):
    r = requests.get(url + "/api/v1/query", params={"query": query}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


@pytest.mark.once
def test_real_prometheus_scrapes_and_answers_for_an_offline_node(daemon, tmp_path):
    daemon.set_nodes(["web1", "web2"])
    daemon.set_status({"web2": {"status": "offline", "reason": "kernel update"}})
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: clustermgmt\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % daemon.port)
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen(
        ["prometheus", "--config.file", str(config), "--storage.tsdb.path",
         str(tmp_path / "data"), "--web.listen-address", "127.0.0.1:%d" % port],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    try:
        deadline = time.monotonic() + 60
        result, up = [], []
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                up = prometheus_query(url, 'up{job="clustermgmt"}')
                result = prometheus_query(
                    url, 'clustermgmt_node_status{node="web2",status="offline"} == 1')
            except requests.RequestException:
                pass  # not up yet
            if result:
                break
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
        assert result, "no series after 60 s; up=%r; log:\n%s" % (
            up, (tmp_path / "prometheus.log").read_text()[-3000:])
        assert result[0]["metric"]["cluster"] == "default"
        assert result[0]["value"][1] == "1"
        online = prometheus_query(url, 'clustermgmt_node_status{node="web1",status="online"}')
        assert online and online[0]["value"][1] == "1"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def test_metrics_count_held_long_polls(daemon):
    import threading
    daemon.set_nodes(["a"])
    version = daemon.nodes()["version"]
    answers = []
    poll = threading.Thread(target=lambda: answers.append(daemon.get(
        "/v1/clusters/default/events?after=%d&wait=30" % version, auth=daemon.admin,
        timeout=40)))
    poll.start()
    try:
        deadline = time.monotonic() + 10
        held = None
        while time.monotonic() < deadline:
            held = sample(metrics(daemon).text, "clustermgmt_long_polls_held")
            if held == "1":
                break
            time.sleep(0.05)
        assert held == "1"
    finally:
        daemon.set_status({"a": {"status": "offline"}})  # answers the poll
        poll.join(timeout=20)
    assert answers and answers[0].status_code == 200
    assert sample(metrics(daemon).text, "clustermgmt_long_polls_held") == "0"


def test_metrics_count_password_checks(daemon):
    before = metrics(daemon).text
    hashed = int(sample(before, 'clustermgmt_password_checks_total{result="hashed"}'))
    r = daemon.get("/v1/clusters", auth=("admin", "a-wrong-password"), source=fresh_source_ip())
    assert r.status_code == 401
    after = metrics(daemon).text
    assert int(sample(after, 'clustermgmt_password_checks_total{result="hashed"}')) == hashed + 1
    assert sample(after, "clustermgmt_password_checks_queued") == "0"
    assert sample(after, 'clustermgmt_password_checks_total{result="refused"}') == "0"


def test_metrics_store_down_after_its_file_is_removed(daemon):
    daemon.set_nodes(["a"])
    before = metrics(daemon).text
    assert sample(before, "clustermgmt_store_up") == "1"
    failed = int(sample(before, "clustermgmt_writes_failed_total"))
    os.unlink(daemon.db)
    r = daemon.post("/v1/clusters/default/status", auth=daemon.admin,
                    json={"changes": {"a": {"status": "offline"}}})
    assert r.status_code == 503, r.text
    after = metrics(daemon).text
    assert sample(after, "clustermgmt_store_up") == "0"
    assert int(sample(after, "clustermgmt_writes_failed_total")) == failed + 1
    assert daemon.probe("a").status_code == 200  # probes answer from memory
