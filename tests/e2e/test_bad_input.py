"""
Bad input of every kind (docs/API.md status codes): for each,
a JSON error `{"error": ..., "detail": ...}` with the fitting 4xx, nothing
changed (nodes, clusters, users, tokens compared before/after), and the
daemon still alive. Plus hostile clients: oversized bodies and headers, and
a client that sends half a request and stalls.
"""

import json
import socket
import threading
import time

import pytest

from conftest import assert_json_error

BAD_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("a" * 65, id="65-chars"),
    pytest.param("zo pe", id="space"),
    pytest.param("<script>", id="script-tag"),
    pytest.param("n\u00f6d\u00e9", id="non-ascii"),
    pytest.param("zope1\n", id="newline"),
    pytest.param("a/b", id="slash"),
]

CT_JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def bad(shared_daemon):
    d = shared_daemon
    d.set_nodes(["zope1", "zope2"])
    d.set_status({"zope2": {"status": "offline", "reason": "baseline"}})
    d.make_user("opuser", "operator")
    d.make_token("viewer", "baseline token")
    return d


def state(d):
    """Everything a bad request must not change."""
    nodes = d.get("/v1/clusters/default/nodes", auth=d.as_admin).json()
    return {
        "nodes": nodes,
        "nodestatus": d.get("/health/++rest++nodestatus", auth=d.as_admin).content,
        "clusters": d.get("/v1/clusters", auth=d.as_admin).json(),
        "users": d.get("/v1/users", auth=d.as_admin).json(),
        "tokens": d.get("/v1/tokens", auth=d.as_admin).json(),
    }


def check_refused(d, method, path, codes, **kw):
    before = state(d)
    r = d.request(method, path, auth=d.as_admin, **kw)
    body = assert_json_error(r, *codes)
    assert state(d) == before, "a refused request changed something"
    assert d.alive()
    return r, body


def raw(body):
    return {"data": body, "headers": CT_JSON}


STATUS = "/v1/clusters/default/status"
NODES = "/v1/clusters/default/nodes"
SETSTATUS = "/health/++rest++setstatus"

# (id, method, path, request kwargs, accepted codes)
CASES = [
    # malformed JSON
    ("status-truncated-json", "POST", STATUS, raw('{"changes": {'), (400,)),
    ("status-empty-body", "POST", STATUS, raw(""), (400,)),
    ("status-trailing-garbage", "POST", STATUS,
     raw('{"changes": {"zope1": {"status": "offline"}}}x'), (400,)),
    ("status-not-json", "POST", STATUS, raw("changes=zope1"), (400,)),
    ("status-array-body", "POST", STATUS, raw("[]"), (400,)),
    ("status-null-body", "POST", STATUS, raw("null"), (400,)),
    ("status-invalid-utf8", "POST", STATUS,
     {"data": b'{"changes": {"zope1": {"status": "offline", "reason": "\xff\xfe"}}}',
      "headers": CT_JSON}, (400,)),
    ("nodes-put-malformed", "PUT", NODES, raw('{"nodes": ['), (400,)),
    ("users-post-malformed", "POST", "/v1/users", raw('{"name": "x"'), (400,)),
    ("clusters-post-malformed", "POST", "/v1/clusters", raw("{"), (400,)),
    ("tokens-post-malformed", "POST", "/v1/tokens", raw("{role}"), (400,)),
    ("node-put-malformed", "PUT", NODES + "/zope1", raw("{"), (400,)),
    ("setstatus-json-malformed", "POST", "/health/++rest++setstatus", raw('{"zope1": '), (400,)),
    ("setstatus-form-malformed", "POST", "/health/++rest++setstatus",
     {"data": {"change": '{"zope1": {"status": '}}, (400,)),
    ("setstatus-form-array", "POST", "/health/++rest++setstatus", {"data": {"change": "[]"}}, (400,)),
    ("setstatus-form-empty-object", "POST", "/health/++rest++setstatus",
     {"data": {"change": "{}"}}, (400,)),
    ("setstatus-no-body", "POST", "/health/++rest++setstatus", {}, (400,)),
    # wrong types / missing fields
    ("nodes-string", "PUT", NODES, {"json": {"nodes": "zope1"}}, (400,)),
    ("nodes-numbers", "PUT", NODES, {"json": {"nodes": [1, 2]}}, (400,)),
    ("nodes-null-entry", "PUT", NODES, {"json": {"nodes": ["zope1", None]}}, (400,)),
    ("nodes-object", "PUT", NODES, {"json": {"nodes": {"zope1": {}}}}, (400,)),
    ("nodes-missing", "PUT", NODES, {"json": {}}, (400,)),
    ("changes-array", "POST", STATUS, {"json": {"changes": ["zope1"]}}, (400,)),
    ("changes-string", "POST", STATUS, {"json": {"changes": "zope1"}}, (400,)),
    ("changes-missing", "POST", STATUS, {"json": {}}, (400,)),
    ("changes-empty", "POST", STATUS, {"json": {"changes": {}}}, (400,)),
    ("entry-string", "POST", STATUS, {"json": {"changes": {"zope1": "offline"}}}, (400,)),
    ("entry-no-status", "POST", STATUS, {"json": {"changes": {"zope1": {"reason": "x"}}}}, (400,)),
    ("status-number", "POST", STATUS, {"json": {"changes": {"zope1": {"status": 1}}}}, (400,)),
    ("reason-number", "POST", STATUS,
     {"json": {"changes": {"zope1": {"status": "offline", "reason": 5}}}}, (400,)),
    ("reason-257-chars", "POST", STATUS,
     {"json": {"changes": {"zope1": {"status": "offline", "reason": "r" * 257}}}}, (400,)),
    ("ttl-string", "POST", STATUS,
     {"json": {"changes": {"zope1": {"status": "offline", "ttl": "10"}}}}, (400,)),
    ("ttl-fraction", "POST", STATUS,
     {"json": {"changes": {"zope1": {"status": "offline", "ttl": 1.5}}}}, (400,)),
    ("ttl-zero", "POST", STATUS,
     {"json": {"changes": {"zope1": {"status": "offline", "ttl": 0}}}}, (400,)),
    ("ttl-negative", "POST", STATUS,
     {"json": {"changes": {"zope1": {"status": "offline", "ttl": -5}}}}, (400,)),
    ("ttl-over-30-days", "POST", STATUS,
     {"json": {"changes": {"zope1": {"status": "offline", "ttl": 30 * 86400 + 1}}}}, (400,)),
    ("ttl-on-online", "POST", STATUS,
     {"json": {"changes": {"zope2": {"status": "online", "ttl": 60}}}}, (400,)),
    ("if-version-string", "POST", STATUS,
     {"json": {"changes": {"zope1": {"status": "offline"}}, "if_version": "1"}}, (400,)),
    ("min-online-string", "POST", STATUS,
     {"json": {"changes": {"zope1": {"status": "offline"}}, "min_online": "one"}}, (400,)),
    ("node-put-address-number", "PUT", NODES + "/zope1", {"json": {"address": 5}}, (400,)),
    ("node-put-check-list", "PUT", NODES + "/zope1", {"json": {"check": ["http://x/"]}}, (400,)),
    ("node-put-array-body", "PUT", NODES + "/zope1", {"json": []}, (400,)),
    ("user-bad-role", "POST", "/v1/users",
     {"json": {"name": "eve", "password": "password-1", "role": "root"}}, (400,)),
    ("user-role-number", "POST", "/v1/users",
     {"json": {"name": "eve", "password": "password-1", "role": 3}}, (400,)),
    ("user-password-7-chars", "POST", "/v1/users",
     {"json": {"name": "eve", "password": "1234567", "role": "viewer"}}, (400,)),
    ("user-password-1025-chars", "POST", "/v1/users",
     {"json": {"name": "eve", "password": "p" * 1025, "role": "viewer"}}, (400,)),
    ("user-missing-password", "POST", "/v1/users", {"json": {"name": "eve", "role": "viewer"}}, (400,)),
    ("user-bad-name", "POST", "/v1/users",
     {"json": {"name": "eve smith", "password": "password-1", "role": "viewer"}}, (400,)),
    ("token-bad-role", "POST", "/v1/tokens", {"json": {"role": "superuser"}}, (400,)),
    ("token-description-number", "POST", "/v1/tokens",
     {"json": {"role": "viewer", "description": 5}}, (400,)),
    ("cluster-bad-name", "POST", "/v1/clusters", {"json": {"name": "my shop", "path": "/shop"}}, (400,)),
    ("cluster-path-no-slash", "POST", "/v1/clusters", {"json": {"name": "shop", "path": "shop"}}, (400,)),
    ("cluster-path-trailing-slash", "POST", "/v1/clusters",
     {"json": {"name": "shop", "path": "/shop/"}}, (400,)),
    ("cluster-path-under-v1", "POST", "/v1/clusters", {"json": {"name": "shop", "path": "/v1/shop"}}, (400,)),
    ("cluster-path-root", "POST", "/v1/clusters", {"json": {"name": "shop", "path": "/"}}, (400,)),
    ("cluster-missing-path", "POST", "/v1/clusters", {"json": {"name": "shop"}}, (400,)),
    ("events-after-not-number", "GET", "/v1/clusters/default/events?after=abc&wait=0", {}, (400,)),
    ("events-wait-negative", "GET", "/v1/clusters/default/events?after=0&wait=-1", {}, (400,)),
    ("audit-limit-not-number", "GET", "/v1/clusters/default/audit?limit=abc", {}, (400,)),
    ("audit-limit-negative", "GET", "/v1/clusters/default/audit?limit=-5", {}, (400,)),
    # unknown fields
    ("status-unknown-top-field", "POST", STATUS,
     {"json": {"changes": {"zope1": {"status": "offline"}}, "force": True}}, (400,)),
    ("status-unknown-entry-field", "POST", STATUS,
     {"json": {"changes": {"zope1": {"status": "offline", "colour": "red"}}}}, (400,)),
    ("nodes-unknown-field", "PUT", NODES, {"json": {"nodes": ["zope1"], "prune": False}}, (400,)),
    ("node-put-unknown-field", "PUT", NODES + "/zope1",
     {"json": {"address": "10.0.0.1:80", "weight": 3}}, (400,)),
    ("user-unknown-field", "POST", "/v1/users",
     {"json": {"name": "eve", "password": "password-1", "role": "viewer", "admin": True}}, (400,)),
    ("token-unknown-field", "POST", "/v1/tokens", {"json": {"role": "viewer", "scope": "all"}}, (400,)),
    ("cluster-unknown-field", "POST", "/v1/clusters",
     {"json": {"name": "shop", "path": "/shop", "nodes": []}}, (400,)),
    ("setstatus-unknown-entry-field", "POST", "/health/++rest++setstatus",
     {"data": {"change": json.dumps({"zope1": {"status": "offline", "colour": "red"}})}}, (400,)),
    # unknown statuses
    ("status-sleeping", "POST", STATUS, {"json": {"changes": {"zope1": {"status": "sleeping"}}}}, (400,)),
    ("status-uppercase", "POST", STATUS, {"json": {"changes": {"zope1": {"status": "OFFLINE"}}}}, (400,)),
    ("status-empty", "POST", STATUS, {"json": {"changes": {"zope1": {"status": ""}}}}, (400,)),
    ("setstatus-sleeping", "POST", "/health/++rest++setstatus",
     {"data": {"change": json.dumps({"zope1": {"status": "sleeping"}})}}, (400,)),
    # unknown cluster / node / user / token / path
    ("unknown-cluster-nodes", "GET", "/v1/clusters/nope/nodes", {}, (404,)),
    ("unknown-cluster-put-nodes", "PUT", "/v1/clusters/nope/nodes", {"json": {"nodes": ["a"]}}, (404,)),
    ("unknown-cluster-status", "POST", "/v1/clusters/nope/status",
     {"json": {"changes": {"zope1": {"status": "offline"}}}}, (404,)),
    ("unknown-cluster-events", "GET", "/v1/clusters/nope/events?after=0&wait=0", {}, (404,)),
    ("unknown-cluster-audit", "GET", "/v1/clusters/nope/audit", {}, (404,)),
    ("unknown-cluster-delete", "DELETE", "/v1/clusters/nope", {}, (404,)),
    ("unknown-cluster-node-put", "PUT", "/v1/clusters/nope/nodes/zope1", {"json": {}}, (404,)),
    ("unknown-node-get", "GET", NODES + "/ghost", {}, (404,)),
    ("unknown-node-delete", "DELETE", NODES + "/ghost", {}, (404,)),
    ("unknown-node-status", "POST", STATUS, {"json": {"changes": {"ghost": {"status": "offline"}}}}, (404,)),
    ("unknown-user-delete", "DELETE", "/v1/users/ghost", {}, (404,)),
    ("unknown-token-delete", "DELETE", "/v1/tokens/ghost", {}, (404,)),
    ("unknown-v1-path", "GET", "/v1/nothing", {}, (404,)),
    ("unknown-v1-subpath", "GET", "/v1/clusters/default/nothing", {}, (404,)),
]


@pytest.mark.parametrize("method,path,kw,codes", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_request_is_refused_and_changes_nothing(bad, method, path, kw, codes):
    check_refused(bad, method, path, codes, **kw)


def test_unknown_node_error_names_it(bad):
    _, body = check_refused(bad, "POST", STATUS, (404,),
                            json={"changes": {"zope1": {"status": "offline"},
                                              "ghost": {"status": "offline"}}})
    assert body["detail"]["entry"] == "ghost"


def test_invalid_entry_error_names_it(bad):
    _, body = check_refused(bad, "POST", STATUS, (400,),
                            json={"changes": {"zope1": {"status": "offline"},
                                              "zope2": {"status": "sleeping"}}})
    assert body["detail"]["entry"] == "zope2"


# --- invalid node names everywhere a name goes in ---------------------------


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_name_in_node_list_rejected(bad, name):
    _, body = check_refused(bad, "PUT", NODES, (400,), json={"nodes": ["zope1", "zope2", name]})
    if name == "":
        # an empty entry cannot be named better than by the sentence
        assert body["detail"] is None or body["detail"].get("entry") == "", body
    else:
        assert body["detail"] is not None and body["detail"].get("entry") == name, body


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_name_in_status_change_rejected(bad, name):
    check_refused(bad, "POST", STATUS, (400, 404), json={"changes": {name: {"status": "offline"}}})


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_name_in_setstatus_rejected(bad, name):
    check_refused(bad, "POST", "/health/++rest++setstatus", (400, 404),
                  data={"change": json.dumps({name: {"status": "offline"}})})


@pytest.mark.parametrize("name", [p for p in BAD_NAMES if p.id not in ("empty", "slash")])
def test_invalid_name_in_node_path_rejected(bad, name):
    from urllib.parse import quote
    check_refused(bad, "PUT", NODES + "/" + quote(name, safe=""), (400,), json={})


@pytest.mark.parametrize("name", [p for p in BAD_NAMES if p.id != "empty"])
def test_invalid_cluster_name_rejected(bad, name):
    check_refused(bad, "POST", "/v1/clusters", (400,), json={"name": name, "path": "/x1"})


def test_name_of_64_allowed_characters_is_accepted(daemon):
    name = ("Az09._-" * 10)[:64]
    body = daemon.set_nodes(["zope1", name])
    assert sorted(n["name"] for n in body["nodes"]) == sorted(["zope1", name])
    assert daemon.probe(name).text == "OK"


def test_probe_with_invalid_name_is_404_not_error(bad):
    r = bad.get("/health?node=%3Cscript%3E")
    assert r.status_code in (400, 404)
    assert "<script>" not in r.text
    assert bad.alive()


# --- multipart form fields ---------------------------------------------------

OFFLINE_ZOPE1 = b'{"zope1": {"status": "offline"}}'


def test_multipart_field_with_nul_byte_is_400(bad):
    # It used to be cut at the NUL, and the JSON before it applied.
    _, body = check_refused(bad, "POST", SETSTATUS, (400,),
                            files={"change": (None, OFFLINE_ZOPE1 + b"\x00junk")})
    assert "NUL" in body["error"], body


def test_multipart_filename_is_not_the_field_name(bad):
    # name="upload"; filename="change" used to be taken for the field.
    _, body = check_refused(bad, "POST", SETSTATUS, (400,),
                            files={"upload": ("change", OFFLINE_ZOPE1)})
    assert "'change' is missing" in body["error"], body


# --- wrong method -------------------------------------------------------------

WRONG_METHODS = [
    ("DELETE", "/v1/health"),
    ("POST", "/v1/clusters/default/nodes"),
    ("PATCH", "/v1/clusters/default/nodes"),
    ("GET", "/v1/clusters/default/status"),
    ("PUT", "/v1/clusters/default/status"),
    ("PUT", "/v1/users"),
    ("DELETE", "/v1/clusters"),
    ("PUT", "/v1/tokens"),
    ("POST", "/v1/clusters/default/audit"),
    ("POST", "/v1/clusters/default/events"),
    ("POST", "/v1/clusters/default/nodes/zope1"),
    ("GET", "/v1/users/opuser"),
]


@pytest.mark.parametrize("method,path", WRONG_METHODS, ids=["%s %s" % m for m in WRONG_METHODS])
def test_wrong_method_is_405_with_allow(bad, method, path):
    r, _ = check_refused(bad, method, path, (405,))
    assert r.headers.get("Allow"), "405 without Allow header"
    assert method not in [m.strip() for m in r.headers["Allow"].split(",")]


# --- oversized bodies ---------------------------------------------------------


def big_status_body(size):
    return json.dumps({"changes": {"zope1": {"status": "offline", "reason": "x" * size}}})


def test_body_over_64k_is_413(bad):
    check_refused(bad, "POST", STATUS, (413,), data=big_status_body(70 * 1024), headers=CT_JSON)


def test_node_list_over_1mib_is_413(bad):
    # the node list's own limit (docs/API.md): 1 MiB, not 64 KiB
    names = ["n%063d" % i for i in range(16500)]
    check_refused(bad, "PUT", NODES, (413,), json={"nodes": names})


def test_setstatus_form_over_64k_is_413(bad):
    before = state(bad)
    r = bad.post("/health/++rest++setstatus", auth=bad.as_admin,
                 data={"change": big_status_body(70 * 1024)})
    assert r.status_code == 413, r.status_code
    assert state(bad) == before
    assert bad.alive()


def test_chunked_body_over_64k_is_413(bad):
    chunk = b"x" * 8192

    def gen():
        yield b'{"changes": {"zope1": {"status": "offline", "reason": "'
        for _ in range(10):
            yield chunk
        yield b'"}}}'

    check_refused(bad, "POST", STATUS, (413,), data=gen(), headers=CT_JSON)


def test_body_of_64k_or_less_is_not_413(bad):
    # 60 KiB of valid JSON with an over-long reason: refused as bad input, not as too large
    check_refused(bad, "POST", STATUS, (400,), data=big_status_body(60 * 1024), headers=CT_JSON)


# --- hostile clients (raw sockets) ---------------------------------------------


def raw_exchange(port, data, timeout=5.0):
    """Sends data, returns the raw response bytes (until close or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    chunks = []
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
            if b"\r\n\r\n" in b"".join(chunks):
                head = b"".join(chunks).split(b"\r\n\r\n", 1)[0]
                if b"content-length: 0" in head.lower():
                    break
    finally:
        s.close()
    return b"".join(chunks)


def status_of(resp):
    if not resp.startswith(b"HTTP/1."):
        return None
    return int(resp.split(b" ", 2)[1])


def test_oversized_header_is_4xx_and_daemon_survives(daemon):
    # 1 MiB of one header: far beyond any sane limit; the request must be
    # refused (400 or 431), not served (a served probe would be 404 here)
    daemon.set_nodes(["zope1"])
    req = (b"GET /health?node=zope1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (1 << 20) +
           b"\r\nConnection: close\r\n\r\n")
    resp = raw_exchange(daemon.port, req)
    code = status_of(resp)
    assert code is not None and 400 <= code < 500, resp[:200]
    assert code in (400, 413, 431), resp[:200]
    assert daemon.alive()


def test_many_headers_is_4xx_and_daemon_survives(daemon):
    hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(5000))
    req = b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + hdrs + b"Connection: close\r\n\r\n"
    resp = raw_exchange(daemon.port, req)
    code = status_of(resp)
    assert code is not None and 400 <= code < 500, resp[:200]
    assert daemon.alive()


def test_oversized_url_is_4xx_and_daemon_survives(daemon):
    req = (b"GET /health?node=" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Connection: close\r\n\r\n")
    resp = raw_exchange(daemon.port, req)
    code = status_of(resp)
    assert code is not None and 400 <= code < 500, resp[:200]
    assert daemon.alive()


def test_garbage_request_line_is_4xx_and_daemon_survives(daemon):
    resp = raw_exchange(daemon.port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
    code = status_of(resp)
    assert code is None or 400 <= code < 500, resp[:200]
    assert daemon.alive()


STALLS = {
    "headers": b"GET /health?node=zope1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
    "body": (b"POST /v1/clusters/default/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"changes\": "),
}


def assert_others_answered_promptly(d):
    """Bounds with room for a 2 s stall of a loaded machine: a worker held
    up by a stalled client would answer only when the stall times out (10 s
    or more)."""
    for _ in range(3):
        t0 = time.monotonic()
        r = d.probe("zope1", timeout=5)
        assert (r.status_code, r.text) == (200, "OK")
        assert time.monotonic() - t0 < 4.0, "probe took %.2f s" % (time.monotonic() - t0)
    t0 = time.monotonic()
    assert d.get("/v1/clusters/default/nodes", auth=d.as_admin, timeout=5).status_code == 200
    assert time.monotonic() - t0 < 4.0


@pytest.mark.parametrize("kind", sorted(STALLS))
def test_stalled_client_does_not_hold_up_others(daemon, kind):
    daemon.set_nodes(["zope1"])
    socks = []
    try:
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
            s.sendall(STALLS[kind])
            socks.append(s)
        time.sleep(0.3)
        assert_others_answered_promptly(daemon)
        assert daemon.node_states()["zope1"][0] == "online"
    finally:
        for s in socks:
            s.close()


def test_stalled_clients_are_eventually_timed_out(daemon):
    daemon.set_nodes(["zope1"])
    limit = 35.0
    results = {}

    def stall(kind):
        s = socket.create_connection(("127.0.0.1", daemon.port), timeout=limit)
        t0 = time.monotonic()
        try:
            s.sendall(STALLS[kind])
            data = b""
            while True:
                b = s.recv(4096)  # bounded by the socket timeout
                if not b:
                    break
                data += b
            results[kind] = ("closed", time.monotonic() - t0, data[:100])
        except socket.timeout:
            results[kind] = ("still open", time.monotonic() - t0, b"")
        except ConnectionResetError:
            results[kind] = ("closed", time.monotonic() - t0, b"reset")
        finally:
            s.close()

    threads = [threading.Thread(target=stall, args=(k,), daemon=True) for k in STALLS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=limit + 5)
    for kind in STALLS:
        assert kind in results, results
        assert results[kind][0] == "closed", "stalled %s client still connected after %.0f s" % (kind, limit)
        # a partial response is fine as long as it is a 4xx (e.g. 408)
        code = status_of(results[kind][2])
        assert code is None or 400 <= code < 500, results[kind]
    assert daemon.alive()
