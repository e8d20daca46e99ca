"""
The original (Zope) product's scenarios, byte for byte where the seed was
(docs/API.md, "Probe" and "Seed-compatible REST").
"""

import json

import pytest

from conftest import assert_401

NODESTATUS = "/health/++rest++nodestatus"
SETSTATUS = "/health/++rest++setstatus"


@pytest.fixture
def seeded(daemon):
    daemon.set_nodes(["zope1", "zope2"])
    return daemon


def change(node, status, **extra):
    entry = {"status": status}
    entry.update(extra)
    return json.dumps({node: entry})


def test_saving_node_list_with_duplicate_collapses_it(daemon):
    r = daemon.put("/v1/clusters/default/nodes", auth=daemon.admin,
                   json={"nodes": ["zope1", "zope2", "zope1"]})
    assert r.status_code == 200, r.text
    assert [n["name"] for n in r.json()["nodes"]] == ["zope1", "zope2"]
    assert [n["name"] for n in daemon.nodes()["nodes"]] == ["zope1", "zope2"]


def test_nodestatus_exact_bytes_all_online(seeded):
    r = seeded.get(NODESTATUS, auth=seeded.admin)
    assert r.status_code == 200
    assert r.content == b'{"zope1": {"status": "online"}, "zope2": {"status": "online"}}'


def test_nodestatus_exact_bytes_after_offline(seeded):
    seeded.set_status({"zope1": {"status": "offline"}})
    r = seeded.get(NODESTATUS, auth=seeded.admin)
    assert r.status_code == 200
    assert r.content == b'{"zope1": {"status": "offline"}, "zope2": {"status": "online"}}'


def test_nodestatus_content_type_is_json(seeded):
    r = seeded.get(NODESTATUS, auth=seeded.admin)
    assert r.headers["Content-Type"].split(";")[0].strip() == "application/json"


def test_nodestatus_keys_sorted(daemon):
    daemon.set_nodes(["b", "a", "C", "zope10", "zope2"])
    r = daemon.get(NODESTATUS, auth=daemon.admin)
    keys = list(json.loads(r.content).keys())
    assert keys == sorted(keys) == ["C", "a", "b", "zope10", "zope2"]
    assert not r.content.endswith(b"\n")


def test_nodestatus_empty_cluster(daemon):
    r = daemon.get(NODESTATUS, auth=daemon.admin)
    assert r.status_code == 200
    assert r.content == b"{}"


@pytest.mark.parametrize("role", ["admin", "operator"])
def test_setstatus_urlencoded_form_works(seeded, role):
    auth = seeded.admin if role == "admin" else seeded.make_user("op", "operator")
    r = seeded.post(SETSTATUS, auth=auth, data={"change": change("zope1", "offline")})
    assert r.status_code == 200, r.text
    assert r.content == b'{"zope1": {"status": "offline"}, "zope2": {"status": "online"}}'
    assert seeded.node_states()["zope1"][0] == "offline"


@pytest.mark.parametrize("role", ["admin", "operator"])
def test_setstatus_multipart_form_works(seeded, role):
    auth = seeded.admin if role == "admin" else seeded.make_user("op", "operator")
    r = seeded.post(SETSTATUS, auth=auth, files={"change": (None, change("zope2", "offline"))})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.content == b'{"zope1": {"status": "online"}, "zope2": {"status": "offline"}}'
    assert seeded.node_states()["zope2"][0] == "offline"


def test_setstatus_multipart_value_may_contain_the_boundary_text(seeded):
    # A delimiter is CRLF "--" boundary; "--XyZ" inside a value is content
    # (the parser used to end the value there and drop two bytes).
    body = (b'--XyZ\r\nContent-Disposition: form-data; name="change"\r\n\r\n'
            b'{"zope1": {"status": "drain", "reason": "see --XyZ"}}'
            b"\r\n--XyZ--\r\n")
    r = seeded.post(SETSTATUS, auth=seeded.admin, data=body,
                    headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code == 200, r.text
    assert seeded.node_states()["zope1"] == ("drain", "see --XyZ")


def test_setstatus_json_body_works(seeded):
    r = seeded.post(SETSTATUS, auth=seeded.admin,
                    json={"zope1": {"status": "drain", "reason": "deploy"}})
    assert r.status_code == 200, r.text
    assert r.content == b'{"zope1": {"status": "drain"}, "zope2": {"status": "online"}}'
    assert seeded.node_states()["zope1"] == ("drain", "deploy")


def test_setstatus_refused_for_viewer(seeded):
    viewer = seeded.make_user("vi", "viewer")
    r = seeded.post(SETSTATUS, auth=viewer, data={"change": change("zope1", "offline")})
    assert r.status_code == 403, r.text
    assert seeded.node_states()["zope1"][0] == "online"


def test_setstatus_refused_for_viewer_multipart(seeded):
    viewer = seeded.make_user("vi", "viewer")
    r = seeded.post(SETSTATUS, auth=viewer, files={"change": (None, change("zope1", "offline"))})
    assert r.status_code == 403, r.text
    assert seeded.node_states()["zope1"][0] == "online"


def test_setstatus_anonymous_gets_401(seeded):
    r = seeded.post(SETSTATUS, data={"change": change("zope1", "offline")})
    assert_401(r)
    assert seeded.node_states()["zope1"][0] == "online"


def test_setstatus_one_unknown_node_changes_nothing(seeded):
    before = seeded.get(NODESTATUS, auth=seeded.admin).content
    version = seeded.nodes()["version"]
    cs = {"zope1": {"status": "offline"}, "zope9": {"status": "offline"},
          "zope2": {"status": "drain"}}
    r = seeded.post(SETSTATUS, auth=seeded.admin, data={"change": json.dumps(cs)})
    assert 400 <= r.status_code < 500, r.text
    assert "zope9" in r.text
    body = r.json()
    assert body["detail"]["entry"] == "zope9", body
    assert seeded.get(NODESTATUS, auth=seeded.admin).content == before
    assert seeded.nodes()["version"] == version


def test_setstatus_unknown_node_is_404(seeded):
    r = seeded.post(SETSTATUS, auth=seeded.admin, data={"change": change("nope", "offline")})
    assert r.status_code == 404, r.text
    assert r.json()["detail"]["entry"] == "nope"


def test_setstatus_invalid_entry_changes_nothing(seeded):
    cs = {"zope1": {"status": "offline"}, "zope2": {"status": "sleeping"}}
    r = seeded.post(SETSTATUS, auth=seeded.admin, data={"change": json.dumps(cs)})
    assert r.status_code == 400, r.text
    assert r.json()["detail"]["entry"] == "zope2"
    assert seeded.node_states()["zope1"][0] == "online"


def test_setstatus_without_change_field_is_400(seeded):
    r = seeded.post(SETSTATUS, auth=seeded.admin, data={"other": "x"})
    assert r.status_code == 400, r.text
    assert "error" in r.json()


def test_probe_offline_node_503(seeded):
    seeded.set_status({"zope1": {"status": "offline"}})
    r = seeded.probe("zope1")
    assert r.status_code == 503
    assert r.text == "node is offline"
    assert r.headers["Content-Type"].startswith("text/plain")


def test_probe_online_node_200_ok(seeded):
    seeded.set_status({"zope1": {"status": "offline"}})
    r = seeded.probe("zope2")
    assert r.status_code == 200
    assert r.text == "OK"
    assert r.headers["Content-Type"].startswith("text/plain")


def test_probe_draining_node_503(seeded):
    seeded.set_status({"zope2": {"status": "drain"}})
    r = seeded.probe("zope2")
    assert r.status_code == 503
    assert r.text == "node is draining"


def test_probe_back_online_200(seeded):
    seeded.set_status({"zope1": {"status": "offline"}})
    seeded.set_status({"zope1": {"status": "online"}})
    r = seeded.probe("zope1")
    assert (r.status_code, r.text) == (200, "OK")


@pytest.mark.parametrize("status,code", [("online", 200), ("offline", 503), ("drain", 503)])
def test_probe_head_has_status_and_no_body(seeded, status, code):
    if status != "online":
        seeded.set_status({"zope1": {"status": status}})
    r = seeded.probe("zope1", method="HEAD")
    assert r.status_code == code
    assert r.content == b""
    assert r.headers.get("Cache-Control") == "no-store"


def test_probe_missing_node_400(seeded):
    r = seeded.get("/health")
    assert r.status_code == 400
    assert r.text == "node not present in request"


def test_probe_unknown_node_404(seeded):
    r = seeded.probe("zope9")
    assert r.status_code == 404
    assert r.text == "specified node not found"


@pytest.mark.parametrize("node,status", [("zope1", "online"), ("zope1", "offline"), ("zope9", None)])
def test_probe_cache_control_no_store(seeded, node, status):
    if status == "offline":
        seeded.set_status({"zope1": {"status": "offline"}})
    r = seeded.probe(node)
    assert r.headers.get("Cache-Control") == "no-store"


def test_probe_missing_node_has_no_store(seeded):
    assert seeded.get("/health").headers.get("Cache-Control") == "no-store"


def test_probe_needs_no_credentials_and_ignores_them(seeded):
    r = seeded.probe("zope1", auth=seeded.admin)
    assert (r.status_code, r.text) == (200, "OK")


def test_probe_node_as_path_segment_not_accepted(seeded):
    r = seeded.get("/health/zope1")
    assert r.status_code != 200 or r.text != "OK"


def test_probe_default_node_from_serve_option(make_daemon):
    d = make_daemon(["--node", "zope2"])
    d.set_nodes(["zope1", "zope2"])
    d.set_status({"zope2": {"status": "offline"}})
    r = d.get("/health")
    assert (r.status_code, r.text) == (503, "node is offline")
    r = d.probe("zope1")
    assert (r.status_code, r.text) == (200, "OK")


def test_manage_main_redirects_to_managenodes(seeded):
    r = seeded.get("/health/manage_main", auth=seeded.admin)
    assert r.status_code == 302, r.text
    assert r.headers["Location"].split("?")[0].endswith("/health/managenodes")


def test_managenodes_page_served_to_admin(seeded):
    r = seeded.get("/health/managenodes", auth=seeded.admin)
    assert r.status_code < 500
    if r.status_code == 200:
        assert "zope1" in r.text and "zope2" in r.text
