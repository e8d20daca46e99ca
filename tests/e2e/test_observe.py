"""
Observed probes (docs/API.md, "Observed probes"): per node, the
daemon remembers each probing client (protocol, address, User-Agent),
when it last asked, what it was answered and how many times in a row, and
shows it in GET /v1/clusters/{c}/nodes/{n}. Memory stays bounded.
"""

import pytest

from conftest import RFC3339_UTC, read_to_end, session_from


def node_doc(d, name, window=None, cluster="default"):
    path = "/v1/clusters/%s/nodes/%s" % (cluster, name)
    if window is not None:
        path += "?window=%s" % window
    r = d.get(path, auth=d.as_admin)
    assert r.status_code == 200, r.text
    return r.json()["node"]


def probe_from(d, ip, node, user_agent=None):
    s = session_from(ip)
    try:
        headers = {"User-Agent": user_agent} if user_agent else {}
        return s.get(d.url + "/health?node=" + node, headers=headers, timeout=5)
    finally:
        s.close()


@pytest.fixture
def nodes(daemon):
    daemon.set_nodes(["zope1", "zope2"])
    return daemon


def test_two_clients_from_two_addresses_are_shown_apart(nodes):
    for _ in range(3):
        probe_from(nodes, "127.0.0.2", "zope1", "lb-a")
    probe_from(nodes, "127.0.0.3", "zope1", "lb-b")
    probes = node_doc(nodes, "zope1")["probes"]
    by_addr = {p["address"]: p for p in probes}
    assert set(by_addr) == {"127.0.0.2", "127.0.0.3"}, probes
    a = by_addr["127.0.0.2"]
    assert a["user_agent"] == "lb-a"
    assert a["protocol"] == "http"
    assert a["last_answer"] == "200 OK" and a["serving"] is True
    assert a["consecutive"] == 3 and a["since_change"] == 3
    assert RFC3339_UTC.match(a["last_at"]) and RFC3339_UTC.match(a["first_at"])
    assert by_addr["127.0.0.3"]["consecutive"] == 1


def test_same_address_different_user_agents_are_two_clients(nodes):
    probe_from(nodes, "127.0.0.4", "zope1", "varnish")
    probe_from(nodes, "127.0.0.4", "zope1", "haproxy")
    assert {p["user_agent"] for p in node_doc(nodes, "zope1")["probes"]} == {"varnish", "haproxy"}


def test_probes_of_other_nodes_are_not_mixed_in(nodes):
    probe_from(nodes, "127.0.0.5", "zope2", "lb")
    assert node_doc(nodes, "zope1")["probes"] == []
    assert len(node_doc(nodes, "zope2")["probes"]) == 1


def test_status_change_restarts_since_change_but_answer_is_remembered(nodes):
    for _ in range(3):
        probe_from(nodes, "127.0.0.6", "zope1", "lb")
    nodes.set_status({"zope1": {"status": "offline"}})
    p = node_doc(nodes, "zope1")["probes"][0]
    assert p["last_answer"] == "200 OK" and p["since_change"] == 0, p
    for _ in range(2):
        assert probe_from(nodes, "127.0.0.6", "zope1", "lb").status_code == 503
    p = node_doc(nodes, "zope1")["probes"][0]
    assert p["last_answer"] == "503 node is offline"
    assert p["serving"] is False and p["consecutive"] == 2 and p["since_change"] == 2


def test_unknown_node_probes_are_not_recorded(nodes):
    probe_from(nodes, "127.0.0.7", "ghost", "lb")
    assert node_doc(nodes, "zope1")["probes"] == []


def test_many_user_agents_are_capped_per_node(nodes):
    s = session_from("127.0.0.8")
    try:
        for i in range(60):
            r = s.get(nodes.url + "/health?node=zope1", headers={"User-Agent": "ua-%d" % i}, timeout=5)
            assert r.status_code == 200
    finally:
        s.close()
    node = node_doc(nodes, "zope1")
    assert len(node["probes"]) == 16, len(node["probes"])
    assert node["probes_untracked"] == 60 - 16


def test_long_user_agent_is_cut(nodes):
    probe_from(nodes, "127.0.0.9", "zope1", "x" * 2000)
    ua = node_doc(nodes, "zope1")["probes"][0]["user_agent"]
    assert ua == "x" * len(ua) and 0 < len(ua) <= 200


def raw_probe(d, source_ip, node, user_agent_bytes):
    """A probe whose User-Agent is sent as raw bytes (no client library
    re-encodes it)."""
    import socket
    with socket.create_connection(("127.0.0.1", d.port), timeout=5,
                                  source_address=(source_ip, 0)) as s:
        s.sendall(b"GET /health?node=" + node.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                  b"User-Agent: " + user_agent_bytes + b"\r\nConnection: close\r\n\r\n")
        return read_to_end(s)


def test_user_agent_with_invalid_utf8_is_listed_with_replacement(nodes):
    assert raw_probe(nodes, "127.0.0.13", "zope1", b"lb\xff\xfe/1\xe2\x82").startswith(
        b"HTTP/1.1 200")
    # the API lists the prober, bad bytes replaced the way Python and
    # browsers replace them
    probes = node_doc(nodes, "zope1")["probes"]
    assert [p["user_agent"] for p in probes] == [b"lb\xff\xfe/1\xe2\x82".decode("utf-8", "replace")]
    assert probes[0]["user_agent"] == "lb\ufffd\ufffd/1\ufffd"


def test_long_multibyte_user_agent_is_cut_on_a_character(nodes):
    ua = "\u00e9" * 300  # 600 bytes of two-byte characters
    assert raw_probe(nodes, "127.0.0.14", "zope1", ua.encode()).startswith(b"HTTP/1.1 200")
    probes = node_doc(nodes, "zope1")["probes"]
    assert len(probes) == 1, probes
    got = probes[0]["user_agent"]
    assert got == "\u00e9" * len(got) and 0 < len(got) < 300


def test_window_leaves_out_clients_not_seen_recently(nodes):
    probe_from(nodes, "127.0.0.10", "zope1", "lb")
    assert len(node_doc(nodes, "zope1", window=30)["probes"]) == 1
    assert len(node_doc(nodes, "zope1", window=600)["probes"]) == 1


@pytest.mark.parametrize("bad", ["-1", "abc", "601"])
def test_bad_window_is_400(nodes, bad):
    r = nodes.get("/v1/clusters/default/nodes/zope1?window=" + bad, auth=nodes.as_admin)
    assert r.status_code == 400, r.text


def test_probe_without_user_agent_has_null(nodes):
    import socket
    with socket.create_connection(("127.0.0.1", nodes.port), timeout=5) as s:
        s.sendall(b"GET /health?node=zope1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
    assert data.startswith(b"HTTP/1.1 200")
    p = node_doc(nodes, "zope1")["probes"][0]
    assert p["user_agent"] is None


def test_probes_are_runtime_only(nodes):
    probe_from(nodes, "127.0.0.11", "zope1", "lb")
    nodes.stop()
    nodes.start()
    assert node_doc(nodes, "zope1")["probes"] == []


def test_head_probe_is_recorded(nodes):
    s = session_from("127.0.0.12")
    try:
        assert s.head(nodes.url + "/health?node=zope1", timeout=5).status_code == 200
    finally:
        s.close()
    assert len(node_doc(nodes, "zope1")["probes"]) == 1


# --- named load balancers (lb=NAME) and the observations long poll -------------


def probe_named(d, ip, node, lb, user_agent="lb"):
    s = session_from(ip)
    try:
        return s.get(d.url + "/health?node=%s&lb=%s" % (node, lb),
                     headers={"User-Agent": user_agent}, timeout=5)
    finally:
        s.close()


def test_a_named_probe_is_one_client_whatever_address_it_comes_from(nodes):
    probe_named(nodes, "127.0.0.2", "zope1", "hap1")
    probe_named(nodes, "127.0.0.3", "zope1", "hap1")
    probe_named(nodes, "127.0.0.2", "zope1", "varnish1")
    probes = node_doc(nodes, "zope1")["probes"]
    named = {p["lb"]: p for p in probes}
    assert set(named) == {"hap1", "varnish1"}, probes
    assert named["hap1"]["consecutive"] == 2
    assert named["hap1"]["address"] == "127.0.0.3"  # the last one
    assert named["hap1"]["interval_ms"] is not None


def test_an_invalid_lb_name_is_an_unnamed_probe(nodes):
    r = probe_named(nodes, "127.0.0.2", "zope1", "no%20way")
    assert r.status_code == 200
    (p,) = node_doc(nodes, "zope1")["probes"]
    assert p["lb"] is None and p["address"] == "127.0.0.2"


def test_unnamed_clients_cannot_push_out_a_named_one(nodes):
    probe_named(nodes, "127.0.0.2", "zope1", "hap1")
    for i in range(20):
        probe_from(nodes, "127.0.6.%d" % (i + 2), "zope1", "fake")
    probe_named(nodes, "127.0.0.2", "zope1", "hap1")
    doc = node_doc(nodes, "zope1")
    assert [p for p in doc["probes"] if p["lb"] == "hap1"][0]["consecutive"] == 2
    assert doc["probes_untracked"] == 20 - 16 and doc["probes_untracked_lbs"] == 0


def observations(d, query):
    r = d.get("/v1/clusters/default/observations?" + query, auth=d.admin, timeout=30)
    return r


def test_observations_long_poll_answers_when_a_probe_is_answered(nodes):
    import threading
    import time

    first = observations(nodes, "nodes=zope1,zope2").json()
    assert [n["name"] for n in first["nodes"]] == ["zope1", "zope2"]
    timer = threading.Timer(0.5, probe_from, (nodes, "127.0.0.2", "zope2", "lb"))
    timer.start()
    t0 = time.monotonic()
    r = observations(nodes, "nodes=zope1,zope2&after=%d&wait=20" % first["digest"])
    took = time.monotonic() - t0
    timer.join()
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["changed"] is True and doc["digest"] != first["digest"]
    assert doc["nodes"][1]["probes"][0]["address"] == "127.0.0.2"
    assert took < 10, took  # woken by the probe, not by the 20 s deadline
    # nothing happens: it answers unchanged at the deadline
    r = observations(nodes, "nodes=zope1&after=%d&wait=1" % observations(
        nodes, "nodes=zope1").json()["digest"])
    assert r.json()["changed"] is False


@pytest.mark.parametrize("query, status", [
    ("", 400), ("nodes=", 400), ("nodes=zope1,,zope2", 400), ("nodes=nosuch", 404),
    ("nodes=zope1&wait=61&after=0", 400), ("nodes=zope1&after=x", 400),
])
def test_observations_bad_queries(nodes, query, status):
    assert observations(nodes, query).status_code == status
