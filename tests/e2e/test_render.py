"""
The node list as the daemon renders it (src/http/render.c): a new version
re-renders only the nodes that changed and keeps every other node's text.
Whatever happened to the cluster, every answer that carries the list
(GET .../nodes, the events long poll, a write's answer) must be exactly
the list of the current state: these tests run a history of changes of
every kind and compare, after each, the bytes of the list with the state
read node by node and with the other answers of the same version.
"""

import json
import re
import select

from conftest import read_to_end
from test_serve import held_list_request

NODE_KEYS = ("name", "status", "reason", "changed_by", "changed_at", "expires_at",
             "address", "check")


def compact(doc):
    """The text the daemon gives for doc: compact, keys in order, UTF-8."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def list_bytes(d, cluster="default"):
    r = d.get("/v1/clusters/%s/nodes" % cluster, auth=d.as_admin)
    assert r.status_code == 200, r.text
    return r.content


def node_one_by_one(d, name, cluster="default"):
    r = d.get("/v1/clusters/%s/nodes/%s" % (cluster, name), auth=d.as_admin)
    assert r.status_code == 200, r.text
    node = r.json()["node"]
    return {k: node[k] for k in NODE_KEYS}


def check_list(d, names, cluster="default"):
    """The list's bytes are the compact text of the nodes read one by one,
    in the list's order, and the events answer of the same version carries
    the same bytes."""
    raw = list_bytes(d, cluster)
    doc = json.loads(raw)
    assert [n["name"] for n in doc["nodes"]] == sorted(names) or \
        sorted(n["name"] for n in doc["nodes"]) == sorted(names), doc
    expected = {"cluster": cluster, "version": doc["version"],
                "nodes": [node_one_by_one(d, n["name"], cluster) for n in doc["nodes"]]}
    assert raw == compact(expected)
    r = d.get("/v1/clusters/%s/events?after=0" % cluster, auth=d.as_admin)
    assert r.status_code == 200
    assert r.content == raw[:-1] + b',"changed":true}'
    return doc


def test_every_kind_of_change_gives_the_exact_list(daemon):
    # 150 nodes: three chunks of the model (model_nodes.c), so that a
    # removal or an addition in the first moves the nodes of the others
    names = ["n%02d" % i for i in range(40)] + ["p%03d" % i for i in range(110)]
    daemon.set_nodes(names)
    check_list(daemon, names)
    steps = [
        ("status", {"n05": {"status": "drain", "reason": 'quote " backslash \\ ünï ✓'}}),
        ("status", {"n05": {"status": "online"}, "n06": {"status": "offline", "reason": "x"}}),
        ("status", {"n07": {"status": "drain", "ttl": 3600, "reason": "ttl"}}),
        ("address", ("n08", {"address": "10.0.0.8:8080", "check": "http://10.0.0.8/ok"})),
        ("address", ("n08", {"address": "10.0.0.9:8080"})),
        ("delete", "n09"),
        ("add", ("n99", {"address": "10.0.0.99:80"})),
        ("status", {"n07": {"status": "online"}}),
        ("status", {"n00": {"status": "drain", "reason": "first"},
                    "n39": {"status": "drain", "reason": "last"}}),
        ("status", {"n00": {"status": "drain", "reason": "first again"}}),
    ]
    live = set(names)
    for kind, what in steps:
        if kind == "status":
            answer = daemon.post("/v1/clusters/default/status", auth=daemon.as_admin,
                                 json={"changes": what})
            assert answer.status_code == 200, answer.text
            doc = check_list(daemon, live)
            assert answer.content == list_bytes(daemon), "the write's answer is the list"
            assert json.loads(answer.content)["version"] == doc["version"]
            continue
        if kind in ("address", "add"):
            name, body = what
            r = daemon.put("/v1/clusters/default/nodes/%s" % name, auth=daemon.as_admin,
                           json=body)
            assert r.status_code in (200, 201), r.text
            live.add(name)
        elif kind == "delete":
            r = daemon.delete("/v1/clusters/default/nodes/%s" % what, auth=daemon.as_admin)
            assert r.status_code == 200, r.text
            live.discard(what)
        check_list(daemon, live)


def test_the_list_of_one_cluster_is_not_mixed_with_another(daemon):
    """Two clusters with nodes of the same names and different states,
    changed in turns: each list is its own."""
    r = daemon.post("/v1/clusters", auth=daemon.as_admin,
                    json={"name": "other", "path": "/other"})
    assert r.status_code == 201, r.text
    names = ["a", "b", "c"]
    daemon.set_nodes(names)
    daemon.set_nodes(names, cluster="other")
    for i in range(6):
        cluster = "default" if i % 2 == 0 else "other"
        daemon.set_status({"b": {"status": "drain", "reason": "turn %d" % i}}, cluster=cluster)
        check_list(daemon, names, "default")
        check_list(daemon, names, "other")
    assert daemon.nodes("default")["nodes"][1]["reason"] == "turn 4"
    assert daemon.nodes("other")["nodes"][1]["reason"] == "turn 5"


def test_an_answer_still_being_written_keeps_its_text_while_later_versions_render(daemon):
    """A version's text is written again for a later version only once no
    response holds it: a large list requested and read only after three
    writes (each answered with the list, rendered on the same worker)
    arrives whole and as it was."""
    names = ["web%05d-%s" % (i, "x" * 40) for i in range(3000)]
    daemon.set_nodes(names)
    with held_list_request(daemon) as s:
        assert select.select([s], [], [], 10)[0], "no answer began"  # rendered
        for i in range(3):
            r = daemon.post("/v1/clusters/default/status", auth=daemon.as_admin,
                            json={"changes": {names[i]: {"status": "drain",
                                                         "reason": "r" * 40}}})
            assert r.status_code == 200, r.text
            assert json.loads(r.content)["nodes"][i]["status"] == "drain"
        answer = read_to_end(s)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head[:200]
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert length is not None and len(body) == int(length.group(1)), head
    doc = json.loads(body)
    assert [n["name"] for n in doc["nodes"]] == names
    assert all(n["status"] == "online" for n in doc["nodes"]), "a later version's text"
    assert doc["version"] == json.loads(r.content)["version"] - 3
    check_list(daemon, names)
