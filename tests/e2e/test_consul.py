"""
serve --consul-listen (issue 17 points 5 and 6; docs/API.md "Consul API",
docs/INTEGRATIONS.md "Consul API"): a read-only subset of Consul's HTTP
API on a listener of its own, read with the real python3-consul client
library (Debian's): the catalog, the health of a service's instances
(online passing, drain warning, offline critical, the reason as the
check's Output), ?passing, blocking queries that answer within a second
of a change and at the end of their wait otherwise, Consul's headers,
Consul's 400/404/405, the bounds on held queries, and the token a Consul
client sends on a listener that is not on loopback.

Debian's Prometheus 2.42 is built without Consul discovery, so its
consul_sd_configs cannot be tested here.
"""

import json
import os
import shutil
import socket
import subprocess
import threading
import time

import consul
import pytest
import requests

from conftest import REPO, free_port

HOLDS_PER_CLIENT = 128  # consul.c's CONSUL_HOLDS_PER_CLIENT


@pytest.fixture
def cdaemon(make_daemon):
    """A daemon with --consul-listen on loopback (public there), nodes
    web1..web3 with addresses, and a second cluster api whose one node has
    none."""
    cport = free_port()
    d = make_daemon(["--consul-listen", "127.0.0.1:%d" % cport])
    d.consul_port = cport
    d.consul_url = "http://127.0.0.1:%d" % cport
    d.set_nodes([])
    for i, name in enumerate(["web1", "web2", "web3"]):
        r = d.put("/v1/clusters/default/nodes/" + name, auth=d.as_admin,
                  json={"address": "10.0.0.%d:8080" % (i + 1)})
        assert r.status_code in (200, 201), r.text
    r = d.post("/v1/clusters", auth=d.as_admin, json={"name": "api", "path": "/api"})
    assert r.status_code in (200, 201), r.text
    d.set_nodes(["noaddr"], cluster="api")
    return d


def client(d, **kw):
    return consul.Consul(host="127.0.0.1", port=d.consul_port, **kw)


def statuses(entries):
    return {e["Node"]["Node"]: (e["Checks"][0]["Status"], e["Checks"][0]["Output"])
            for e in entries}


def test_catalog_lists_clusters_with_instances_as_services(cdaemon):
    index, services = client(cdaemon).catalog.services()
    assert services == {"default": []}  # api's one node has no address
    assert int(index) >= 1


def test_health_maps_status_to_check_status_with_the_reason(cdaemon):
    cdaemon.set_status({"web2": {"status": "drain", "reason": "deploy 42"},
                        "web3": {"status": "offline", "reason": "disk"}})
    _, entries = client(cdaemon).health.service("default")
    assert statuses(entries) == {"web1": ("passing", ""), "web2": ("warning", "deploy 42"),
                                 "web3": ("critical", "disk")}
    e = [e for e in entries if e["Node"]["Node"] == "web2"][0]
    assert e["Node"]["Address"] == "10.0.0.2" and e["Node"]["Datacenter"] == "dc1"
    assert e["Service"]["Service"] == "default" and e["Service"]["ID"] == "default:web2"
    assert e["Service"]["Address"] == "10.0.0.2" and e["Service"]["Port"] == 8080
    assert e["Service"]["Tags"] == []
    assert e["Service"]["Meta"] == {"clustermgmt_status": "drain",
                                    "clustermgmt_reason": "deploy 42"}
    check = e["Checks"][0]
    assert check["ServiceID"] == "default:web2" and check["ServiceName"] == "default"
    assert check["Node"] == "web2" and check["CheckID"] == "service:default:web2"


def test_health_passing_keeps_only_online_instances(cdaemon):
    cdaemon.set_status({"web2": {"status": "drain"}, "web3": {"status": "offline"}})
    _, entries = client(cdaemon).health.service("default", passing=True)
    assert sorted(statuses(entries)) == ["web1"]
    for form in ("passing", "passing=true", "passing=1"):
        r = requests.get(cdaemon.consul_url + "/v1/health/service/default?" + form, timeout=10)
        assert [e["Node"]["Node"] for e in r.json()] == ["web1"], form
    r = requests.get(cdaemon.consul_url + "/v1/health/service/default?passing=false", timeout=10)
    assert len(r.json()) == 3


def test_catalog_service_lists_every_instance_whatever_its_health(cdaemon):
    cdaemon.set_status({"web3": {"status": "offline", "reason": "disk"}})
    _, nodes = client(cdaemon).catalog.service("default")
    assert sorted(n["Node"] for n in nodes) == ["web1", "web2", "web3"]
    web3 = [n for n in nodes if n["Node"] == "web3"][0]
    assert web3["ServiceName"] == "default" and web3["ServiceID"] == "default:web3"
    assert web3["Address"] == web3["ServiceAddress"] == "10.0.0.3"
    assert web3["ServicePort"] == 8080 and web3["Datacenter"] == "dc1"
    assert web3["ServiceMeta"]["clustermgmt_status"] == "offline"


def test_unknown_service_and_tag_filter_are_empty_lists(cdaemon):
    index, entries = client(cdaemon).health.service("nosuch")
    assert entries == [] and int(index) >= 1
    _, entries = client(cdaemon).health.service("default", tag="primary")
    assert entries == []
    _, nodes = client(cdaemon).catalog.service("api")  # no node with an address
    assert nodes == []


def test_consul_headers(cdaemon):
    r = requests.get(cdaemon.consul_url + "/v1/health/service/default", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Consul-KnownLeader"] == "true"
    assert r.headers["X-Consul-LastContact"] == "0"
    before = int(r.headers["X-Consul-Index"])
    cdaemon.set_status({"web1": {"status": "offline"}})
    r = requests.get(cdaemon.consul_url + "/v1/catalog/services", timeout=10)
    assert int(r.headers["X-Consul-Index"]) > before


def blocking_in_thread(fn, **kw):
    out = {}

    def run():
        started = time.monotonic()
        try:
            out["result"] = fn(**kw)
        except Exception as e:  # reported by the caller
            out["error"] = e
        out["end"] = time.monotonic()
        out["took"] = out["end"] - started

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_blocking_health_query_returns_within_a_second_of_a_change(cdaemon):
    c = client(cdaemon)
    index, _ = c.health.service("default")
    t, out = blocking_in_thread(c.health.service, service="default", index=index, wait="30s")
    time.sleep(1.0)
    assert t.is_alive(), out  # held: nothing changed yet
    changed = time.monotonic()
    cdaemon.set_status({"web2": {"status": "drain", "reason": "rolling"}})
    acknowledged = time.monotonic()
    t.join(timeout=5)
    assert not t.is_alive() and "error" not in out, out
    new_index, entries = out["result"]
    assert int(new_index) > int(index)
    assert statuses(entries)["web2"] == ("warning", "rolling")
    print("blocking query answered %.3f s after the change was sent (the write took %.3f s)"
          % (out["end"] - changed, acknowledged - changed))
    assert out["end"] - changed < 1.0


def test_blocking_catalog_query_wakes_on_a_new_service(cdaemon):
    c = client(cdaemon)
    index, services = c.catalog.services()
    t, out = blocking_in_thread(c.catalog.services, index=index, wait="30s")
    time.sleep(0.5)
    assert t.is_alive()
    r = cdaemon.put("/v1/clusters/api/nodes/api1", auth=cdaemon.as_admin,
                    json={"address": "10.0.1.1:9000"})
    assert r.status_code in (200, 201), r.text
    t.join(timeout=5)
    assert not t.is_alive() and "error" not in out, out
    assert out["result"][1] == {"default": [], "api": []}


def test_blocking_query_ends_at_its_wait_with_the_same_index(cdaemon):
    c = client(cdaemon)
    index, _ = c.health.service("default")
    started = time.monotonic()
    new_index, _ = c.health.service("default", index=index, wait="2s")
    took = time.monotonic() - started
    assert new_index == index
    # wait, plus up to wait/16 of jitter, plus the worker's 250 ms tick
    assert 1.9 <= took < 2.0 + 2.0 / 16 + 0.25 + 1.0, took


def test_change_to_another_cluster_does_not_answer_a_held_service_query(cdaemon):
    c = client(cdaemon)
    index, _ = c.health.service("default")
    t, out = blocking_in_thread(c.health.service, service="default", index=index, wait="3s")
    time.sleep(0.3)
    cdaemon.set_status({"noaddr": {"status": "offline"}}, cluster="api")
    time.sleep(0.7)
    assert t.is_alive(), "answered on another cluster's change"
    t.join(timeout=5)
    assert not t.is_alive() and "error" not in out, out
    assert int(out["result"][0]) > int(index)  # the store moved on meanwhile
    assert out["took"] >= 2.9


def test_bad_parameters_get_consuls_400(cdaemon):
    base = cdaemon.consul_url + "/v1/health/service/default?"
    for query, words in [("index=x", "Invalid index"), ("index=-1", "Invalid index"),
                         ("index=1&wait=soon", "Invalid wait time"),
                         ("index=1&wait=11m", "at most 10m"),
                         ("index=1&wait=1m30s", "Invalid wait time"),
                         ("passing=maybe", "Invalid value for ?passing"),
                         ("filter=Service.Port%3D%3D80", "filter"),
                         ("stale&consistent", "conflicting")]:
        r = requests.get(base + query, timeout=10)
        assert r.status_code == 400 and words in r.text, (query, r.status_code, r.text)
    r = requests.get(base + "dc=elsewhere", timeout=10)
    assert r.status_code == 500 and r.text == "No path to datacenter"
    r = requests.get(base + "dc=dc1", timeout=10)
    assert r.status_code == 200
    r = requests.get(cdaemon.consul_url + "/v1/health/service/a%20b", timeout=10)
    assert r.status_code == 400 and "invalid name" in r.text


def test_only_consuls_paths_on_its_listener_and_only_there(cdaemon):
    for path in ["/v1/clusters", "/v1/health", "/health?node=web1", "/v1/kv/x",
                 "/v1/agent/self", "/metrics", "/"]:
        r = requests.get(cdaemon.consul_url + path, timeout=10)
        assert r.status_code == 404 and r.text == "", path
    r = requests.put(cdaemon.consul_url + "/v1/catalog/services", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    assert r.text == "method PUT not allowed"
    r = cdaemon.get("/v1/catalog/services", auth=cdaemon.as_admin)
    assert r.status_code == 404 and "no such API path" in r.json()["error"]


def held_socket(d, index, source="127.0.0.1", path=b"/v1/health/service/default"):
    s = socket.create_connection(("127.0.0.1", d.consul_port), timeout=10,
                                 source_address=(source, 0))
    s.sendall(b"GET %s?index=%d&wait=60s HTTP/1.1\r\nHost: x\r\n\r\n" % (path, index))
    return s


def test_held_queries_are_bounded_per_client_and_freed_when_it_leaves(cdaemon):
    index = int(requests.get(cdaemon.consul_url + "/v1/catalog/services",
                             timeout=10).headers["X-Consul-Index"])
    held = [held_socket(cdaemon, index, "127.0.0.2") for _ in range(HOLDS_PER_CLIENT)]
    try:
        # one more from the same address is refused once the daemon has
        # read all of them (until then, it may be held: try again)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            extra = held_socket(cdaemon, index, "127.0.0.2")
            extra.settimeout(3)
            try:
                answer = extra.recv(4096)
            except socket.timeout:
                answer = b""  # held: not all the others were yet
            extra.close()
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 429"), answer
        assert b"too many concurrent blocking queries" in answer
    finally:
        for s in held:
            s.close()
    # the client went away: its slots are given back
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s = held_socket(cdaemon, index, "127.0.0.2")
        s.settimeout(0.5)
        try:
            answer = s.recv(4096)
        except socket.timeout:
            answer = b""  # held again
        s.close()
        if not answer:
            break
        time.sleep(0.2)
    assert answer == b"", answer
    # and a held query still answers a change at once
    c = client(cdaemon)
    t, out = blocking_in_thread(c.health.service, service="default", index=index, wait="30s")
    time.sleep(0.3)
    cdaemon.set_status({"web1": {"status": "drain"}})
    t.join(timeout=5)
    assert not t.is_alive() and "error" not in out, out


def test_consul_listen_bad_address_is_a_usage_error(cm_bin, tmp_path):
    out = subprocess.run([cm_bin, "serve", "--consul-listen", "nowhere", "--db",
                          str(tmp_path / "x.db")], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    assert "--consul-listen" in out.stderr


NETNS_SCRIPT = r"""
set -u
ip link set lo up && ip addr add 10.99.0.1/32 dev lo || exit 99
"$BIN" serve --listen 10.99.0.1:8080 --consul-listen 10.99.0.1:8500 --db "$DIR/cm.db" \
    --admin-password-file "$DIR/pw" 2>"$DIR/daemon.log" &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
i=0
until curl -s -o /dev/null http://10.99.0.1:8080/v1/health; do
    i=$((i + 1)); [ $i -lt 100 ] || exit 98; sleep 0.1
done
code() { label=$1; shift; curl -s -o /dev/null -w "$label %{http_code}\n" "$@"; }
token() {
    curl -s -u "admin:$PW" -H 'Content-Type: application/json' \
        -d "{\"role\": \"$1\", \"description\": \"consul\"}" http://10.99.0.1:8080/v1/tokens |
        sed 's/.*"token": *"\([^"]*\)".*/\1/'
}
viewer=$(token viewer)
curl -s -o /dev/null -u "admin:$PW" -X PUT -H 'Content-Type: application/json' \
    -d '{"address": "10.99.0.9:80"}' http://10.99.0.1:8080/v1/clusters/default/nodes/web1
S=http://10.99.0.1:8500/v1/catalog/services
code anonymous $S
code header -H "X-Consul-Token: $viewer" $S
code query "$S?token=$viewer"
code bearer -H "Authorization: Bearer $viewer" $S
code wrong -H "X-Consul-Token: cmt_0000000000000000_nope" $S
code empty "$S?token="
code basic -u "admin:$PW" $S
"$PY" -c "
import consul, sys
c = consul.Consul(host='10.99.0.1', port=8500, token=sys.argv[1])
index, services = c.catalog.services()
print('python-consul', sorted(services))
" "$viewer"
kill $pid; wait $pid; echo "exit $?"
"""


def test_token_needed_off_loopback_as_consul_clients_send_it(cm_bin, tmp_path):
    """In a network namespace of its own, the Consul listener on
    10.99.0.1 (not loopback) needs a viewer's token: in X-Consul-Token,
    ?token= (python-consul's way), Authorization: Bearer, or Basic."""
    password = "netns-password-1"
    (tmp_path / "pw").write_text(password)
    out = subprocess.run(["unshare", "--net", "sh", "-c", NETNS_SCRIPT], capture_output=True,
                         text=True, timeout=90,
                         env=dict(os.environ, BIN=cm_bin, DIR=str(tmp_path), PW=password,
                                  PY="/usr/bin/python3"))
    log = (tmp_path / "daemon.log").read_text() if (tmp_path / "daemon.log").exists() else ""
    assert out.returncode == 0, out.stdout + out.stderr + log
    codes = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert codes == {"anonymous": "401", "header": "200", "query": "200", "bearer": "200",
                     "wrong": "401", "empty": "401", "basic": "200",
                     "python-consul": "['default']", "exit": "0"}, out.stdout + log
    assert "consul API listening on plain HTTP" in log


def test_consul_and_metrics_listeners_side_by_side(make_daemon):
    """Each dedicated listener serves its own paths only."""
    mport, cport = free_port(), free_port()
    d = make_daemon(["--metrics-listen", "127.0.0.1:%d" % mport,
                     "--consul-listen", "127.0.0.1:%d" % cport])
    d.consul_port = cport
    assert requests.get("http://127.0.0.1:%d/metrics" % mport, timeout=10).status_code == 200
    r = requests.get("http://127.0.0.1:%d/v1/catalog/services" % mport, timeout=10)
    assert r.status_code == 404
    assert requests.get("http://127.0.0.1:%d/metrics" % cport, timeout=10).status_code == 404
    index, _ = client(d).catalog.services()
    assert int(index) >= 1


def test_held_queries_are_bounded_in_all(cdaemon):
    """2,048 held queries in all (consul.c's CONSUL_HOLDS_MAX), from 16
    addresses at the per-client bound; the next one, from a 17th address,
    gets 503 at once."""
    index = int(requests.get(cdaemon.consul_url + "/v1/catalog/services",
                             timeout=10).headers["X-Consul-Index"])
    held = []
    try:
        for i in range(16):
            # the catalog's answer is the cheapest: 2,048 of them are
            # answered at once when their clients leave (slow under ASan)
            held += [held_socket(cdaemon, index, "127.0.1.%d" % (i + 1),
                                 b"/v1/catalog/services")
                     for _ in range(HOLDS_PER_CLIENT)]
        deadline = time.monotonic() + 30
        answer = b""
        while time.monotonic() < deadline:
            extra = held_socket(cdaemon, index, "127.0.2.1")
            extra.settimeout(3)
            try:
                answer = extra.recv(4096)
            except socket.timeout:
                answer = b""  # held: not all the others were read yet
            extra.close()
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"Too many blocking queries" in answer
        # the probe's listener is another worker: it answers meanwhile
        assert cdaemon.probe("web1").status_code == 200
    finally:
        for s in held:
            s.close()
    # their clients went away: the slots are given back (and the daemon
    # has let go of those connections before it is stopped)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        s = held_socket(cdaemon, index, "127.0.2.1")
        s.settimeout(0.5)
        try:
            answer = s.recv(4096)
        except socket.timeout:
            answer = b""  # held
        s.close()
        if not answer:
            break
        time.sleep(0.2)
    assert answer == b"", answer


def pg_consul_daemon(tmp_path, url, name, admin_of=None):
    from conftest import Daemon
    port = free_port()
    d = Daemon(tmp_path / name, extra_args=["--consul-listen", "127.0.0.1:%d" % port],
               start=False, db=url, template=False)
    if admin_of is not None:
        d.password = admin_of.password
        d.pw_file.write_text(d.password)
    d.consul_port = port
    d.consul_url = "http://127.0.0.1:%d" % port
    d.start()
    return d


def test_two_daemons_on_postgresql_give_one_index_and_wake_each_others_queries(
        tmp_path, pg_url):
    """The index is the shared store's version: a client may move between
    daemons, and a query held on one daemon answers a write made through
    the other within a second."""
    a = pg_consul_daemon(tmp_path, pg_url, "a")
    b = None
    try:
        b = pg_consul_daemon(tmp_path, pg_url, "b", admin_of=a)
        r = a.put("/v1/clusters/default/nodes/web1", auth=a.admin,
                  json={"address": "10.0.0.1:8080"})
        assert r.status_code in (200, 201), r.text
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ia, ea = client(a).health.service("default")
            ib, eb = client(b).health.service("default")
            if ia == ib and eb:
                break
            time.sleep(0.1)
        assert ia == ib and statuses(ea) == statuses(eb) == {"web1": ("passing", "")}
        t, out = blocking_in_thread(client(b).health.service, service="default", index=ib,
                                    wait="30s")
        time.sleep(0.5)
        assert t.is_alive()
        changed = time.monotonic()
        a.set_status({"web1": {"status": "offline", "reason": "via a"}}, auth=a.admin)
        t.join(timeout=5)
        assert not t.is_alive() and "error" not in out, out
        print("held on b, written on a: answered %.3f s later" % (out["end"] - changed))
        assert out["end"] - changed < 1.0
        assert statuses(out["result"][1]) == {"web1": ("critical", "via a")}
        assert int(out["result"][0]) > int(ib)
    finally:
        problems = [p for p in (d.close() for d in (b, a) if d is not None) if p]
        assert not problems, problems


def test_debians_prometheus_has_no_consul_discovery(tmp_path):
    """Why Prometheus' consul_sd_configs is not tested against this
    listener: Debian's build leaves Consul discovery out. When a build
    has it, this fails, and the test belongs here."""
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (prometheus)")
    config = tmp_path / "consul.yml"
    config.write_text("scrape_configs:\n  - job_name: c\n    consul_sd_configs:\n"
                      "      - {server: '127.0.0.1:8500', datacenter: dc1}\n")
    out = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0
    assert "field consul_sd_configs not found" in out.stdout + out.stderr


def test_the_documents_curl_line_as_written(cdaemon):
    """docs/INTEGRATIONS.md's Consul section: its curl line, run by sh with
    the variables it names, lists the passing instances of cluster web."""
    doc = (REPO / "docs" / "INTEGRATIONS.md").read_text()
    section = doc[doc.index("## Consul API"):]
    section = section[:section.index("\n## ")] if "\n## " in section else section
    lines = [line for line in section.splitlines() if line.startswith("curl ")]
    assert len(lines) == 1, lines
    r = cdaemon.post("/v1/clusters", auth=cdaemon.as_admin, json={"name": "web", "path": "/web"})
    assert r.status_code in (200, 201), r.text
    for name, address in [("w1", "10.2.0.1:80"), ("w2", "10.2.0.2:80")]:
        r = cdaemon.put("/v1/clusters/web/nodes/" + name, auth=cdaemon.as_admin,
                        json={"address": address})
        assert r.status_code in (200, 201), r.text
    cdaemon.set_status({"w2": {"status": "drain"}}, cluster="web")
    _, token = cdaemon.make_token("viewer", "consul-readers")
    out = subprocess.run(["sh", "-c", lines[0]], capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, TOKEN=token,
                                  CONSUL_ADDR="127.0.0.1:%d" % cdaemon.consul_port))
    assert out.returncode == 0, out.stderr
    assert [e["Node"]["Node"] for e in json.loads(out.stdout)] == ["w1"]


def test_postgresql_away_the_last_state_is_served_with_last_contact(tmp_path, pg_own_server):
    """Fail-static, as the probe: with the shared store stopped, the
    Consul listener still answers the last state it knew, and
    X-Consul-LastContact says for how long the store has not answered;
    it is 0 again once the store is back."""
    pg = pg_own_server
    d = pg_consul_daemon(tmp_path, pg.url(pg.create_database()), "a")
    try:
        r = d.put("/v1/clusters/default/nodes/web1", auth=d.admin,
                  json={"address": "10.0.0.1:8080"})
        assert r.status_code in (200, 201), r.text
        d.set_status({"web1": {"status": "drain", "reason": "kept"}}, auth=d.admin)
        pg.stop("immediate")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if d.get("/v1/health").json()["store"]["state"] == "unreachable":
                break
            time.sleep(0.2)
        time.sleep(1.2)
        r = requests.get(d.consul_url + "/v1/health/service/default", timeout=10)
        assert r.status_code == 200
        assert statuses(r.json()) == {"web1": ("warning", "kept")}
        assert int(r.headers["X-Consul-LastContact"]) >= 1000, r.headers
        pg.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if d.get("/v1/health").json()["store"]["state"] == "ok":
                break
            time.sleep(0.2)
        r = requests.get(d.consul_url + "/v1/health/service/default", timeout=10)
        assert r.headers["X-Consul-LastContact"] == "0"
    finally:
        problem = d.close()
        assert problem is None, problem
