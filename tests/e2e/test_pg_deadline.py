"""
Writes with a deadline (issue 14, point 4): every store operation ends
within serve --store-timeout; past it the write is answered 503, the
query cancelled and its connection reset, and nothing is applied later.
/v1/health says "slow" (with the round trip) or "unreachable".

The database that goes away runs in a network namespace this test
creates (a veth pair; PostgreSQL started with ip netns exec), blackholed
with iptables DROP in both directions, connections left open. The slow
database sits behind a small TCP relay in the test that delays every
chunk (this kernel has no netem). Every wait is bounded.
"""

import json
import os
import random
import re
import select
import shutil
import socket
import subprocess
import threading
import time

import pytest

import pgcluster
from conftest import assert_json_error, parse_logfmt
from test_postgres import fleet, health, wait_until  # noqa: F401

LOGFMT_LINE = re.compile(r'^[^\s="]+=("(?:[^"\\]|\\.)*"|[^\s"]*)( [^\s="]+=("(?:[^"\\]|\\.)*"|[^\s"]*))*$')
STALL = 2.0  # s: room for a loaded machine


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip("%s is not installed (sh tools/install-packages.sh %s)" % (tool, tool))


def run(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, "%s: %s %s" % (argv, r.stdout, r.stderr)


class Namespace:
    """A network namespace joined to this one by a veth pair: the host
    side is .host_ip, the namespace's .ns_ip."""

    def __init__(self):
        tag = "%06x" % random.getrandbits(24)
        self.name = "cmdl" + tag
        self.veth = "cmv" + tag
        a, b = random.randrange(16, 250), random.randrange(0, 63) * 4
        self.host_ip, self.ns_ip = "10.%d.%d.1" % (a, b), "10.%d.%d.2" % (a, b)
        run(["ip", "netns", "add", self.name])
        try:
            run(["ip", "link", "add", self.veth + "h", "type", "veth", "peer", "name",
                 self.veth + "n"])
            run(["ip", "link", "set", self.veth + "n", "netns", self.name])
            run(["ip", "addr", "add", self.host_ip + "/30", "dev", self.veth + "h"])
            run(["ip", "link", "set", self.veth + "h", "up"])
            self.exec(["ip", "addr", "add", self.ns_ip + "/30", "dev", self.veth + "n"])
            self.exec(["ip", "link", "set", self.veth + "n", "up"])
            self.exec(["ip", "link", "set", "lo", "up"])
        except Exception:
            self.close()
            raise

    def exec(self, argv):
        run(["ip", "netns", "exec", self.name] + argv)

    def blackhole(self, port, on=True):
        """Drops every packet to and from port (connections stay open)."""
        op = "-A" if on else "-D"
        self.exec(["iptables", op, "INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"])
        self.exec(["iptables", op, "OUTPUT", "-p", "tcp", "--sport", str(port), "-j", "DROP"])

    def close(self):
        subprocess.run(["ip", "link", "del", self.veth + "h"], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)


class NsPgServer(pgcluster.PgServer):
    """A PgServer listening only on the namespace's address."""

    def __init__(self, ns):
        self.ns = ns
        super().__init__()

    def _initdb(self):
        super()._initdb()
        with open(os.path.join(self.data, "pg_hba.conf"), "a") as f:
            f.write("host all all %s/32 scram-sha-256\n" % self.ns.host_ip)

    def start(self, port=None):
        self.port = self.port or pgcluster._free_port()
        r = subprocess.run(
            ["ip", "netns", "exec", self.ns.name, "runuser", "-u", pgcluster.PG_USER, "--",
             self._bin("pg_ctl"), "-D", self.data, "-l", self.logfile, "-o",
             "-p %d -c listen_addresses=%s" % (self.port, self.ns.ns_ip), "-w", "-t", "30",
             "start"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, "PostgreSQL did not start: %s %s\n%s" % (
            r.stdout, r.stderr, self._log())
        self.pid = self._read_pid()
        return self

    def url(self, db, hosts=None, extra=""):
        return super().url(db, hosts or "%s:%d" % (self.ns.ns_ip, self.port), extra)


@pytest.fixture
def ns_pg():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    need("iptables")
    if not pgcluster.pg_available():
        pytest.skip("PostgreSQL is not installed")
    ns = Namespace()
    server = None
    try:
        server = NsPgServer(ns)
        server.start()
        server.ensure_role()
        yield server
    finally:
        if server is not None:
            server.cleanup()
        ns.close()


class Relay:
    """A TCP relay on loopback to (host, port) that delays every chunk,
    each way, by .delay seconds (changeable at any time), keeping order."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.delay = 0.0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closing = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            self.conns += [c, s]
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        import queue
        q = queue.Queue()

        def sender():
            while True:
                due, data = q.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    dst.sendall(data)
                except OSError:
                    break
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        threading.Thread(target=sender, daemon=True).start()
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            q.put((time.monotonic() + self.delay, data or None))
            if not data:
                return

    def close(self):
        self.closing = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def write(d, status, node="web1", timeout=30):
    """A status write; returns (response, seconds it took)."""
    t0 = time.monotonic()
    r = d.post("/v1/clusters/default/status", auth=d.as_admin,
               json={"changes": {node: {"status": status}}}, timeout=timeout)
    return r, time.monotonic() - t0


def stored_status(pg, db, node="web1"):
    return pg.psql("SELECT status FROM nodes WHERE cluster = 'default' AND name = '%s'"
                   % node, db)


def audit_count(pg, db, new_status):
    return int(pg.psql("SELECT count(*) FROM audit WHERE new_status = '%s'" % new_status, db))


def assert_lines_parse(d):
    for line in d.log_lines():
        assert LOGFMT_LINE.match(line), "not logfmt: %r" % line
        assert {"ts", "level", "msg"} <= set(parse_logfmt(line)), line


# --- a blackholed database ---------------------------------------------------


def test_blackholed_store_writes_answer_503_within_deadline_and_none_lands(fleet, ns_pg):  # noqa: F811
    pg = ns_pg
    db = pg.create_database()
    (d,) = fleet(pg.url(db), extra=["--store-timeout", "2s"])
    d.set_nodes(["web1"])
    pg.ns.blackhole(pg.port)
    try:
        t_hole = time.monotonic()
        for status in ("offline", "drain", "offline"):
            r, took = write(d, status)
            assert_json_error(r, 503)
            assert took < 2.0 + 1.0 + STALL, "a write took %.1f s" % took
        wait_until(lambda: health(d)["state"] == "unreachable", 2.0 + 2.0 + STALL,
                   "health to say unreachable")
        assert time.monotonic() - t_hole < 3 * (3.0 + STALL) + 4.0 + STALL
        r = d.get("/v1/health", timeout=5)  # answered from memory, at once
        assert r.status_code == 200
    finally:
        pg.ns.blackhole(pg.port, on=False)
    t_heal = time.monotonic()
    wait_until(lambda: health(d)["state"] == "ok", 10.0, "health ok after the heal")
    wait_until(lambda: write(d, "drain", timeout=10)[0].status_code == 200, 10.0,
               "a write after the heal")
    assert time.monotonic() - t_heal < 10.0 + STALL
    # The writes of the blackhole never landed: the write that succeeded
    # took the write lock, so their transactions had ended.
    assert stored_status(pg, db) == "drain"
    assert audit_count(pg, db, "offline") == 0
    d.stop()
    assert_lines_parse(d)


# --- a slow database ---------------------------------------------------------


@pytest.fixture
def relay(pg_server):
    """Tests ask for it before `fleet`, so that their daemons stop while it
    still relays: a daemon stopping in the middle of a statement through a
    relay that went silent waits for that statement's deadline."""
    r = Relay("127.0.0.1", pg_server.port)
    yield r
    r.close()


def test_slow_store_health_says_slow_with_round_trip(relay, fleet, pg_server):  # noqa: F811
    db = pg_server.create_database()
    (d,) = fleet(pg_server.url(db, hosts="127.0.0.1:%d" % relay.port),
                 extra=["--store-timeout", "2s"])
    assert health(d)["state"] == "ok"
    relay.delay = 0.15  # each way: a round trip above 300 ms, the threshold 200 ms
    st = wait_until(lambda: (lambda h: h if h["state"] == "slow" else None)(health(d)),
                    10.0, "health to say slow")
    assert st["round_trip_ms"] > 200, st
    relay.delay = 0.0
    wait_until(lambda: health(d)["state"] == "ok", 10.0, "health ok again")


def test_slow_store_write_within_deadline_succeeds_past_it_503_never_applied(
        relay, fleet, pg_server):  # noqa: F811
    db = pg_server.create_database()
    url = pg_server.url(db, hosts="127.0.0.1:%d" % relay.port)
    (patient,) = fleet(url, extra=["--store-timeout", "30s"])
    (hasty,) = fleet(url, extra=["--store-timeout", "1s"])
    patient.set_nodes(["web1", "web2"])
    relay.delay = 0.25  # a write of ~10 round trips: ~5 s
    r, took = write(hasty, "offline", node="web2")
    assert_json_error(r, 503)
    assert took < 1.0 + 1.0 + STALL, "the hasty write took %.1f s" % took
    r, took = write(patient, "drain", node="web1", timeout=60)
    assert r.status_code == 200, r.text
    relay.delay = 0.0
    # The patient write took the write lock after the hasty one's
    # transaction ended: that one is rolled back, not applied later.
    r, _ = write(patient, "online", node="web1")
    assert r.status_code == 200, r.text
    assert stored_status(pg_server, db, "web2") == "online"
    assert audit_count(pg_server, db, "offline") == 0


# --- Idempotency-Key -----------------------------------------------------------


def keyed_write(d, status, key, node="web1"):
    return d.post("/v1/clusters/default/status", auth=d.as_admin,
                  json={"changes": {node: {"status": status}}},
                  headers={"Idempotency-Key": key}, timeout=10)


def test_retry_with_same_idempotency_key_applied_at_most_once(fleet, pg_url):  # noqa: F811
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1"])
    r = keyed_write(a, "offline", "deploy-42-step-1")
    assert r.status_code == 200, r.text
    a.set_status({"web1": {"status": "online"}})
    # The retry, on another daemon of the store: answered as applied, and
    # web1 stays as the later write left it.
    r = keyed_write(b, "offline", "deploy-42-step-1")
    assert r.status_code == 200, r.text
    assert a.node_states()["web1"][0] == "online"
    offline = [e for e in a.audit() if e.get("new_status") == "offline"]
    assert len(offline) == 1, offline


def test_seed_setstatus_retry_with_same_idempotency_key_applied_once(fleet, pg_url):  # noqa: F811
    (a,) = fleet(pg_url)
    a.set_nodes(["web1"])
    for _ in range(2):
        r = a.post("/health/++rest++setstatus", auth=a.as_admin,
                   data=json.dumps({"web1": {"status": "drain"}}),
                   headers={"Content-Type": "application/json", "Idempotency-Key": "k1"},
                   timeout=10)
        assert r.status_code == 200, r.text
        a.set_status({"web1": {"status": "online"}})
    assert a.node_states()["web1"][0] == "online"
    assert len([e for e in a.audit() if e.get("new_status") == "drain"]) == 1


def test_malformed_idempotency_key_is_400_and_changes_nothing(fleet, pg_url):  # noqa: F811
    (a,) = fleet(pg_url)
    a.set_nodes(["web1"])
    for key in ("", "has space", "x" * 129):
        body = assert_json_error(keyed_write(a, "offline", key), 400)
        assert "Idempotency-Key" in body["error"], body
    assert a.node_states()["web1"][0] == "online"
