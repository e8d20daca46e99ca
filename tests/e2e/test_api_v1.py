"""
The v1 JSON API (docs/API.md, "v1 (JSON)"): success shapes, clusters,
nodes, atomic status changes with if_version / min_online, audit, users,
tokens and the events long poll (which must never block the event loop).
"""

import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest
import requests

from conftest import BEARER, RFC3339_UTC, assert_401, assert_json_error, cert, recv_until  # noqa: F401 (cert is a fixture)

NODE_KEYS = {"name", "status", "reason", "changed_by", "changed_at", "expires_at",
             "address", "check"}


@pytest.fixture
def seeded(daemon):
    daemon.set_nodes(["zope1", "zope2", "zope3"])
    return daemon


def node_by_name(body, name):
    for n in body["nodes"]:
        if n["name"] == name:
            return n
    raise AssertionError("node %s not in %r" % (name, body))


# --- health ----------------------------------------------------------------


def test_health_shape(daemon, cm_bin):
    r = daemon.get("/v1/health")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "ok"
    out = subprocess.run([cm_bin, "--version"], capture_output=True, text=True, timeout=10)
    assert body["version"] == out.stdout.split()[-1], (body, out.stdout)


# --- clusters ----------------------------------------------------------------


def test_fresh_store_has_default_cluster_at_health(daemon):
    r = daemon.get("/v1/clusters", auth=daemon.as_admin)
    assert r.status_code == 200
    clusters = r.json()["clusters"]
    assert [(c["name"], c["path"]) for c in clusters] == [("default", "/health")]
    assert {"name", "path", "version", "nodes", "online"} <= set(clusters[0])


def count(v):
    return v if isinstance(v, int) else len(v)


def test_clusters_list_counts_nodes_and_online(seeded):
    seeded.set_status({"zope1": {"status": "offline"}, "zope2": {"status": "drain"}})
    c = seeded.get("/v1/clusters", auth=seeded.as_admin).json()["clusters"][0]
    assert count(c["nodes"]) == 3
    assert c["online"] == 1
    assert c["version"] == seeded.nodes()["version"]


def test_one_cluster_is_its_entry_of_the_list(seeded):
    seeded.set_status({"zope1": {"status": "offline"}})
    listed = seeded.get("/v1/clusters", auth=seeded.as_admin).json()["clusters"][0]
    r = seeded.get("/v1/clusters/default", auth=seeded.as_admin)
    assert r.status_code == 200, r.text
    assert r.json() == listed
    assert_json_error(seeded.get("/v1/clusters/nosuch", auth=seeded.as_admin), 404)


def test_cluster_add_shape(daemon):
    r = daemon.post("/v1/clusters", auth=daemon.as_admin, json={"name": "shop", "path": "/shophealth"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "shop" and body["path"] == "/shophealth"
    assert isinstance(body["version"], int)
    names = [c["name"] for c in daemon.get("/v1/clusters", auth=daemon.as_admin).json()["clusters"]]
    assert names == ["default", "shop"]


def test_cluster_add_taken_name_409(daemon):
    daemon.post("/v1/clusters", auth=daemon.as_admin, json={"name": "shop", "path": "/shop"})
    r = daemon.post("/v1/clusters", auth=daemon.as_admin, json={"name": "shop", "path": "/other"})
    assert_json_error(r, 409)


def test_cluster_add_taken_path_409(daemon):
    r = daemon.post("/v1/clusters", auth=daemon.as_admin, json={"name": "shop", "path": "/health"})
    assert_json_error(r, 409)


def test_new_cluster_probe_answers_at_its_mount(daemon):
    daemon.post("/v1/clusters", auth=daemon.as_admin, json={"name": "shop", "path": "/shophealth"})
    daemon.set_nodes(["web1", "web2"], cluster="shop")
    daemon.set_status({"web2": {"status": "offline"}}, cluster="shop")
    r = daemon.probe("web1", mount="/shophealth")
    assert (r.status_code, r.text) == (200, "OK")
    r = daemon.probe("web2", mount="/shophealth")
    assert (r.status_code, r.text) == (503, "node is offline")
    r = daemon.get("/shophealth/++rest++nodestatus", auth=daemon.as_admin)
    assert r.content == b'{"web1": {"status": "online"}, "web2": {"status": "offline"}}'


def test_clusters_are_independent(daemon):
    daemon.post("/v1/clusters", auth=daemon.as_admin, json={"name": "shop", "path": "/shophealth"})
    daemon.set_nodes(["zope1"])
    daemon.set_nodes(["zope1"], cluster="shop")
    v_default = daemon.nodes()["version"]
    daemon.set_status({"zope1": {"status": "offline"}}, cluster="shop")
    assert daemon.probe("zope1").status_code == 200
    assert daemon.probe("zope1", mount="/shophealth").status_code == 503
    assert daemon.nodes()["version"] == v_default
    # a node of one cluster is unknown in the other
    daemon.set_nodes(["only-shop"], cluster="shop")
    assert daemon.probe("only-shop").status_code == 404


def test_cluster_delete(daemon):
    daemon.post("/v1/clusters", auth=daemon.as_admin, json={"name": "shop", "path": "/shophealth"})
    daemon.set_nodes(["web1"], cluster="shop")
    r = daemon.delete("/v1/clusters/shop", auth=daemon.as_admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": "shop"}
    names = [c["name"] for c in daemon.get("/v1/clusters", auth=daemon.as_admin).json()["clusters"]]
    assert names == ["default"]
    assert daemon.probe("web1", mount="/shophealth").status_code == 404
    assert_json_error(daemon.get("/v1/clusters/shop/nodes", auth=daemon.as_admin), 404)


# --- nodes -----------------------------------------------------------------------


def test_nodes_list_shape(seeded):
    r = seeded.get("/v1/clusters/default/nodes", auth=seeded.as_admin)
    assert r.status_code == 200
    body = r.json()
    assert body["cluster"] == "default"
    assert isinstance(body["version"], int) and body["version"] >= 1
    assert [n["name"] for n in body["nodes"]] == ["zope1", "zope2", "zope3"]
    for n in body["nodes"]:
        assert NODE_KEYS <= set(n), n
        assert n["status"] == "online"
        assert n["expires_at"] is None
        assert n["address"] is None and n["check"] is None
        assert RFC3339_UTC.match(n["changed_at"]), n


def test_nodes_put_replaces_list(seeded):
    seeded.set_status({"zope2": {"status": "offline", "reason": "keep me"}})
    body = seeded.set_nodes(["zope2", "zope4"])
    assert [n["name"] for n in body["nodes"]] == ["zope2", "zope4"]
    z2 = node_by_name(body, "zope2")
    assert (z2["status"], z2["reason"]) == ("offline", "keep me")
    assert node_by_name(body, "zope4")["status"] == "online"
    assert seeded.probe("zope1").status_code == 404


def test_nodes_put_of_10000_longest_names_is_one_request(daemon):
    # 10,000 names of 64 bytes, indented: about 750 KB, over the 64 KiB of other bodies
    names = ["n%063d" % i for i in range(10000)]
    body = json.dumps({"nodes": names}, indent=1)
    # what is checked is that it is accepted, not how fast: under ASan on a
    # busy machine storing 10,000 nodes takes several seconds
    r = daemon.put("/v1/clusters/default/nodes", data=body, auth=daemon.as_admin,
                   headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    assert len(r.json()["nodes"]) == 10000


def test_nodes_put_forgets_removed_node_state(seeded):
    seeded.set_status({"zope1": {"status": "offline"}})
    seeded.set_nodes(["zope2"])
    seeded.set_nodes(["zope1", "zope2"])
    assert seeded.node_states()["zope1"][0] == "online"


def test_nodes_put_increments_version(seeded):
    v = seeded.nodes()["version"]
    body = seeded.set_nodes(["zope1"])
    assert body["version"] > v


def test_node_get_shape(seeded):
    r = seeded.get("/v1/clusters/default/nodes/zope2", auth=seeded.as_admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["cluster"] == "default"
    assert isinstance(body["version"], int)
    node = body["node"]
    assert NODE_KEYS <= set(node)
    assert node["name"] == "zope2"
    assert "probes" in node and isinstance(node["probes"], list)
    assert "check_state" in node


def test_node_get_records_observed_probes(seeded):
    seeded.probe("zope2")
    seeded.probe("zope2")
    node = seeded.get("/v1/clusters/default/nodes/zope2", auth=seeded.as_admin).json()["node"]
    assert len(node["probes"]) >= 1, node


def test_node_put_new_is_201(seeded):
    r = seeded.put("/v1/clusters/default/nodes/zope9", auth=seeded.as_admin,
                   json={"address": "10.0.0.9:8080", "check": "http://10.0.0.9:8080/ok"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["cluster"] == "default" and isinstance(body["version"], int)
    n = body["node"]
    assert (n["name"], n["status"], n["address"], n["check"]) == (
        "zope9", "online", "10.0.0.9:8080", "http://10.0.0.9:8080/ok")
    assert seeded.probe("zope9").status_code == 200


def test_node_put_existing_is_200_and_keeps_status(seeded):
    seeded.set_status({"zope1": {"status": "offline", "reason": "r1"}})
    r = seeded.put("/v1/clusters/default/nodes/zope1", auth=seeded.as_admin,
                   json={"address": "10.0.0.1:8080"})
    assert r.status_code == 200, r.text
    n = r.json()["node"]
    assert (n["status"], n["reason"], n["address"]) == ("offline", "r1", "10.0.0.1:8080")


def test_node_put_empty_string_clears_field(seeded):
    seeded.put("/v1/clusters/default/nodes/zope1", auth=seeded.as_admin,
               json={"address": "10.0.0.1:8080", "check": "http://10.0.0.1:8080/"})
    r = seeded.put("/v1/clusters/default/nodes/zope1", auth=seeded.as_admin, json={"address": ""})
    assert r.status_code == 200, r.text
    n = r.json()["node"]
    assert n["address"] is None
    assert n["check"] == "http://10.0.0.1:8080/"


def test_node_delete(seeded):
    r = seeded.delete("/v1/clusters/default/nodes/zope3", auth=seeded.as_admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["cluster"] == "default" and body["deleted"] == "zope3"
    assert isinstance(body["version"], int)
    assert [n["name"] for n in seeded.nodes()["nodes"]] == ["zope1", "zope2"]
    assert seeded.probe("zope3").status_code == 404


# --- status changes ------------------------------------------------------------


def test_status_change_returns_node_list(seeded):
    op = seeded.make_user("alice", "operator")
    v = seeded.nodes()["version"]
    r = seeded.post("/v1/clusters/default/status", auth=op,
                    json={"changes": {"zope1": {"status": "offline", "reason": "deploy 42"}}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["cluster"] == "default"
    assert body["version"] == v + 1
    z1 = node_by_name(body, "zope1")
    assert (z1["status"], z1["reason"], z1["changed_by"]) == ("offline", "deploy 42", "alice")
    assert RFC3339_UTC.match(z1["changed_at"])
    assert z1["expires_at"] is None


def test_status_change_answer_changed_carries_only_the_changed_nodes(seeded):
    v = seeded.nodes()["version"]
    r = seeded.post("/v1/clusters/default/status?answer=changed", auth=seeded.as_admin,
                    json={"changes": {"zope3": {"status": "drain", "reason": "r"},
                                      "zope1": {"status": "offline"}}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"cluster", "version", "nodes"}
    assert (body["cluster"], body["version"]) == ("default", v + 1)
    assert [n["name"] for n in body["nodes"]] == ["zope1", "zope3"]
    assert all(set(n) == NODE_KEYS for n in body["nodes"])
    z3 = node_by_name(body, "zope3")
    assert (z3["status"], z3["reason"]) == ("drain", "r")
    assert body["nodes"] == [n for n in seeded.nodes()["nodes"] if n["name"] != "zope2"]


def test_status_change_answer_list_is_the_whole_node_list(seeded):
    r = seeded.post("/v1/clusters/default/status?answer=list", auth=seeded.as_admin,
                    json={"changes": {"zope1": {"status": "offline"}}})
    assert r.status_code == 200, r.text
    assert r.json() == seeded.nodes()


def test_status_change_unknown_answer_400_nothing_changed(seeded):
    before = seeded.nodes()
    r = seeded.post("/v1/clusters/default/status?answer=some", auth=seeded.as_admin,
                    json={"changes": {"zope1": {"status": "offline"}}})
    assert_json_error(r, 400)
    assert seeded.nodes() == before


def test_status_change_is_one_version_for_several_nodes(seeded):
    v = seeded.nodes()["version"]
    body = seeded.set_status({"zope1": {"status": "offline"}, "zope2": {"status": "drain"}})
    assert body["version"] == v + 1


def test_status_change_with_ttl_sets_expires_at(seeded):
    body = seeded.set_status({"zope1": {"status": "offline", "ttl": 600}})
    z1 = node_by_name(body, "zope1")
    assert z1["expires_at"] is not None and RFC3339_UTC.match(z1["expires_at"])
    assert z1["expires_at"] > z1["changed_at"]


def test_status_change_by_token_names_token(seeded):
    tid, tok = seeded.make_token("operator", "deploy bot")
    body = seeded.set_status({"zope1": {"status": "offline"}}, auth=(BEARER, tok))
    assert node_by_name(body, "zope1")["changed_by"] == "token:" + tid


def test_if_version_match_applies(seeded):
    v = seeded.nodes()["version"]
    body = seeded.set_status({"zope1": {"status": "offline"}}, if_version=v)
    assert body["version"] == v + 1


def test_if_version_mismatch_409_nothing_changed(seeded):
    before = seeded.nodes()
    r = seeded.post("/v1/clusters/default/status", auth=seeded.as_admin,
                    json={"changes": {"zope1": {"status": "offline"}},
                          "if_version": before["version"] - 1})
    assert_json_error(r, 409)
    assert seeded.nodes() == before


def test_min_online_violation_409_nothing_changed(seeded):
    seeded.set_status({"zope3": {"status": "offline"}})
    before = seeded.nodes()
    r = seeded.post("/v1/clusters/default/status", auth=seeded.as_admin,
                    json={"changes": {"zope1": {"status": "offline"}}, "min_online": 2})
    assert_json_error(r, 409)
    assert seeded.nodes() == before
    assert seeded.probe("zope1").status_code == 200


def test_min_online_satisfied_applies(seeded):
    body = seeded.set_status({"zope1": {"status": "offline"}}, min_online=2)
    assert node_by_name(body, "zope1")["status"] == "offline"


def test_min_online_counts_drain_as_not_online(seeded):
    r = seeded.post("/v1/clusters/default/status", auth=seeded.as_admin,
                    json={"changes": {"zope1": {"status": "drain"}, "zope2": {"status": "drain"}},
                          "min_online": 2})
    assert_json_error(r, 409)


def test_status_unknown_node_atomic_404(seeded):
    before = seeded.nodes()
    r = seeded.post("/v1/clusters/default/status", auth=seeded.as_admin,
                    json={"changes": {"zope1": {"status": "offline"}, "ghost": {"status": "offline"}}})
    body = assert_json_error(r, 404)
    assert body["detail"]["entry"] == "ghost"
    assert seeded.nodes() == before


# --- audit -----------------------------------------------------------------------


def test_audit_newest_first_with_fields(seeded):
    op = seeded.make_user("alice", "operator")
    seeded.set_status({"zope1": {"status": "offline", "reason": "first"}}, auth=op)
    seeded.set_status({"zope1": {"status": "drain", "reason": "second"}}, auth=op)
    r = seeded.get("/v1/clusters/default/audit", auth=seeded.as_admin)
    assert r.status_code == 200
    entries = r.json()["entries"]
    keys = {"id", "at", "cluster", "node", "actor", "address", "action", "old_status",
            "new_status", "reason"}
    for e in entries:
        assert keys <= set(e), e
    first, second = entries[1], entries[0]
    assert (second["node"], second["actor"], second["old_status"], second["new_status"],
            second["reason"]) == ("zope1", "alice", "offline", "drain", "second")
    assert (first["old_status"], first["new_status"], first["reason"]) == ("online", "offline", "first")
    assert second["action"] == "status" and second["cluster"] == "default"
    assert second["address"] == "127.0.0.1"
    assert RFC3339_UTC.match(second["at"])
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)


def test_audit_limit(seeded):
    for i in range(6):
        seeded.set_status({"zope1": {"status": "offline" if i % 2 == 0 else "online"}})
    entries = seeded.audit(limit=3)
    assert len(entries) == 3
    assert entries == seeded.audit()[:3]


def test_audit_records_node_list_changes(daemon):
    daemon.set_nodes(["zope1", "zope2"])
    actions = {(e["action"], e["node"]) for e in daemon.audit()}
    assert ("node-add", "zope1") in actions and ("node-add", "zope2") in actions
    daemon.set_nodes(["zope2"])
    assert ("node-remove", "zope1") in {(e["action"], e["node"]) for e in daemon.audit(limit=5)}


# --- users -----------------------------------------------------------------------


def test_user_create_shape_and_login(daemon):
    r = daemon.post("/v1/users", auth=daemon.as_admin,
                    json={"name": "bob", "password": "bob-password", "role": "viewer"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["name"], body["role"]) == ("bob", "viewer")
    assert RFC3339_UTC.match(body["created_at"])
    assert "password" not in body and "password_hash" not in body
    assert daemon.get("/v1/clusters", auth=("bob", "bob-password")).status_code == 200


def test_user_create_existing_409(daemon):
    daemon.make_user("bob", "viewer")
    r = daemon.post("/v1/users", auth=daemon.as_admin,
                    json={"name": "bob", "password": "another-pass", "role": "admin"})
    assert_json_error(r, 409)


def test_users_list_shape_has_no_secrets(daemon):
    _, pw = daemon.make_user("bob", "operator")
    r = daemon.get("/v1/users", auth=daemon.as_admin)
    assert r.status_code == 200
    users = r.json()["users"]
    assert {(u["name"], u["role"]) for u in users} == {("admin", "admin"), ("bob", "operator")}
    for u in users:
        assert set(u) >= {"name", "role", "created_at"}
        assert not any("pass" in k or "hash" in k for k in u), u
    assert pw not in r.text and "argon2" not in r.text


def test_user_delete_revokes_login(daemon):
    name, pw = daemon.make_user("bob", "viewer")
    assert daemon.get("/v1/clusters", auth=(name, pw)).status_code == 200
    r = daemon.delete("/v1/users/bob", auth=daemon.as_admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": "bob"}
    assert_401(daemon.get("/v1/clusters", auth=(name, pw), source="127.0.3.1"))


def test_last_admin_cannot_be_deleted(daemon):
    r = daemon.delete("/v1/users/admin", auth=daemon.as_admin)
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == {"entry": "admin"}
    assert daemon.get("/v1/clusters", auth=daemon.admin).status_code == 200


def test_admin_can_be_deleted_when_another_admin_remains(daemon):
    other = daemon.make_user("root2", "admin")
    r = daemon.delete("/v1/users/admin", auth=other)
    assert r.status_code == 200, r.text
    assert daemon.get("/v1/users", auth=other).json()["users"][0]["name"] == "root2"


# --- tokens ----------------------------------------------------------------------


def test_token_create_shape(daemon):
    r = daemon.post("/v1/tokens", auth=daemon.as_admin, json={"role": "operator", "description": "ci"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["role"], body["description"]) == ("operator", "ci")
    assert body["token"].startswith("cmt_%s_" % body["id"]), body
    assert len(body["token"]) > len("cmt_%s_" % body["id"]) + 16


def test_token_works_as_bearer(daemon):
    _, tok = daemon.make_token("viewer")
    assert daemon.get("/v1/clusters", auth=(BEARER, tok)).status_code == 200


def test_token_list_never_shows_token(daemon):
    r = daemon.post("/v1/tokens", auth=daemon.admin, json={"role": "operator", "description": "ci"})
    assert r.status_code == 201, r.text
    tid, tok = r.json()["id"], r.json()["token"]
    r = daemon.get("/v1/tokens", auth=daemon.as_admin)
    assert r.status_code == 200
    tokens = [t for t in r.json()["tokens"] if t["id"] != daemon.helper_token_id]
    assert len(tokens) == 1
    t = tokens[0]
    assert (t["id"], t["role"], t["description"], t["created_by"]) == (tid, "operator", "ci", "admin")
    assert RFC3339_UTC.match(t["created_at"])
    assert "token" not in t and "hash" not in t
    secret = tok.split("_", 2)[2]
    assert secret not in r.text


def test_revoked_token_401(daemon):
    tid, tok = daemon.make_token("admin")
    assert daemon.get("/v1/users", auth=(BEARER, tok)).status_code == 200
    r = daemon.delete("/v1/tokens/" + tid, auth=daemon.as_admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": tid}
    assert_401(daemon.get("/v1/users", auth=(BEARER, tok), source="127.0.3.2"))
    assert [t for t in daemon.get("/v1/tokens", auth=daemon.as_admin).json()["tokens"]
            if t["id"] != daemon.helper_token_id] == []


def test_token_with_wrong_secret_401(daemon):
    tid, tok = daemon.make_token("admin")
    forged = "cmt_%s_%s" % (tid, "A" * len(tok.split("_", 2)[2]))
    assert_401(daemon.get("/v1/users", auth=(BEARER, forged), source="127.0.3.3"))


# --- events long poll ----------------------------------------------------------


def events(d, after, wait, **kw):
    kw.setdefault("timeout", wait + 10)
    return d.get("/v1/clusters/default/events?after=%d&wait=%s" % (after, wait),
                 auth=kw.pop("auth", d.as_admin), **kw)


def long_polls_held(d):
    m = re.search(r"^clustermgmt_long_polls_held (\d+)$", d.get("/metrics").text, re.M)
    assert m, "no clustermgmt_long_polls_held in /metrics"
    return int(m.group(1))


def test_events_returns_at_once_when_version_above_after(seeded):
    v = seeded.nodes()["version"]
    t0 = time.monotonic()
    r = events(seeded, v - 1, 10)
    elapsed = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert elapsed < 5.0, elapsed  # at once, not after the 10 s wait
    body = r.json()
    assert body["changed"] is True
    assert body["version"] == v
    assert [n["name"] for n in body["nodes"]] == ["zope1", "zope2", "zope3"]


def test_events_times_out_with_changed_false(seeded):
    v = seeded.nodes()["version"]
    t0 = time.monotonic()
    r = events(seeded, v, 2)
    elapsed = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert 1.5 <= elapsed < 8.0, elapsed
    body = r.json()
    assert body["changed"] is False
    assert body["version"] == v


def test_events_returns_promptly_on_change(seeded):
    v = seeded.nodes()["version"]
    result = {}

    def poll():
        result["r"] = events(seeded, v, 20)
        result["t"] = time.monotonic()

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    time.sleep(0.5)
    changed_at = time.monotonic()
    seeded.set_status({"zope2": {"status": "offline"}})
    th.join(timeout=15)
    assert not th.is_alive(), "long poll did not return within 15 s of a change"
    # woken by the change, not by the end of the 20 s wait
    assert result["t"] - changed_at < 5.0, result["t"] - changed_at
    body = result["r"].json()
    assert body["changed"] is True and body["version"] == v + 1
    assert node_by_name(body, "zope2")["status"] == "offline"


def test_events_without_after_wait_for_the_next_change(seeded):
    """No `after`: the version at arrival is the one waited past."""
    v = seeded.nodes()["version"]
    result = {}

    def poll():
        result["r"] = seeded.get("/v1/clusters/default/events?wait=20", auth=seeded.as_admin,
                                 timeout=30)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    time.sleep(0.5)
    assert th.is_alive(), "answered before any change"
    seeded.set_status({"zope2": {"status": "offline"}})
    th.join(timeout=15)
    assert not th.is_alive(), "long poll did not return within 15 s of a change"
    body = result["r"].json()
    assert body["changed"] is True and body["version"] == v + 1, body


def delta(d, after, since=None, wait=0):
    q = "/v1/clusters/default/events?after=%d&wait=%d&answer=changed" % (after, wait)
    r = d.get(q + ("&since=%d" % since if since is not None else ""), auth=d.as_admin)
    assert r.status_code == 200, r.text
    return r.json()


def test_events_delta_carries_only_the_nodes_changed_since_the_last_answer(seeded):
    """?answer=changed: the first answer is the whole list with a stamp;
    given that stamp back as since, the next carries only what changed."""
    v = seeded.nodes()["version"]
    first = delta(seeded, v - 1)
    assert first["whole"] is True and first["changed"] is True
    assert [n["name"] for n in first["nodes"]] == ["zope1", "zope2", "zope3"]
    assert first["nodes"] == seeded.nodes()["nodes"]  # the same documents
    seeded.set_status({"zope2": {"status": "drain", "reason": "deploy"}})
    second = delta(seeded, first["version"], first["stamp"])
    assert second["whole"] is False and second["changed"] is True
    assert second["version"] == v + 1 and second["stamp"] > first["stamp"]
    assert second["nodes"] == [node_by_name(seeded.nodes(), "zope2")]
    # two changes between answers: both nodes, once each
    seeded.set_status({"zope1": {"status": "offline"}})
    seeded.set_status({"zope3": {"status": "offline"}, "zope1": {"status": "online"}})
    third = delta(seeded, second["version"], second["stamp"])
    assert [n["name"] for n in third["nodes"]] == ["zope1", "zope3"], third
    assert third["nodes"] == [node_by_name(seeded.nodes(), "zope1"),
                              node_by_name(seeded.nodes(), "zope3")]
    # a node's address is part of its document
    r = seeded.put("/v1/clusters/default/nodes/zope2", auth=seeded.as_admin,
                   json={"address": "10.0.0.2:8080"})
    assert r.status_code == 200, r.text
    fourth = delta(seeded, third["version"], third["stamp"])
    assert [n["name"] for n in fourth["nodes"]] == ["zope2"], fourth
    assert fourth["nodes"][0]["address"] == "10.0.0.2:8080"
    # nothing since: held until the wait ends, then changed false, no node
    fifth = delta(seeded, fourth["version"], fourth["stamp"], wait=1)
    assert fifth == dict(fourth, changed=False, nodes=[]), fifth


def test_events_delta_is_the_whole_list_when_nodes_came_or_went(seeded):
    v = seeded.nodes()["version"]
    first = delta(seeded, v - 1)
    seeded.set_nodes(["zope1", "zope2", "zope4"])
    after_replace = delta(seeded, first["version"], first["stamp"])
    assert after_replace["whole"] is True
    assert [n["name"] for n in after_replace["nodes"]] == ["zope1", "zope2", "zope4"]
    r = seeded.delete("/v1/clusters/default/nodes/zope1", auth=seeded.as_admin)
    assert r.status_code == 200, r.text
    after_delete = delta(seeded, after_replace["version"], after_replace["stamp"])
    assert after_delete["whole"] is True
    assert [n["name"] for n in after_delete["nodes"]] == ["zope2", "zope4"]
    # a stamp this daemon has not reached (another daemon's, a made-up
    # one): the whole list rather than a guess
    ahead = delta(seeded, after_delete["version"] - 1, after_delete["stamp"] + 1000)
    assert ahead["whole"] is True and len(ahead["nodes"]) == 2


@pytest.mark.parametrize("query", ["answer=nodes", "answer=changed&since=-1",
                                   "answer=changed&since=x", "answer=changed&since=1e3"])
def test_events_delta_bad_query_is_400(seeded, query):
    r = seeded.get("/v1/clusters/default/events?after=0&wait=0&" + query, auth=seeded.as_admin)
    body = assert_json_error(r, 400)
    assert "answer" in body["error"] or "since" in body["error"], body


def test_events_held_polls_do_not_block_other_requests(seeded):
    v = seeded.nodes()["version"]
    n = 20
    done = []

    def poll():
        try:
            r = events(seeded, v, 6)
            done.append(r.status_code)
        except requests.RequestException as e:
            done.append(repr(e))

    threads = [threading.Thread(target=poll, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    # all held (not a fixed sleep: a stalled thread may send its poll late)
    deadline = time.monotonic() + 10
    while long_polls_held(seeded) != n:
        assert time.monotonic() < deadline, "the %d polls were never all held" % n
        time.sleep(0.05)
    for _ in range(3):
        r = seeded.probe("zope1", timeout=5)
        assert (r.status_code, r.text) == (200, "OK")
        assert len(done) == 0, "polls returned before the probe: %r" % done
    r = seeded.get("/v1/clusters/default/nodes", auth=seeded.as_admin, timeout=5)
    assert r.status_code == 200
    # answered while the polls were still held (they wait 6 s: room for a
    # 2 s stall of any process since the first was held)
    assert len(done) == 0, "polls returned before the request: %r" % done
    for t in threads:
        t.join(timeout=15)
    assert done == [200] * n, done


def test_events_many_held_polls_all_wake_on_change(seeded):
    v = seeded.nodes()["version"]
    n = 10
    results = []

    def poll():
        r = events(seeded, v, 20)
        results.append((time.monotonic(), r.json().get("changed")))

    threads = [threading.Thread(target=poll, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    time.sleep(0.7)
    changed_at = time.monotonic()
    seeded.set_status({"zope1": {"status": "drain"}})
    for t in threads:
        t.join(timeout=15)
    assert len(results) == n, results
    for t, changed in results:
        assert changed is True
        assert t - changed_at < 5.0  # woken by the change, not by the end of the 20 s wait


def open_descriptors(d):
    return len(os.listdir("/proc/%d/fd" % d.proc.pid))


def read_answer(sock):
    """One HTTP/1.1 answer with a Content-Length from sock: its JSON body."""
    data = recv_until(sock, b"\r\n\r\n")
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of an answer"
        body += chunk
    return json.loads(body[:length])


def hold_polls(d, clients, path):
    request = ("GET /v1/clusters/default/%s HTTP/1.1\r\nHost: x\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (path, d.admin_token[1]))
    for c in clients:
        c.sendall(request.encode())
    deadline = time.monotonic() + 10
    while long_polls_held(d) != len(clients):
        assert time.monotonic() < deadline, "the %d polls were never all held" % len(clients)
        time.sleep(0.05)


def polls_left_behind(d, path, connect):
    """20 clients (connect() -> a socket) each have a held poll answered
    on their connection, then hold another and leave: asserts that every
    poll and descriptor is gone within 5 s (path() -> the poll's path,
    for the current state)."""
    before = open_descriptors(d)
    clients = [connect() for _ in range(20)]
    try:
        hold_polls(d, clients, path())
        d.set_status({"zope2": {"status": "offline"}})
        for c in clients:
            assert read_answer(c)["changed"] is True
        hold_polls(d, clients, path())
        time.sleep(1.5)  # a client still there keeps its poll
        assert long_polls_held(d) == 20
    finally:
        for c in clients:
            c.close()
    closed = time.monotonic()
    while long_polls_held(d) != 0 or open_descriptors(d) > before:
        assert time.monotonic() - closed < 5, "%d polls and %d descriptors still held" % (
            long_polls_held(d), open_descriptors(d) - before)
        time.sleep(0.05)


def events_path(d):
    return "events?after=%d&wait=60" % d.nodes()["version"]


@pytest.mark.parametrize("poll", ["events", "observations"])
def test_a_held_poll_whose_client_left_is_ended_at_once(seeded, poll):
    """h2o reads nothing from an HTTP/1 connection while its request is
    answered: a client that closed its long poll would hold its
    descriptor and its place until the wait ended (a minute). The
    daemon watches for the client's leaving (docs/API.md). Each client
    first has a held poll answered on the same connection, then holds
    another and leaves."""
    def observations_path():
        now = seeded.get("/v1/clusters/default/observations?nodes=zope1",
                         auth=seeded.as_admin).json()["digest"]
        return "observations?nodes=zope1&after=%d&wait=60" % now

    polls_left_behind(seeded, (lambda: events_path(seeded)) if poll == "events"
                      else observations_path,
                      lambda: socket.create_connection(("127.0.0.1", seeded.port), timeout=10))


def test_a_poll_whose_client_left_as_it_sent_it_is_ended_at_once(seeded):
    """A client that sends its next poll on a connection and shuts its
    sending side down at once: the daemon may see the end of the stream
    before it holds the poll (the poll waiting for its token's check, or
    read in a later turn of the loop). It is answered at once all the
    same, as at the end of its wait."""
    clients = [socket.create_connection(("127.0.0.1", seeded.port), timeout=10)
               for _ in range(20)]
    try:
        hold_polls(seeded, clients, events_path(seeded))
        seeded.set_status({"zope2": {"status": "offline"}})
        for c in clients:
            assert read_answer(c)["changed"] is True
        request = ("GET /v1/clusters/default/%s HTTP/1.1\r\nHost: x\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % (events_path(seeded),
                                                           seeded.admin_token[1])).encode()
        sent = time.monotonic()
        for c in clients:
            c.sendall(request)
            c.shutdown(socket.SHUT_WR)
        for c in clients:
            assert read_answer(c)["changed"] is False
        assert time.monotonic() - sent < 5, "answered after %.1f s" % (time.monotonic() - sent)
    finally:
        for c in clients:
            c.close()


def test_a_held_poll_whose_tls_client_left_is_ended_at_once(make_daemon, cert):
    """The same over HTTP/1.1 with TLS: the client's close_notify and FIN."""
    d = make_daemon(tls=cert)
    d.set_nodes(["zope1", "zope2", "zope3"])
    context = ssl.create_default_context(cafile=str(cert[0]))
    context.set_alpn_protocols(["http/1.1"])

    def connect():
        raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        return context.wrap_socket(raw, server_hostname="127.0.0.1")

    polls_left_behind(d, lambda: events_path(d), connect)


# --- several HTTP workers (serve --threads N) ------------------------------------


def test_change_is_seen_by_every_worker(make_daemon):
    d = make_daemon(["--threads", "4"])
    d.set_nodes(["zope1"])
    d.set_status({"zope1": {"status": "offline"}})
    # each probe on a fresh connection: every worker accepts on its own dup
    # of the one listening socket, so fresh connections land on any of them
    answers = {(r.status_code, r.text) for r in (d.probe("zope1") for _ in range(40))}
    assert answers == {(503, "node is offline")}
    d.set_status({"zope1": {"status": "online"}})
    answers = {(r.status_code, r.text) for r in (d.probe("zope1") for _ in range(40))}
    assert answers == {(200, "OK")}


def test_long_polls_on_every_worker_wake_on_change(make_daemon):
    d = make_daemon(["--threads", "4"])
    d.set_nodes(["zope1"])
    v = d.nodes()["version"]
    results = []

    def poll():
        r = d.get("/v1/clusters/default/events?after=%d&wait=20" % v, auth=d.as_admin,
                  timeout=30)
        results.append((time.monotonic(), r.json().get("changed")))

    threads = [threading.Thread(target=poll, daemon=True) for _ in range(12)]
    for t in threads:
        t.start()
    time.sleep(0.7)
    changed_at = time.monotonic()
    d.set_status({"zope1": {"status": "drain"}})
    for t in threads:
        t.join(timeout=25)
    assert len(results) == 12, results
    # woken by the change, not by the end of their 20 s wait
    assert all(c is True and t - changed_at < 5.0 for t, c in results), (changed_at, results)
