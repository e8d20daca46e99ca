"""
Idempotency-Key on the embedded SQLite store (docs/API.md,
"Idempotency-Key"): a write that changed something is remembered with
its key, and a retry with that key, also after a restart, is answered as
a success and not applied again (the daemon logs `write already
applied`); a retry of a write that failed, or that changed nothing, is
decided afresh; a malformed key is a 400 that changes nothing. The same
on PostgreSQL, across daemons, is in test_pg_deadline.py.
"""

import json

from conftest import assert_json_error


def keyed(d, method, path, key, **kw):
    return d.request(method, path, auth=d.as_admin, headers={"Idempotency-Key": key},
                     timeout=10, **kw)


def status_write(d, status, key, node="web1", **extra):
    return keyed(d, "POST", "/v1/clusters/default/status", key,
                 json=dict({"changes": {node: {"status": status}}}, **extra))


def audited(d, status):
    return [e for e in d.audit() if e.get("new_status") == status]


def test_a_retried_status_write_is_applied_once_also_after_a_restart(daemon):
    daemon.set_nodes(["web1", "web2"])
    r = status_write(daemon, "offline", "deploy-42-step-1")
    assert r.status_code == 200, r.text
    daemon.set_status({"web1": {"status": "online"}})
    mark = daemon.log_mark()
    r = status_write(daemon, "offline", "deploy-42-step-1")
    assert r.status_code == 200, r.text
    # answered with the current state: web1 as the later write left it
    assert {n["name"]: n["status"] for n in r.json()["nodes"]}["web1"] == "online", r.text
    assert daemon.wait_log("write already applied", since=mark), daemon.log_text(mark)
    daemon.stop()
    daemon.start()
    r = status_write(daemon, "offline", "deploy-42-step-1")
    assert r.status_code == 200, r.text
    assert daemon.node_states()["web1"][0] == "online"
    assert len(audited(daemon, "offline")) == 1, daemon.audit()
    # another key is another write
    r = status_write(daemon, "offline", "deploy-42-step-2")
    assert r.status_code == 200, r.text
    assert daemon.node_states()["web1"][0] == "offline"


def test_a_retry_of_a_refused_or_empty_write_is_decided_afresh(daemon):
    daemon.set_nodes(["web1", "web2"])
    version = daemon.nodes()["version"]
    # refused (if_version does not match): nothing remembered
    r = status_write(daemon, "offline", "k-refused", if_version=version + 5)
    assert r.status_code == 409, r.text
    r = status_write(daemon, "offline", "k-refused")
    assert r.status_code == 200, r.text
    assert daemon.node_states()["web1"][0] == "offline"
    # changed nothing (the list it sets is the list): nothing remembered,
    # so the retry, once the list differs, applies
    put_list = ("PUT", "/v1/clusters/default/nodes", "k-same")
    r = keyed(daemon, *put_list, json={"nodes": ["web1", "web2"]})
    assert r.status_code == 200, r.text
    daemon.set_nodes(["web1"])
    r = keyed(daemon, *put_list, json={"nodes": ["web1", "web2"]})
    assert r.status_code == 200, r.text
    assert sorted(daemon.node_states()) == ["web1", "web2"]


def test_a_retried_node_put_does_not_bring_back_a_removed_node(daemon):
    daemon.set_nodes(["web1"])
    r = keyed(daemon, "PUT", "/v1/clusters/default/nodes/web9", "add-web9",
              json={"address": "10.0.0.9:8080"})
    assert r.status_code in (200, 201), r.text
    r = daemon.delete("/v1/clusters/default/nodes/web9", auth=daemon.as_admin, timeout=10)
    assert r.status_code == 200, r.text
    r = keyed(daemon, "PUT", "/v1/clusters/default/nodes/web9", "add-web9",
              json={"address": "10.0.0.9:8080"})
    # not applied again; the current state of that node is that it is gone
    body = assert_json_error(r, 404)
    assert body["error"] == "node 'web9' was removed meanwhile", body
    assert "web9" not in daemon.node_states()


def test_a_retried_seed_setstatus_is_applied_once(daemon):
    daemon.set_nodes(["web1"])
    for _ in range(2):
        r = daemon.post("/health/++rest++setstatus", auth=daemon.as_admin, timeout=10,
                        data=json.dumps({"web1": {"status": "drain"}}),
                        headers={"Content-Type": "application/json", "Idempotency-Key": "k1"})
        assert r.status_code == 200, r.text
        daemon.set_status({"web1": {"status": "online"}})
    assert daemon.node_states()["web1"][0] == "online"
    assert len(audited(daemon, "drain")) == 1, daemon.audit()


def test_a_malformed_key_is_400_and_changes_nothing(daemon):
    daemon.set_nodes(["web1"])
    for key in ("", "has space", "x" * 129, "caf\u00e9".encode("utf-8").decode("latin-1")):
        body = assert_json_error(status_write(daemon, "offline", key), 400)
        assert "Idempotency-Key" in body["error"], body
    assert daemon.node_states()["web1"][0] == "online"
    assert audited(daemon, "offline") == []
