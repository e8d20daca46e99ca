"""
Several daemons on one PostgreSQL database (issue: "Many daemons, one
truth"): the backend, propagation, writers deciding against the stored
state, and fail-static behaviour while the database is away.

Every test starts a real PostgreSQL (tests/e2e/pgcluster.py) and real
daemons; every wait is bounded.
"""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

import pgcluster
from conftest import Daemon, assert_json_error, free_port, not_under_tsan, parse_logfmt

PROPAGATION_TIMEOUT = 10.0  # s: the periodic check alone would do it in ~2 s
RESYNC_TIMEOUT = 30.0  # s: reconnection backoff is capped at 5 s


def pg_daemon(tmp_path, url, name, admin_of=None, extra=None, start=True, state_dir=True):
    """A daemon on url; admin_of: another daemon whose admin password it
    shares (the first daemon on a database creates the admin)."""
    args = list(extra or [])
    if state_dir:
        args += ["--state-dir", str(tmp_path / name / "state")]
    d = Daemon(tmp_path / name, extra_args=args, start=False, db=url, template=False)
    if admin_of is not None:
        d.password = admin_of.password
        d.pw_file.write_text(d.password)
    if start:
        d.start()
    return d


@pytest.fixture
def fleet(tmp_path):
    made = []

    def factory(url, n=1, admin_of=None, **kw):
        out = []
        for _ in range(n):
            first = admin_of or (made[0] if made else None)
            d = pg_daemon(tmp_path, url, "d%d" % len(made), admin_of=first, **kw)
            made.append(d)
            out.append(d)
        return out

    try:
        yield factory
    finally:
        problems = [p for p in (d.close() for d in made) if p]
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


def wait_until(fn, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))


def probe_code(d, node):
    return d.probe(node, timeout=5).status_code


def health(d):
    r = d.get("/v1/health", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["store"]


def version_of(d, cluster="default"):
    return d.nodes(cluster)["version"]


# --- the backend ------------------------------------------------------------


def test_serve_on_postgres_keeps_state_across_restart(fleet, pg_url):
    (a,) = fleet(pg_url)
    a.set_nodes(["web1", "web2"])
    a.set_status({"web1": {"status": "offline", "reason": "disk"}})
    st = health(a)
    assert st["state"] == "ok" and st["shared"] is True and st["has_state"] is True
    assert isinstance(st["version"], int) and st["version"] >= 3
    a.stop()
    a.start()
    assert a.node_states()["web1"] == ("offline", "disk")
    assert probe_code(a, "web1") == 503 and probe_code(a, "web2") == 200
    entries = a.audit()
    assert any(e["node"] == "web1" and e["reason"] == "disk" for e in entries)


def test_password_never_in_logs_health_or_errors(fleet, pg_server, tmp_path):
    db = pg_server.create_database()
    url = pg_server.url(db)
    (a,) = fleet(url)
    a.set_nodes(["web1"])
    pw = pg_server.password
    assert pw in url
    assert pw not in a.get("/v1/health").text
    assert "127.0.0.1" in a.log_text() and db in a.log_text()  # the store is named ...
    assert pw not in a.log_text()  # ... without its password
    # The database refuses the password: the error names the store, not the secret.
    bad = pg_server.url(db).replace(pw, pw + "x")
    b = pg_daemon(tmp_path, bad, "wrongpw", admin_of=a)
    st = health(b)
    assert st["state"] == "unreachable" and st["has_state"] is False
    r = b.post("/v1/clusters/default/status", auth=b.admin,
               json={"changes": {"web1": {"status": "offline"}}})
    assert r.status_code in (401, 503)
    for text in (b.log_text(), b.get("/v1/health").text, r.text):
        assert pw not in text
    b.close()


def test_keyword_string_and_multi_host_url(fleet, pg_server):
    db = pg_server.create_database()
    kw = "host=127.0.0.1 port=%d dbname=%s user=cm password=%s" % (
        pg_server.port, db, pg_server.password)
    (a,) = fleet(kw)
    a.set_nodes(["web1"])
    # The first host refuses connections; target_session_attrs=read-write
    # picks the writable one of the rest.
    multi = pg_server.url(db, hosts="127.0.0.1:1,127.0.0.1:%d" % pg_server.port,
                          extra="?target_session_attrs=read-write")
    (b,) = fleet(multi)
    assert "web1" in b.node_states()
    b.set_status({"web1": {"status": "drain"}})
    wait_until(lambda: a.node_states()["web1"][0] == "drain", PROPAGATION_TIMEOUT,
               "a to see b's change")
    assert pg_server.password not in b.log_text()


def test_two_daemons_starting_together_migrate_once(pg_server, tmp_path):
    url = pg_server.url(pg_server.create_database())
    ds = [pg_daemon(tmp_path, url, "s%d" % i, start=False) for i in range(3)]
    ds[1].password = ds[2].password = ds[0].password
    for d in ds[1:]:
        d.pw_file.write_text(d.password)
    try:
        for d in ds:
            d.start(wait=False)
        for d in ds:
            d.wait_ready()
        db = url.rsplit("/", 1)[1]
        assert pg_server.psql("SELECT version FROM schema_version", db) == "16"
        assert pg_server.psql("SELECT count(*) FROM clusters", db) == "1"
        assert pg_server.psql("SELECT count(*) FROM audit WHERE action = 'cluster-add'",
                              db) == "1"
        assert pg_server.psql("SELECT count(*) FROM users", db) == "1"
        for d in ds:  # exactly one of them created the admin, with the shared password
            assert d.get("/v1/clusters", auth=d.admin).status_code == 200
    finally:
        problems = [p for p in (d.close() for d in ds) if p]
        assert not problems, problems


# --- propagation ----------------------------------------------------------------


def test_change_on_a_is_seen_by_b_and_c_probes(fleet, pg_url):
    a, b, c = fleet(pg_url, n=3)
    a.set_nodes(["web1", "web2"])
    for d in (b, c):
        wait_until(lambda: probe_code(d, "web1") == 200, PROPAGATION_TIMEOUT, "web1 known")
    a.set_status({"web1": {"status": "offline", "reason": "deploy"}})
    for d in (b, c):
        wait_until(lambda: probe_code(d, "web1") == 503, PROPAGATION_TIMEOUT,
                   "web1 out on %s" % d.url)
        assert d.node_states()["web1"] == ("offline", "deploy")
        assert health(d)["version"] == health(a)["version"]


def test_events_long_poll_on_b_wakes_for_a_change_on_a(fleet, pg_url):
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1"])
    v = wait_until(lambda: version_of(b) == version_of(a) and version_of(b), PROPAGATION_TIMEOUT,
                   "b at a's version")
    out = {}

    def poll():
        t0 = time.monotonic()
        out["r"] = b.get("/v1/clusters/default/events?after=%d&wait=20" % v, auth=b.admin,
                         timeout=30)
        out["t"] = time.monotonic() - t0

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)
    a.set_status({"web1": {"status": "drain"}})
    t.join(30)
    assert out["r"].status_code == 200, out["r"].text
    assert out["t"] < 15, "the long poll on b ran to its timeout: not woken"
    assert json.dumps(out["r"].json()).find("drain") >= 0


def test_events_delta_stamp_from_one_daemon_holds_on_another(fleet, pg_url):
    """The delta form's stamp is the store's version, the same on every
    daemon: a page whose poll goes to a, then to b (a balancer between
    them), is given every node changed since, by either."""
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1", "web2", "web3"])
    wait_until(lambda: version_of(b) == version_of(a), PROPAGATION_TIMEOUT, "b at a's version")

    def delta(d, after, since):
        r = d.get("/v1/clusters/default/events?after=%d&wait=0&answer=changed&since=%d"
                  % (after, since), auth=d.admin, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    first = delta(a, 0, 0)
    assert first["whole"] is True
    a.set_status({"web2": {"status": "offline", "reason": "via a"}})
    b.set_status({"web3": {"status": "drain", "reason": "via b"}})
    wait_until(lambda: version_of(b) == version_of(a) == first["version"] + 2,
               PROPAGATION_TIMEOUT, "both daemons at both changes")
    for d in (a, b):
        got = delta(d, first["version"], first["stamp"])
        assert got["whole"] is False, got
        assert {n["name"]: (n["status"], n["reason"]) for n in got["nodes"]} == \
            {"web2": ("offline", "via a"), "web3": ("drain", "via b")}, got


def test_terminated_listen_connection_still_picks_up_a_change(fleet, pg_server):
    db = pg_server.create_database()
    a, b = fleet(pg_server.url(db), n=2)
    a.set_nodes(["web1"])
    wait_until(lambda: probe_code(b, "web1") == 200, PROPAGATION_TIMEOUT, "web1 on b")
    # End every listening connection, then change at once, inside the gap.
    pg_server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE application_name = 'clustermgmt-listen'", db)
    a.set_status({"web1": {"status": "offline"}})
    wait_until(lambda: probe_code(b, "web1") == 503, PROPAGATION_TIMEOUT,
               "b to pick up the change made while it was not listening")


def test_state_damaged_by_hand_keeps_the_last_one_and_says_so(fleet, pg_server):
    db = pg_server.create_database()
    a, b = fleet(pg_server.url(db), n=2)
    a.set_nodes(["web1", "web2"])
    wait_until(lambda: probe_code(b, "web1") == 200, PROPAGATION_TIMEOUT, "web1 on b")
    # stamped by the store's trigger like any write (xid): b reads it
    # with a's next change to the cluster that it reads (a node added:
    # a status change would travel whole in its notification)
    pg_server.psql("ALTER TABLE nodes DROP CONSTRAINT nodes_status_check; "
                   "UPDATE nodes SET status = 'bogus' WHERE name = 'web2'", db)
    a.set_nodes(["web1", "web2", "web3"])  # b is told, and cannot read it
    line = "cannot read the store's new state: answering from the last one"
    wait_until(lambda: line in b.log_text(), PROPAGATION_TIMEOUT, "b to say so")
    assert 'damaged: unknown node status \\"bogus\\"' in b.log_text()  # logfmt quotes
    assert probe_code(b, "web1") == 200 and probe_code(b, "web2") == 200  # the last state
    assert "web3" not in b.node_states()
    time.sleep(2.5)  # a version check or two later: still failing, said once
    assert b.log_text().count(line) == 1
    pg_server.psql("UPDATE nodes SET status = 'online' WHERE name = 'web2'", db)
    wait_until(lambda: "web3" in b.node_states(), PROPAGATION_TIMEOUT,
               "b to read the repaired state at its next version check")
    assert "the store's state is readable again" in b.log_text()


# --- several writers ----------------------------------------------------------


def concurrently(*calls):
    out = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i, fn):
        barrier.wait(5)
        out[i] = fn()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_concurrent_if_version_on_two_daemons_exactly_one_wins(fleet, pg_url):
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1", "web2"])
    for round_ in range(5):
        v = wait_until(lambda: version_of(a) == version_of(b) and version_of(a),
                       PROPAGATION_TIMEOUT, "a and b at one version")
        body = lambda node: {"changes": {node: {"status": "offline" if round_ % 2 == 0
                                          else "online"}}, "if_version": v}
        ra, rb = concurrently(
            lambda: a.post("/v1/clusters/default/status", auth=a.admin, json=body("web1")),
            lambda: b.post("/v1/clusters/default/status", auth=b.admin, json=body("web2")))
        codes = sorted([ra.status_code, rb.status_code])
        assert codes == [200, 409], (ra.text, rb.text)
        assert version_of(a) == v + 1


def test_min_online_holds_across_daemons(fleet, pg_url):
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1", "web2", "web3"])
    wait_until(lambda: len(b.node_states()) == 3, PROPAGATION_TIMEOUT, "b to know the nodes")
    ra, rb = concurrently(
        lambda: a.post("/v1/clusters/default/status", auth=a.admin,
                       json={"changes": {"web1": {"status": "offline"}},
                             "min_online": 2}),
        lambda: b.post("/v1/clusters/default/status", auth=b.admin,
                       json={"changes": {"web2": {"status": "offline"}},
                             "min_online": 2}))
    assert sorted([ra.status_code, rb.status_code]) == [200, 409], (ra.text, rb.text)
    states = a.node_states()
    assert sum(1 for s, _ in states.values() if s == "online") == 2, states


def test_ttl_expiry_performed_and_audited_once(fleet, pg_url):
    ds = fleet(pg_url, n=3)
    a = ds[0]
    a.set_nodes(["web1"])
    for d in ds:
        wait_until(lambda: probe_code(d, "web1") == 200, PROPAGATION_TIMEOUT, "web1 known")
    a.set_status({"web1": {"status": "offline", "ttl": 1}})
    for d in ds:
        wait_until(lambda: probe_code(d, "web1") == 200, PROPAGATION_TIMEOUT,
                   "the TTL to bring web1 back on %s" % d.url)
    time.sleep(1.0)  # give a second expiry, if any, time to happen
    back = [e for e in a.audit() if e["node"] == "web1" and e["new_status"] == "online"
            and e["actor"] != "admin"]
    assert len(back) == 1, back


def test_user_created_on_a_works_on_b_and_removal_everywhere(fleet, pg_url):
    a, b = fleet(pg_url, n=2)
    user = a.make_user("ops", "operator")
    wait_until(lambda: b.get("/v1/clusters", auth=user).status_code == 200,
               PROPAGATION_TIMEOUT, "b to accept a's new user")
    tid, token = b.make_token("viewer")
    wait_until(lambda: a.get("/v1/clusters", auth=("bearer", token)).status_code == 200,
               PROPAGATION_TIMEOUT, "a to accept b's new token")
    assert b.delete("/v1/users/ops", auth=b.admin).status_code in (200, 204)
    wait_until(lambda: a.get("/v1/clusters", auth=user).status_code == 401,
               PROPAGATION_TIMEOUT, "a to refuse the removed user")


# --- durability -----------------------------------------------------------------


def test_kill9_right_after_acknowledged_write_loses_nothing(fleet, pg_url):
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1"])
    for i in range(5):
        a.set_status({"web1": {"status": "offline", "reason": "r%d" % i}})
        a.kill9()
        assert b.node_states()["web1"] == ("offline", "r%d" % i) or wait_until(
            lambda: b.node_states()["web1"] == ("offline", "r%d" % i), PROPAGATION_TIMEOUT,
            "b to see the acknowledged write")
        a.start()
        assert a.node_states()["web1"] == ("offline", "r%d" % i)


# --- fail-static ------------------------------------------------------------------


class ProbeLoad:
    """Probes every daemon without pause on a thread each; counts answers
    other than the expected one."""

    def __init__(self, daemons, node, expect):
        self.stop = threading.Event()
        self.errors = []
        self.count = 0
        self.threads = [threading.Thread(target=self.run, args=(d, node, expect))
                        for d in daemons]

    def run(self, d, node, expect):
        s = requests.Session()
        while not self.stop.is_set():
            try:
                r = s.get("%s/health?node=%s" % (d.url, node), timeout=5)
                if r.status_code != expect:
                    self.errors.append((d.url, r.status_code, r.text[:100]))
            except requests.RequestException as e:
                self.errors.append((d.url, repr(e)))
            self.count += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10)


def test_postgres_stopped_under_probe_load_then_back(fleet, pg_own_server):
    pg = pg_own_server
    url = pg.url(pg.create_database())
    a, b = fleet(url, n=2)
    a.set_nodes(["web1", "web2"])
    a.set_status({"web2": {"status": "offline", "reason": "kept"}})
    wait_until(lambda: probe_code(b, "web2") == 503, PROPAGATION_TIMEOUT, "b in sync")
    marks = [d.log_mark() for d in (a, b)]
    with ProbeLoad([a, b], "web1", 200) as load:
        pg.stop("immediate")
        for d in (a, b):
            wait_until(lambda: health(d)["state"] == "unreachable", RESYNC_TIMEOUT,
                       "%s to notice the outage" % d.url)
            t0 = time.monotonic()
            r = d.post("/v1/clusters/default/status", auth=d.admin,
                       json={"changes": {"web1": {"status": "offline"}}})
            elapsed = time.monotonic() - t0
            body = assert_json_error(r, 503)
            assert "nothing was changed" in body["error"], body
            # at once, not after a connection attempt (connect_timeout 5 s);
            # room for a stall of 2 s
            assert elapsed < 4.0, "a write during the outage took %.1f s" % elapsed
            assert "since" in health(d)
            assert probe_code(d, "web2") == 503  # reads from memory unchanged
            assert d.node_states()["web2"] == ("offline", "kept")
        time.sleep(2.5)  # several reconnection attempts and periodic checks
        pg.start()
        for d in (a, b):
            wait_until(lambda: health(d)["state"] == "ok", RESYNC_TIMEOUT,
                       "%s to resynchronise by itself" % d.url)
    assert load.count > 50
    assert load.errors == [], load.errors[:5]
    for d, mark in zip((a, b), marks):
        # The watch thread marks the store up, then logs it: health may say
        # "ok" a moment before the line is written.
        assert d.wait_log("PostgreSQL reachable again", since=mark, timeout=10)
        log = d.log_text(mark)
        assert log.count("PostgreSQL unreachable") == 1, log
        assert log.count("PostgreSQL reachable again") == 1, log
    b.set_status({"web1": {"status": "drain"}})
    wait_until(lambda: a.node_states()["web1"][0] == "drain", PROPAGATION_TIMEOUT,
               "a to see b's change after the outage")


def test_a_quiet_daemon_back_from_an_outage_does_not_fail_on_its_old_connection(
        fleet, pg_own_server):
    """PostgreSQL restarted while nothing was written: the engine's
    connection ended during the outage without being used. Once the
    daemon says the store is back, it stays back: the first use of that
    connection finds it ended and replaces it, instead of failing (a
    second "unreachable", and a write answered 503 although the store
    answers)."""
    pg = pg_own_server
    url = pg.url(pg.create_database())
    (a,) = fleet(url)
    a.set_nodes(["web1"])
    mark = a.log_mark()
    pg.stop("immediate")
    wait_until(lambda: health(a)["state"] == "unreachable", RESYNC_TIMEOUT,
               "the daemon to notice the outage")
    pg.start()
    wait_until(lambda: health(a)["state"] == "ok", RESYNC_TIMEOUT, "the store back")
    r = a.post("/v1/clusters/default/status", auth=a.as_admin,
               json={"changes": {"web1": {"status": "drain"}}})
    assert r.status_code == 200, r.text
    assert a.wait_log("PostgreSQL reachable again", since=mark, timeout=10)
    time.sleep(1.0)  # the reload the reconnection asked for, and the next check
    log = a.log_text(mark)
    assert log.count("PostgreSQL unreachable") == 1, log
    assert log.count("PostgreSQL reachable again") == 1, log
    assert health(a)["state"] == "ok"


def test_restart_during_outage_serves_local_copy(fleet, pg_own_server):
    pg = pg_own_server
    url = pg.url(pg.create_database())
    (a,) = fleet(url)
    a.set_nodes(["web1", "web2"])
    a.set_status({"web2": {"status": "offline", "reason": "kept"}})
    a.stop()
    pg.stop("fast")
    a.start()
    assert health(a)["state"] == "unreachable"
    assert health(a)["has_state"] is True
    assert probe_code(a, "web1") == 200 and probe_code(a, "web2") == 503
    assert "local state copy" in a.log_text()
    r = a.post("/v1/clusters/default/status", auth=a.admin,
               json={"changes": {"web1": {"status": "offline"}}})
    assert_json_error(r, 503)
    pg.start()
    wait_until(lambda: health(a)["state"] == "ok", RESYNC_TIMEOUT, "a to reconnect")
    a.set_status({"web1": {"status": "drain"}})
    assert probe_code(a, "web1") == 503


def test_started_with_neither_postgres_nor_copy_says_so_and_retries(fleet, pg_own_server,
                                                                    tmp_path):
    pg = pg_own_server
    url = pg.url(pg.create_database())
    (a,) = fleet(url)  # creates the schema, the admin and the default cluster
    a.set_nodes(["web1"])
    pg.stop("fast")
    agent_port = free_port()
    b = pg_daemon(tmp_path, url, "fresh", admin_of=a,
                  extra=["--agent-listen", "127.0.0.1:%d" % agent_port])
    try:
        st = health(b)
        assert st["state"] == "unreachable" and st["has_state"] is False
        r = b.probe("web1")
        assert r.status_code == 503
        assert "no state" in r.text and "unreachable" in r.text
        with socket.create_connection(("127.0.0.1", agent_port), timeout=5) as sock:
            sock.sendall(b"web1\n")
            line = sock.makefile().readline()
        assert line.startswith("down") and "no state" in line, line
        assert "no local state copy" in b.log_text()
        pg.start()
        wait_until(lambda: probe_code(b, "web1") == 200, RESYNC_TIMEOUT,
                   "b to load the state once PostgreSQL is back")
        assert health(b)["has_state"] is True
    finally:
        problem = b.close()
        assert problem is None, problem


# --- failover ------------------------------------------------------------------------


def test_failover_to_promoted_standby_loses_no_acknowledged_write(fleet, pg_own_server):
    """Primary and a synchronous streaming standby; daemons on a multi-host
    URL. Stop the primary, promote the standby: probes answer throughout,
    the daemons reconnect to the new primary and accept writes again, and
    every acknowledged write is there."""
    primary = pg_own_server
    db = primary.create_database()
    standby = pgcluster.make_standby(primary)
    try:
        primary.psql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        primary.psql("SELECT pg_reload_conf()")
        wait_until(lambda: primary.psql("SELECT count(*) FROM pg_stat_replication "
                                        "WHERE sync_state = 'sync'") == "1",
                   RESYNC_TIMEOUT, "the standby to be synchronous")
        url = primary.url(db, hosts="127.0.0.1:%d,127.0.0.1:%d" % (primary.port, standby.port),
                          extra="?target_session_attrs=read-write")
        a, b = fleet(url, n=2)
        a.set_nodes(["web1", "web2"])
        wait_until(lambda: probe_code(b, "web1") == 200, PROPAGATION_TIMEOUT, "b in sync")
        acked = []
        stop = threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    r = a.post("/v1/clusters/default/status", auth=a.admin, timeout=10,
                               json={"changes": {"web2": {"status": "drain",
                                                          "reason": "w%d" % i}}})
                    if r.status_code == 200:
                        acked.append("w%d" % i)
                except requests.RequestException:
                    pass
                time.sleep(0.02)

        with ProbeLoad([a, b], "web1", 200) as load:
            t = threading.Thread(target=writer)
            t.start()
            wait_until(lambda: len(acked) >= 5, PROPAGATION_TIMEOUT, "writes before failover")
            primary.stop("immediate")
            n_before = len(acked)
            pgcluster.promote(standby)
            wait_until(lambda: len(acked) > n_before + 5, RESYNC_TIMEOUT,
                       "writes to be accepted by the new primary")
            stop.set()
            t.join(30)
            for d in (a, b):
                wait_until(lambda: health(d)["state"] == "ok" and
                           health(d)["version"] == health(a)["version"], RESYNC_TIMEOUT,
                           "%s on the new primary" % d.url)
        assert load.errors == [], load.errors[:5]
        stored = set(standby.psql("SELECT reason FROM audit WHERE node = 'web2'", db).split())
        lost = [w for w in acked if w not in stored]
        assert lost == [], "acknowledged writes lost in the failover: %s" % lost[:10]
        last = acked[-1]
        assert b.node_states()["web2"] == ("drain", last) or wait_until(
            lambda: b.node_states()["web2"] == ("drain", last), PROPAGATION_TIMEOUT,
            "b to show the last write")
    finally:
        standby.cleanup()


# --- moving over ------------------------------------------------------------------


def store_copy(cm_bin, src, dst, *extra):
    return subprocess.run([cm_bin, "store", "copy", "--from", src, "--to", dst] + list(extra),
                          capture_output=True, text=True, timeout=60)


def snapshot_of(d):
    """Everything a copy must keep, as the API shows it."""
    audit = [{k: v for k, v in e.items() if k != "id"} for e in d.audit(limit=1000)]
    users = d.get("/v1/users", auth=d.admin).json()
    tokens = d.get("/v1/tokens", auth=d.admin).json()
    return d.nodes(), audit, users, tokens


def test_store_copy_sqlite_to_postgres_and_back(tmp_path, pg_server, cm_bin):
    src = Daemon(tmp_path / "sqlite", bin_path=cm_bin, template=False)
    try:
        src.set_nodes(["web1", "web2", "web3"])
        src.set_status({"web1": {"status": "offline", "reason": "disk"},
                        "web2": {"status": "drain", "ttl": 3600}})
        user = src.make_user("ops", "operator")
        _, token = src.make_token("viewer", "ci")
        before = snapshot_of(src)
        src.stop()

        db = pg_server.create_database()
        url = pg_server.url(db)
        r = store_copy(cm_bin, src.db, url)
        assert r.returncode == 0, r.stderr
        assert "copied" in r.stdout and "3 nodes" in r.stdout
        assert pg_server.password not in r.stdout + r.stderr

        on_pg = pg_daemon(tmp_path, url, "onpg", admin_of=src)
        assert snapshot_of(on_pg) == before
        assert on_pg.get("/v1/clusters", auth=user).status_code == 200
        assert on_pg.get("/v1/clusters", auth=("bearer", token)).status_code == 200
        assert probe_code(on_pg, "web1") == 503

        # A destination that holds something is refused, and left as it was.
        r = store_copy(cm_bin, src.db, url)
        assert r.returncode == 1 and "not empty" in r.stderr and "--force" in r.stderr
        assert pg_server.password not in r.stderr
        on_pg.set_status({"web3": {"status": "offline", "reason": "on pg"}})
        after_pg = snapshot_of(on_pg)
        on_pg.stop()

        back = str(tmp_path / "back.db")
        r = store_copy(cm_bin, url, back)
        assert r.returncode == 0, r.stderr
        d2 = Daemon(tmp_path / "back", bin_path=cm_bin, db=back, start=False, template=False)
        d2.password = src.password
        d2.pw_file.write_text(d2.password)
        d2.start()
        try:
            assert snapshot_of(d2) == after_pg
        finally:
            d2.stop()

        # --force replaces what the destination holds.
        r = store_copy(cm_bin, src.db, url, "--force")
        assert r.returncode == 0, r.stderr
        on_pg.start()
        assert snapshot_of(on_pg) == before
        on_pg.stop()
    finally:
        problem = src.close()
        assert problem is None, problem


def test_store_copy_usage_errors(cm_bin, tmp_path):
    r = subprocess.run([cm_bin, "store", "copy", "--from", str(tmp_path / "a.db")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--from and --to" in r.stderr
    r = subprocess.run([cm_bin, "store", "copy", "--from", "postgresql://cm:pw@127.0.0.1:1/x",
                        "--to", str(tmp_path / "b.db")], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1 and "unreachable" in r.stderr and ":pw@" not in r.stderr


# --- observed probes across daemons -------------------------------------------------


class Prober:
    """A load balancer's health check of one node through one daemon,
    every 100 ms, that can be paused."""

    def __init__(self, d, node, user_agent):
        self.d, self.node, self.ua = d, node, user_agent
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        s = requests.Session()
        while not self.stop.is_set():
            if not self.paused.is_set():
                try:
                    s.get("%s/health?node=%s" % (self.d.url, self.node), timeout=5,
                          headers={"User-Agent": self.ua})
                except requests.RequestException:
                    pass
            time.sleep(0.1)

    def close(self):
        self.stop.set()
        self.thread.join(10)


def probers_of(d, node):
    r = d.get("/v1/clusters/default/nodes/%s?window=30" % node, auth=d.admin)
    assert r.status_code == 200, r.text
    return {(p["user_agent"], p["daemon"]): p for p in r.json()["node"]["probes"]}


def test_wait_drained_sees_probers_of_every_daemon(fleet, pg_url, cm_bin):
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1"])
    # (no probe of our own: it would be one more prober for wait to wait on)
    wait_until(lambda: "web1" in b.node_states(), PROPAGATION_TIMEOUT, "b in sync")
    lb1, lb2 = Prober(a, "web1", "lb1"), Prober(b, "web1", "lb2")
    try:
        # Either daemon shows both probers, each with the daemon that saw it.
        for d in (a, b):
            seen = wait_until(lambda: len(probers_of(d, "web1")) == 2 and probers_of(d, "web1"),
                              PROPAGATION_TIMEOUT, "both probers on %s" % d.url)
            daemons = {ua: dm for ua, dm in seen}
            assert daemons["lb1"].endswith(":127.0.0.1:%d" % a.port), daemons
            assert daemons["lb2"].endswith(":127.0.0.1:%d" % b.port), daemons
        page = a.get("/health/managenodes", auth=a.admin)  # the page says who saw lb2
        assert page.status_code == 200
        assert "via <code>%s</code>" % daemons["lb2"] in page.text
        env = dict(os.environ, CLUSTERMGMT_URL=a.url, CLUSTERMGMT_USER="admin",
                   CLUSTERMGMT_PASSWORD=a.password)
        lb2.paused.set()  # lb2 (through b) does not see the change yet
        a.set_status({"web1": {"status": "offline", "reason": "deploy"}})
        r = subprocess.run([cm_bin, "wait", "web1", "--drained", "--fall", "2", "--timeout",
                            "3s"], env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)
        assert "lb2" in r.stderr, r.stderr  # named: the prober a never saw itself
        lb2.paused.clear()
        r = subprocess.run([cm_bin, "wait", "web1", "--drained", "--fall", "2", "--timeout",
                            "20s"], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        seen = probers_of(a, "web1")
        assert all(p["since_change"] >= 2 and not p["serving"] for p in seen.values()), seen
        for d in (a, b):
            assert "cannot share" not in d.log_text()
    finally:
        lb1.close()
        lb2.close()


def heartbeat_seen(a, b):
    """b's last heartbeat as a shows it (None before a lists b)."""
    return fleet_of(a)[0].get(str(b.port), {}).get("heartbeat_at")


def shared_statements_outlive(fleet, pg_server, breaks, what):
    """Two daemons whose heartbeats and probes exchange run as prepared
    statements (pg_side_exec_kept), b probed for web1 and a seeing it; each
    of breaks(db) then breaks them on the server in its own way, and b's
    heartbeats must resume after each, and a prober first reported after
    the last must be seen on a. Returns (a, b)."""
    db = pg_server.create_database()
    a, b = fleet(pg_server.url(db), n=2)
    a.set_nodes(["web1"])
    wait_until(lambda: "web1" in b.node_states(), PROPAGATION_TIMEOUT, "b in sync")
    lb1, lb2 = Prober(b, "web1", "lb1"), None
    try:
        wait_until(lambda: {ua for ua, _ in probers_of(a, "web1")} == {"lb1"},
                   PROPAGATION_TIMEOUT, "lb1 (through b) seen on a")
        for brk in breaks:
            beat = wait_until(lambda: heartbeat_seen(a, b), PROPAGATION_TIMEOUT,
                              "b listed on a")
            brk(db)
            wait_until(lambda: heartbeat_seen(a, b) not in (None, beat), PROPAGATION_TIMEOUT,
                       "b's heartbeats again after %s, seen on a" % what)
        lb2 = Prober(b, "web1", "lb2")
        wait_until(lambda: {ua for ua, _ in probers_of(a, "web1")} == {"lb1", "lb2"},
                   PROPAGATION_TIMEOUT, "lb2, first seen after %s, on a" % what)
    finally:
        lb1.close()
        if lb2 is not None:
            lb2.close()
    return a, b


def test_the_fleets_statements_are_prepared_again_on_a_new_connection(fleet, pg_server):
    """On a new listening connection the statements are prepared again:
    every listening connection ended twice (the second time, connections
    that prepared again), and nothing fails to share."""
    def cut(db):
        pg_server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE application_name = 'clustermgmt-listen'", db)

    a, b = shared_statements_outlive(fleet, pg_server, [cut, cut], "the cut")
    for d in (a, b):
        assert "cannot share" not in d.log_text(), d.log_text()[-2000:]


def test_prepared_statements_a_schema_change_broke_are_prepared_again(fleet, pg_server):
    """A newer daemon may change the schema under the prepared statements
    of the running ones (a rolling upgrade): PostgreSQL then refuses them
    ("cached plan must not change result type"). The daemon drops them and
    prepares them again."""
    def retype(db):  # read by the heartbeat and the probes exchange
        pg_server.psql("ALTER TABLE probes_version ALTER COLUMN version TYPE numeric", db)

    _, b = shared_statements_outlive(fleet, pg_server, [retype], "the change")
    assert "must not change result type" in b.log_text()  # what it recovered from


# --- the fleet -------------------------------------------------------------------------


def fleet_of(d):
    r = d.get("/v1/daemons", auth=d.admin)
    assert r.status_code == 200, r.text
    return {x["id"].rsplit(":", 1)[1]: x for x in r.json()["daemons"]}, r.json()


def test_daemons_listed_with_lag_and_stale(fleet, pg_url, cm_bin):
    a, b = fleet(pg_url, n=2, extra=["--stale-after", "4s"])
    a.set_nodes(["web1"])
    ports = {str(a.port), str(b.port)}
    for d in (a, b):
        ds, doc = wait_until(lambda: set(fleet_of(d)[0]) == ports and
                             all(x["lag_versions"] == 0 for x in fleet_of(d)[0].values()) and
                             fleet_of(d), PROPAGATION_TIMEOUT, "both daemons, caught up")
        assert ds[str(d.port)]["self"] is True
        assert not any(x["stale"] for x in ds.values())
        assert doc["stale_after_s"] == 4
        assert ds[str(a.port)]["listen"] == "127.0.0.1:%d" % a.port
    assert a.get("/v1/daemons").status_code == 401  # viewer and up
    # b frozen: it neither beats nor applies a's changes.
    os.kill(b.proc.pid, signal.SIGSTOP)
    try:
        a.set_status({"web1": {"status": "offline"}})
        # At once, not at a's next heartbeat: a knows the version it wrote.
        ds, doc = fleet_of(a)
        assert ds[str(b.port)]["lag_versions"] == 1, ds
        assert ds[str(a.port)]["lag_versions"] == 0, ds
        assert ds[str(a.port)]["version"] == doc["store_version"], (ds, doc)
        ds, _ = wait_until(lambda: fleet_of(a)[0][str(b.port)]["stale"] and fleet_of(a),
                           PROPAGATION_TIMEOUT, "b to show stale")
        assert ds[str(b.port)]["lag_versions"] >= 1
        assert ds[str(b.port)]["lag_seconds"] > 0
        env = dict(os.environ, CLUSTERMGMT_URL=a.url, CLUSTERMGMT_USER="admin",
                   CLUSTERMGMT_PASSWORD=a.password)
        r = subprocess.run([cm_bin, "daemons"], env=env, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        assert "stale" in r.stdout and str(b.port) in r.stdout and "this one" in r.stdout
    finally:
        os.kill(b.proc.pid, signal.SIGCONT)
    wait_until(lambda: not fleet_of(a)[0][str(b.port)]["stale"] and
               fleet_of(a)[0][str(b.port)]["lag_versions"] == 0, PROPAGATION_TIMEOUT,
               "b to catch up")
    page = b.get("/", auth=b.admin)  # the web page shows the fleet too
    assert page.status_code == 200, page.text[:300]
    assert "Daemons" in page.text
    assert ":127.0.0.1:%d</code> (this one)" % b.port in page.text
    assert ":127.0.0.1:%d</code>" % a.port in page.text


def test_daemons_on_sqlite_is_this_one(daemon):
    r = daemon.get("/v1/daemons", auth=daemon.admin)
    assert r.status_code == 200, r.text
    (d,) = r.json()["daemons"]
    assert d["self"] is True and d["stale"] is False and d["lag_versions"] == 0
    assert d["listen"] == "127.0.0.1:%d" % daemon.port


def test_removing_every_cluster_on_a_is_not_undone_by_b(fleet, pg_url):
    """The default cluster is created on an empty store at start only; a
    daemon reloading another's change never re-creates it."""
    a, b = fleet(pg_url, n=2)
    r = a.delete("/v1/clusters/default", auth=a.admin)
    assert r.status_code == 200, r.text
    wait_until(lambda: b.get("/v1/clusters", auth=b.admin).json()["clusters"] == [],
               PROPAGATION_TIMEOUT, "b to see no cluster")
    time.sleep(2.5)  # a periodic version check later, still none
    for d in (a, b):
        assert d.get("/v1/clusters", auth=d.admin).json()["clusters"] == []


# --- web sessions across daemons ----------------------------------------------------


def test_web_session_works_on_every_daemon_and_sign_out_ends_it_everywhere(fleet, pg_url):
    from ui_helpers import login_session, page_csrf

    a, b, c = fleet(pg_url, n=3)
    cookie = login_session(a, "admin", a.password).cookies.get("cm_session")

    def page_on(d):
        return requests.get(d.url + "/", cookies={"cm_session": cookie},
                            allow_redirects=False, timeout=10)

    assert page_on(a).status_code == 200
    for d in (b, c):
        wait_until(lambda: page_on(d).status_code == 200, PROPAGATION_TIMEOUT,
                   "%s to know the session started on a" % d.url)
    # A form rendered by a is accepted by b: the CSRF token is the same on
    # every daemon. Signing out on b ends the session on a and c too.
    r = requests.post(b.url + "/logout", data={"csrf": page_csrf(page_on(a).text)},
                      cookies={"cm_session": cookie}, allow_redirects=False, timeout=10)
    assert (r.status_code, r.headers["Location"]) == (303, "/login")
    assert page_on(b).status_code == 303
    for d in (a, c):
        wait_until(lambda: page_on(d).status_code == 303, PROPAGATION_TIMEOUT,
                   "%s to end the session signed out on b" % d.url)
    time.sleep(1.5)  # later exchanges do not bring it back
    assert [page_on(d).status_code for d in (a, b, c)] == [303, 303, 303]
    for d in (a, b, c):
        assert "cannot share" not in d.log_text()


# --- sharing at scale ---------------------------------------------------------


def test_probes_of_more_nodes_than_one_batch_seen_by_each_daemon_visible_from_every_other(
        fleet, pg_url):
    daemons = fleet(pg_url, n=3)
    names = ["web%d" % i for i in range(600)]  # more than one share batch (512)
    daemons[0].set_nodes(names)
    for d in daemons:
        wait_until(lambda: "web599" in d.node_states(), PROPAGATION_TIMEOUT, "nodes on %s" % d.url)
    # A user agent with what an array literal must escape.
    agents = ['lb-a "quoted"', "lb-b \\back\\slash", "lb-c {brace},comma"]
    for d, ua in zip(daemons, agents):
        s = requests.Session()
        for n in names:
            assert s.get(d.url + "/health?node=" + n, headers={"User-Agent": ua},
                         timeout=5).status_code == 200
    for d in daemons:
        for n in ("web0", "web311", "web599"):
            wait_until(lambda: sorted(ua for ua, _ in probers_of(d, n)) == sorted(agents),
                       PROPAGATION_TIMEOUT, "three probers of %s on %s" % (n, d.url))


def peer_metric(d, name):
    r = d.get("/metrics")
    assert r.status_code == 200, r.text
    m = re.search(r"^%s (\d+)$" % name, r.text, re.M)
    assert m, r.text
    return int(m.group(1))


def test_a_daemon_reads_only_the_probes_of_what_it_is_asked_about(fleet, pg_url):
    a, b = fleet(pg_url, n=2)
    names = ["web%d" % i for i in range(50)]
    a.set_nodes(names)
    wait_until(lambda: "web49" in b.node_states(), PROPAGATION_TIMEOUT, "nodes on b")
    s = requests.Session()
    for n in names:
        assert s.get(a.url + "/health?node=" + n, headers={"User-Agent": "lb-a"},
                     timeout=5).status_code == 200
    stored = "SELECT count(*) FROM probes WHERE user_agent = 'lb-a'"
    wait_until(lambda: subprocess.run(["psql", pg_url, "-Atc", stored], check=True,
                                      capture_output=True, text=True,
                                      timeout=30).stdout.strip() == "50",
               PROPAGATION_TIMEOUT, "a's 50 reports in the store")
    # Nobody asked b about any node: it read none of a's reports.
    assert peer_metric(b, "clustermgmt_peer_probe_interest") == 0
    assert peer_metric(b, "clustermgmt_peer_probe_reports") == 0
    # The first question about a node is answered with every daemon's
    # prober of it: b reads that node's reports before it answers.
    seen = probers_of(b, "web7")
    assert [ua for ua, _ in seen] == ["lb-a"], seen
    assert [dm for _, dm in seen][0].endswith(":127.0.0.1:%d" % a.port), seen
    assert peer_metric(b, "clustermgmt_peer_probe_interest") == 1
    assert peer_metric(b, "clustermgmt_peer_probe_reports") == 1
    # The same for several nodes at once, and for a drain judgement.
    r = b.get("/v1/clusters/default/observations?nodes=web8,web9&window=30", auth=b.admin)
    assert r.status_code == 200, r.text
    assert [[p["user_agent"] for p in n["probes"]] for n in r.json()["nodes"]] == [["lb-a"]] * 2
    r = b.get("/v1/clusters/default/nodes/web10/serving?wait=0&fall=1", auth=b.admin)
    assert r.status_code == 200, r.text
    assert peer_metric(b, "clustermgmt_peer_probe_reports") == 4
    # A whole cluster's view (its load balancers', the page) reads all of it.
    r = b.get("/v1/clusters/default/lbs", auth=b.admin)
    assert r.status_code == 200, r.text
    assert peer_metric(b, "clustermgmt_peer_probe_interest") == 1
    assert peer_metric(b, "clustermgmt_peer_probe_reports") == 50
    # What a reads later reaches b while it keeps asking.
    a.set_status({"web7": {"status": "offline", "reason": "deploy"}})
    wait_until(lambda: b.node_states()["web7"][0] == "offline", PROPAGATION_TIMEOUT, "b has it")
    assert s.get(a.url + "/health?node=web7", headers={"User-Agent": "lb-a"},
                 timeout=5).status_code == 503
    wait_until(lambda: [p["last_answer"] for p in probers_of(b, "web7").values()] ==
               ["503 node is offline"], PROPAGATION_TIMEOUT, "a's new answer on b")


def test_notification_older_than_the_applied_version_causes_no_reload(fleet, pg_url):
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1"])
    a.set_nodes(["web1", "web2"])
    wait_until(lambda: version_of(b) == version_of(a), PROPAGATION_TIMEOUT, "b at a's version")
    before = health(b)["reloads"]
    subprocess.run(["psql", pg_url, "-qc", "SELECT pg_notify('clustermgmt', '1')"],
                   check=True, capture_output=True, timeout=30)
    # Notifications arrive in commit order: once b has this write, it has
    # had the stale one too.
    a.set_status({"web1": {"status": "offline", "reason": "deploy"}})
    wait_until(lambda: b.node_states()["web1"][0] == "offline", PROPAGATION_TIMEOUT, "b has it")
    # and that one travelled whole in its notification: no read at all
    assert health(b)["reloads"] == before


def test_a_status_change_travels_in_its_notification_and_anything_else_is_read(fleet, pg_url):
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1", "web2"])
    wait_until(lambda: version_of(b) == version_of(a), PROPAGATION_TIMEOUT, "b at a's version")
    reloads, applied = health(b)["reloads"], health(b)["changes_applied"]
    # A status change: b applies what the notification carried.
    a.set_status({"web1": {"status": "offline", "reason": "deploy \"v2\" é"}})
    wait_until(lambda: version_of(b) == version_of(a), PROPAGATION_TIMEOUT, "b has it")
    assert health(b)["reloads"] == reloads
    assert health(b)["changes_applied"] == applied + 1
    assert b.nodes()["nodes"] == a.nodes()["nodes"]  # every field, as stored
    # A node list change is read from the store.
    a.set_nodes(["web1", "web2", "web3"])
    wait_until(lambda: version_of(b) == version_of(a), PROPAGATION_TIMEOUT, "b has web3")
    assert health(b)["reloads"] == reloads + 1
    assert health(b)["changes_applied"] == applied + 1
    # b writes on what it applied; a applies b's change the same way.
    a_applied = health(a)["changes_applied"]
    b.set_status({"web2": {"status": "drain", "ttl": 600}})
    wait_until(lambda: version_of(a) == version_of(b), PROPAGATION_TIMEOUT, "a has it")
    assert health(a)["changes_applied"] == a_applied + 1
    assert a.nodes()["nodes"] == b.nodes()["nodes"]
    # What a daemon cannot apply is skipped: what is not a change, a
    # change that does not start at its version.
    reloads = health(b)["reloads"]
    v = health(b)["version"]
    for payload in ('{', '{"from":1}', '"x"', json.dumps({
            "from": v - 5, "version": v + 1, "cluster": "default", "cluster_version": 99,
            "nodes": []})):
        notify_change(pg_url, payload)
    a.set_status({"web3": {"status": "offline"}})
    wait_until(lambda: version_of(b) == version_of(a), PROPAGATION_TIMEOUT, "b has web3 off")
    assert b.nodes()["nodes"] == a.nodes()["nodes"]
    assert health(b)["reloads"] == reloads
    # One that starts at its version and names what it lacks says its
    # model is not the store's: it reads the store.
    v = health(b)["version"]
    notify_change(pg_url, json.dumps({
        "from": v, "version": v + 1, "cluster": "default", "cluster_version": 99,
        "nodes": [{"name": "ghost", "status": "offline", "reason": "", "changed_by": "x",
                   "changed_at": 1, "expires_at": 0, "address": None, "check": None}]}))
    a.set_status({"web3": {"status": "online"}})
    wait_until(lambda: version_of(b) == version_of(a), PROPAGATION_TIMEOUT, "b has web3 on")
    assert b.nodes()["nodes"] == a.nodes()["nodes"]
    assert health(b)["reloads"] == reloads + 1


def test_a_reload_merges_added_and_changed_nodes_across_chunks(fleet, pg_url):
    """A reload reads only the nodes written since and merges them into
    the daemon's list, which lies in chunks of 64 (model_nodes.c): nodes
    added between others, and a node changed in place, must come out as
    stored."""
    a, b = fleet(pg_url, n=2)
    names = ["n%03d" % i for i in range(0, 300, 2)]
    a.set_nodes(names)
    wait_until(lambda: version_of(b) == version_of(a), PROPAGATION_TIMEOUT, "b has 150 nodes")
    reloads = health(b)["reloads"]
    a.set_nodes(names + ["n%03d" % i for i in range(1, 300, 6)])
    wait_until(lambda: version_of(b) == version_of(a), PROPAGATION_TIMEOUT, "b has 200 nodes")
    assert health(b)["reloads"] == reloads + 1
    assert b.nodes()["nodes"] == a.nodes()["nodes"]
    # more changed nodes than a notification carries (64): read, and
    # only known names, merged in place
    changed = {"n%03d" % i: {"status": "drain", "reason": "r%d" % i} for i in range(0, 300, 4)}
    a.set_status(changed)
    wait_until(lambda: version_of(b) == version_of(a), PROPAGATION_TIMEOUT, "b has the drains")
    assert health(b)["reloads"] == reloads + 2
    assert b.nodes()["nodes"] == a.nodes()["nodes"]
    assert sum(n["status"] == "drain" for n in b.nodes()["nodes"]) == len(changed)


def notify_change(pg_url, payload):
    subprocess.run(["psql", pg_url, "-qc",
                    "SELECT pg_notify('clustermgmt_change', %s)" % sql_literal(payload)],
                   check=True, capture_output=True, timeout=30)


def sql_literal(text):
    return "'" + text.replace("'", "''") + "'"


def test_daemons_creating_the_first_admin_together_show_only_the_stored_password(pg_url,
                                                                                 tmp_path):
    # Started at once on a new database with no --admin-password-file, each
    # finds no user and generates a password; argon2id hashing holds each one
    # long enough that they race to store it. Only the one stored may be shown.
    ds = []
    for i in range(3):
        d = Daemon(tmp_path / ("g%d" % i), start=False, db=pg_url, template=False,
                   password_file=False)
        ds.append(d)
    threads = [threading.Thread(target=d.start) for d in ds]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        created = []
        for d in ds:  # started: its start-up work is logged
            d.wait_log(r"clustermgmt started", timeout=10)
            for line in d.log_lines():
                if "created user admin with a generated password" in line:
                    created.append(parse_logfmt(line)["password"])
        assert len(created) == 1, [d.log_text() for d in ds]
        for d in ds:
            assert d.get("/v1/clusters", auth=("admin", created[0])).status_code == 200
    finally:
        for d in ds:
            d.close()



@not_under_tsan
def test_a_quiet_daemon_on_postgres_sleeps_between_its_rounds(fleet, pg_server, pg_url):
    """A quiet daemon on PostgreSQL makes one statement every 2 s, its
    heartbeat: it carries the watch thread's version check and the
    probes' version (three statements before), and no thread wakes on a
    timer of its own in between (about 110 wake-ups in 5 s before the
    ticks went, 50 before the heartbeat carried the rest, 30 now)."""
    from test_serve import thread_wakeups

    db = pg_url.split("?")[0].rsplit("/", 1)[1]
    pg_server.psql("ALTER DATABASE \"%s\" SET log_statement = 'all'" % db)
    (a,) = fleet(pg_url)
    a.set_nodes(["web1"])
    time.sleep(5)  # the fleet's reads slow down to their idle pace
    mark, before = os.path.getsize(pg_server.logfile), thread_wakeups(a.proc.pid)
    time.sleep(6)
    woken = thread_wakeups(a.proc.pid) - before
    statements = re.findall(r"LOG:  (?:statement|execute [^:]*): (.{0,60})",
                            pg_server._log(mark))
    assert len(statements) <= 4, "a quiet daemon's statements in 6 s: %s" % statements
    assert all(s.startswith("WITH me AS") for s in statements), statements
    assert woken <= 60, "a quiet daemon's threads woke %d times in 6 s" % woken
