"""
The fleet on PostgreSQL (issue 14, point 3): the fleet's telemetry
(observed probes, heartbeats, sessions) goes through the watch thread's
connection, never ahead of operators' writes on the main one; a daemon
holds at most two connections; and a write right after an administrator
terminated the daemon's backends reconnects once instead of answering
503.

Every test starts a real PostgreSQL (the session's, or its own) and real
daemons; every wait is bounded; threads are joined.
"""

import threading
import time

import requests

from test_postgres import fleet, probe_code, wait_until  # noqa: F401

PROPAGATION_TIMEOUT = 10.0
LOCK_CLASS, LOCK_WRITE = 0x636D, 2  # postgres_internal.h


def connections_by_daemon(pg, db):
    rows = pg.psql("SELECT application_name, count(*) FROM pg_stat_activity "
                   "WHERE datname = '%s' AND application_name LIKE 'clustermgmt%%' "
                   "GROUP BY application_name" % db)
    return dict(line.split("|") for line in rows.splitlines() if line)


def probe_as(d, node, user_agent):
    return requests.get("%s/health?node=%s" % (d.url, node), timeout=5,
                        headers={"User-Agent": user_agent}).status_code


def user_agents_seen(d, node):
    # the first Basic request costs an argon2id hash: seconds on a loaded machine
    r = d.get("/v1/clusters/default/nodes/%s?window=30" % node, auth=d.admin, timeout=30)
    assert r.status_code == 200, r.text
    return {p["user_agent"] for p in r.json()["node"].get("probes", [])}


def test_at_most_two_connections_per_daemon_while_sharing(fleet, pg_server):  # noqa: F811
    db = pg_server.create_database()
    a, b = fleet(pg_server.url(db), n=2)
    a.set_nodes(["web1"])
    wait_until(lambda: probe_code(b, "web1") == 200, PROPAGATION_TIMEOUT, "web1 on b")
    for i in range(20):  # probes shared, heartbeats, a write: every path used
        probe_as(a, "web1", "lb-a")
        probe_as(b, "web1", "lb-b")
        time.sleep(0.05)
    a.set_status({"web1": {"status": "drain"}})
    wait_until(lambda: {"lb-a", "lb-b"} <= user_agents_seen(b, "web1"), PROPAGATION_TIMEOUT,
               "both probers on b")
    seen = connections_by_daemon(pg_server, db)
    # two daemons: two main connections and two watch connections, no more
    assert seen == {"clustermgmt": "2", "clustermgmt-listen": "2"}, seen


def test_probes_shared_while_a_write_waits_for_the_write_lock(fleet, pg_server):  # noqa: F811
    """The write lock held from outside: a's write waits on its main
    connection (up to the store timeout), yet a's probe reports reach b
    meanwhile, because they do not queue behind the write."""
    db = pg_server.create_database()
    a, b = fleet(pg_server.url(db), n=2, extra=["--store-timeout", "12s"])
    a.set_nodes(["web1"])
    wait_until(lambda: probe_code(b, "web1") == 200, PROPAGATION_TIMEOUT, "web1 on b")
    user_agents_seen(b, "web1")  # b's first Basic request (an argon2id hash) done before
    holder = threading.Thread(target=pg_server.psql, args=(
        "SELECT pg_advisory_xact_lock(%d, %d), pg_sleep(8)" % (LOCK_CLASS, LOCK_WRITE), db))
    out = {}

    def write():
        t = time.monotonic()
        out["code"] = a.post("/v1/clusters/default/status", auth=a.as_admin, timeout=20,
                             json={"changes": {"web1": {"status": "drain"}}}).status_code
        out["s"] = time.monotonic() - t

    writer = threading.Thread(target=write)
    holder.start()
    try:
        time.sleep(0.5)  # the lock is taken
        writer.start()
        time.sleep(0.3)  # the write waits for it
        t0 = time.monotonic()
        probe_as(a, "web1", "lb-while-writing")
        wait_until(lambda: "lb-while-writing" in user_agents_seen(b, "web1"), 5.0,
                   "a's prober on b while a's write waits")
        seen_after = time.monotonic() - t0
        assert "s" not in out, "the write ended before the probe was seen: %r" % out
    finally:
        holder.join(30)
        if writer.is_alive() or writer.ident is not None:
            writer.join(30)
    assert out.get("code") == 200 and out["s"] > 5.0, out  # it did wait for the lock
    assert seen_after < 5.0


def probes_of(d, node, user_agent):
    r = d.get("/v1/clusters/default/nodes/%s?window=30" % node, auth=d.admin, timeout=30)
    assert r.status_code == 200, r.text
    return [p for p in r.json()["node"].get("probes", []) if p["user_agent"] == user_agent]


def test_a_report_changed_after_the_first_read_replaces_its_earlier_version(
        fleet, pg_server):  # noqa: F811
    """After its first (full) read a daemon reads only the reports written
    since: a prober's new answer reaches b within seconds (a full read
    comes only every minute), as one prober, not two."""
    db = pg_server.create_database()
    a, b = fleet(pg_server.url(db), n=2)
    a.set_nodes(["web1", "web2"])
    wait_until(lambda: probe_code(b, "web1") == 200, PROPAGATION_TIMEOUT, "web1 on b")
    probe_as(a, "web1", "lb-x")
    wait_until(lambda: [p["last_answer"] for p in probes_of(b, "web1", "lb-x")] == ["200 OK"],
               PROPAGATION_TIMEOUT, "lb-x serving on b")
    probe_as(a, "web2", "lb-y")  # a second read, with web1's report unchanged
    wait_until(lambda: len(probes_of(b, "web2", "lb-y")) == 1, PROPAGATION_TIMEOUT, "lb-y on b")
    a.set_status({"web1": {"status": "drain"}})
    wait_until(lambda: probe_code(a, "web1") != 200, PROPAGATION_TIMEOUT, "web1 drains on a")
    probe_as(a, "web1", "lb-x")
    t0 = time.monotonic()
    wait_until(lambda: [p["last_answer"] != "200 OK" for p in probes_of(b, "web1", "lb-x")] ==
               [True], 5.0, "lb-x's new answer on b")
    assert time.monotonic() - t0 < 5.0
    assert len(probes_of(b, "web2", "lb-y")) == 1  # kept, though not read again


def test_write_right_after_backends_terminated_is_not_refused(fleet, pg_server):  # noqa: F811
    """pg_terminate_backend on every connection of the daemon, then a
    write at once, ten times: the daemon reconnects once and the write
    succeeds (the docs' promise), it is not answered 503 because the watch
    thread thought the database gone."""
    db = pg_server.create_database()
    (a,) = fleet(pg_server.url(db))
    a.set_nodes(["web1"])
    for i in range(10):
        pg_server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE application_name LIKE 'clustermgmt%%' AND datname = '%s'" % db)
        r = a.post("/v1/clusters/default/status", auth=a.as_admin, timeout=10,
                   json={"changes": {"web1": {"status": "drain" if i % 2 == 0 else "online"}}})
        assert r.status_code == 200, (i, r.status_code, r.text)
    assert "PostgreSQL unreachable" not in a.log_text()


def names_on(d, cluster):
    """The cluster's node names on d; None while d does not have it."""
    r = d.get("/v1/clusters/%s/nodes" % cluster, auth=d.as_admin)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return {n["name"] for n in r.json()["nodes"]}


def test_a_change_reloads_only_what_it_wrote(fleet, pg_server):  # noqa: F811
    """A daemon told of a change reads again only the clusters written
    since its last load, and of those only the nodes written since, and
    keeps the rest as it has it: a row changed with the stamping trigger
    off stays unseen on b, until nodes are removed from its cluster
    (then b's merge comes out with more nodes than the store holds, and b
    reads everything)."""
    db = pg_server.create_database()
    a, b = fleet(pg_server.url(db), n=2)
    a.set_nodes(["web1", "web2", "web3"])
    r = a.post("/v1/clusters", auth=a.as_admin, json={"name": "small", "path": "/small"})
    assert r.status_code == 201, r.text
    a.set_nodes(["s1"], cluster="small")
    wait_until(lambda: names_on(b, "small") == {"s1"} and
               b.node_states("small") == {"s1": ("online", "")}, PROPAGATION_TIMEOUT,
               "small on b")
    pg_server.psql("ALTER TABLE nodes DISABLE TRIGGER nodes_stamp_xid; "
                   "UPDATE nodes SET reason = 'by hand' WHERE cluster = 'default' "
                   "AND name = 'web2'; ALTER TABLE nodes ENABLE TRIGGER nodes_stamp_xid", db)
    a.set_status({"s1": {"status": "drain"}}, cluster="small")
    wait_until(lambda: b.node_states("small")["s1"][0] == "drain", PROPAGATION_TIMEOUT,
               "small's change on b")
    assert b.node_states()["web2"] == ("online", "")  # default was not read again
    a.set_status({"web1": {"status": "drain", "reason": "deploy"}})
    wait_until(lambda: b.node_states()["web1"] == ("drain", "deploy"), PROPAGATION_TIMEOUT,
               "default's change on b")
    assert b.node_states()["web2"] == ("online", "")  # only web1 was read again
    a.set_nodes(["web1", "web2"])
    wait_until(lambda: "web3" not in b.node_states(), PROPAGATION_TIMEOUT, "web3 gone on b")
    assert b.node_states() == {"web1": ("drain", "deploy"), "web2": ("online", "by hand")}


def test_a_row_written_without_its_stamp_is_read_with_the_next_change(
        fleet, pg_server):  # noqa: F811
    """A node row written by a statement that does not stamp it (a daemon
    of an older version still connected during an upgrade, or a hand):
    the store's trigger stamps it, so the next change to its cluster that
    b reads (one its notification does not carry whole: here a node
    added), which makes b read the nodes written since, brings it too."""
    db = pg_server.create_database()
    a, b = fleet(pg_server.url(db), n=2)
    a.set_nodes(["web1", "web2"])
    wait_until(lambda: probe_code(b, "web1") == 200, PROPAGATION_TIMEOUT, "web1 on b")
    pg_server.psql("UPDATE nodes SET status = 'drain', reason = 'unstamped' "
                   "WHERE name = 'web2'", db)
    a.set_nodes(["web1", "web2", "web3"])
    wait_until(lambda: "web3" in b.node_states(), PROPAGATION_TIMEOUT, "a's change on b")
    assert b.node_states()["web2"] == ("drain", "unstamped")


def test_a_cluster_removed_and_made_again_is_read_anew(fleet, pg_server):  # noqa: F811
    """The same name, a new cluster (its version starts again at 1): b
    reads its new nodes and load balancers, not what it had."""
    db = pg_server.create_database()
    a, b = fleet(pg_server.url(db), n=2)
    for nodes in (["old1", "old2"], ["new1"]):
        r = a.post("/v1/clusters", auth=a.as_admin, json={"name": "shop", "path": "/shop"})
        assert r.status_code == 201, r.text
        a.set_nodes(nodes, cluster="shop")
        wait_until(lambda: names_on(b, "shop") == set(nodes), PROPAGATION_TIMEOUT,
                   "shop's nodes on b")
        if nodes[0] == "old1":
            r = a.delete("/v1/clusters/shop", auth=a.as_admin)
            assert r.status_code in (200, 204), r.text
            wait_until(lambda: b.get("/v1/clusters/shop/nodes", auth=b.as_admin).status_code
                       == 404, PROPAGATION_TIMEOUT, "shop gone on b")
    assert b.nodes("shop")["version"] == a.nodes("shop")["version"]
