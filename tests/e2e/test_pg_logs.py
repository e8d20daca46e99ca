"""
Logs stay lines on PostgreSQL (issue 14, point 5): what libpq and the
server say outside a query's answer (a terminated backend's FATAL, a
standby's WARNING) goes through the daemon's logger with a level, so that
every line of the log parses as logfmt, or as JSON with --log-format json.

Every test starts a real PostgreSQL of its own and a real daemon; every
wait is bounded.
"""

import json
import os
import re
import subprocess
import time

import pytest

from conftest import parse_logfmt
import pgcluster
from pgcluster import PG_USER
from test_postgres import fleet, health, pg_daemon, wait_until  # noqa: F401

LOGFMT_LINE = re.compile(r'^[^\s="]+=("(?:[^"\\]|\\.)*"|[^\s"]*)( [^\s="]+=("(?:[^"\\]|\\.)*"|[^\s"]*))*$')
RESYNC_TIMEOUT = 30.0  # s: reconnection backoff is capped at 5 s


def parse_line(line, fmt):
    if fmt == "json":
        kv = json.loads(line)
        assert isinstance(kv, dict), line
    else:
        assert LOGFMT_LINE.match(line), "not logfmt: %r" % line
        kv = parse_logfmt(line)
    assert {"ts", "level", "msg"} <= set(kv), line
    assert kv["level"] in ("debug", "info", "warn", "error"), line
    return kv


def terminate_daemon_backends(pg, db, application_name="clustermgmt%"):
    """Terminates the daemons' backends on db: by default both of each
    daemon's connections ('clustermgmt', 'clustermgmt-listen')."""
    pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name LIKE '%s' AND datname = '%s'" % (application_name, db))


def backends(pg, db, where=""):
    return int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' "
                       "AND application_name LIKE 'clustermgmt%%' %s" % (db, where)))


def wait_for_both_connections(pg, db):
    """The listening connection is made by its own thread after the daemon
    starts: a test that terminates it must see it first."""
    wait_until(lambda: backends(pg, db, "AND application_name = 'clustermgmt'") == 1 and
               backends(pg, db, "AND application_name = 'clustermgmt-listen'") == 1,
               RESYNC_TIMEOUT, "the daemon's two connections")


def assert_terminated_line(d, mark):
    """Since mark, d's log has the terminated backend's FATAL as one error
    line, with PostgreSQL's severity and SQLSTATE as fields of their own."""
    line = d.wait_log(r"terminating connection due to administrator command", since=mark,
                      timeout=10)
    assert line, d.log_text(mark)
    kv = parse_line(line, "logfmt")
    assert kv["level"] == "error", line
    assert kv.get("severity") == "FATAL" and kv.get("sqlstate") == "57P01", line


def write_code(d, status):
    r = d.post("/v1/clusters/default/status", auth=d.as_admin,
               json={"changes": {"web1": {"status": status}}}, timeout=10)
    return r.status_code


def failover(d, pg, db):
    """Backends terminated under the daemon while idle, then the primary
    restarted: the two ways a failover reaches the daemon's connections."""
    d.set_nodes(["web1"])
    terminate_daemon_backends(pg, db)
    wait_until(lambda: write_code(d, "drain") == 200, RESYNC_TIMEOUT, "a write after the backends were terminated")
    port = pg.port
    pg.stop("fast")
    wait_until(lambda: health(d)["state"] == "unreachable", RESYNC_TIMEOUT, "the outage noticed")
    pg.start(port=port)
    wait_until(lambda: health(d)["state"] == "ok", RESYNC_TIMEOUT, "the store back")
    wait_until(lambda: write_code(d, "online") == 200, RESYNC_TIMEOUT, "a write after the restart")


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_every_log_line_parses_through_a_failover(fleet, pg_own_server, fmt):  # noqa: F811
    pg = pg_own_server
    db = pg.create_database()
    (d,) = fleet(pg.url(db), extra=["--log-format", fmt])
    failover(d, pg, db)
    d.stop()
    lines = d.log_lines()
    assert lines
    for line in lines:
        parse_line(line, fmt)


def test_terminated_backend_fatal_is_an_error_line(fleet, pg_own_server):  # noqa: F811
    pg = pg_own_server
    db = pg.create_database()
    (d,) = fleet(pg.url(db))
    d.set_nodes(["web1"])
    wait_for_both_connections(pg, db)
    mark = d.log_mark()
    terminate_daemon_backends(pg, db)
    assert_terminated_line(d, mark)


def test_listening_backend_ended_in_a_query_is_an_error_line(fleet, pg_own_server):  # noqa: F811
    """The listening connection's backend terminated while that connection
    waits for a query's answer (its periodic version check, held behind a
    lock): the FATAL then comes as the query's answer, not as a notice,
    and is logged all the same."""
    pg = pg_own_server
    db = pg.create_database()
    (d,) = fleet(pg.url(db), extra=["--store-timeout", "20s"])
    d.set_nodes(["web1"])
    wait_for_both_connections(pg, db)
    # Holds the lock for at most 15 s by itself; ended sooner below.
    locker = subprocess.Popen(
        ["runuser", "-u", PG_USER, "--", pg._bin("psql"), "-X", "-q", "-h", pg.sockdir,
         "-p", str(pg.port), "-d", db, "-c",
         "BEGIN; LOCK TABLE store_version IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(15); COMMIT"],
        env=dict(os.environ, PGAPPNAME="lock-holder"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: backends(pg, db, "AND application_name = 'clustermgmt-listen' "
                                    "AND wait_event_type = 'Lock'") == 1,
                   10, "the version check waiting behind the lock")
        mark = d.log_mark()
        terminate_daemon_backends(pg, db, "clustermgmt-listen")
        assert_terminated_line(d, mark)
    finally:
        pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'lock-holder'")
        locker.wait(timeout=30)


def test_main_connection_ended_while_idle_is_logged_and_replaced(fleet, pg_own_server):  # noqa: F811
    """Only the main connection's backend terminated (the listening one
    stays): the next write finds it ended before its first statement,
    logs the backend's FATAL as an error line, connects again and is
    applied; the store never counts as down."""
    pg = pg_own_server
    db = pg.create_database()
    (d,) = fleet(pg.url(db))
    d.set_nodes(["web1"])
    mark = d.log_mark()
    terminate_daemon_backends(pg, db, "clustermgmt")  # the main connection alone
    time.sleep(0.5)  # the FATAL and the end of the stream reach the idle socket
    assert write_code(d, "drain") == 200
    assert_terminated_line(d, mark)
    assert "unreachable" not in d.log_text(mark), d.log_text(mark)


def test_a_clean_stop_declares_no_outage(fleet, pg_server):  # noqa: F811
    """Stopping the daemon cuts its connections and any connection attempt
    under way: that is no outage, and the log must not say the database
    is unreachable (an operator reading the log after a restart would
    look for a database problem that never was). Stopped 4 times, two of
    them right after its backends were terminated (the watch thread is
    then reconnecting)."""
    for i in range(4):
        db = pg_server.create_database()
        (d,) = fleet(pg_server.url(db))
        d.set_nodes(["web1"])
        if i % 2 == 1:
            terminate_daemon_backends(pg_server, db)
        d.stop()
        assert "unreachable" not in d.log_text(), d.log_text()


def test_listening_on_a_standby_says_why(fleet, pg_own_server):  # noqa: F811
    """--listen-db on a standby: the server answers but refuses LISTEN
    during recovery. The daemon starts (fail-static) and, when it declares
    the store unreachable, the log says the server's reason rather than
    that no connection could be made."""
    primary = pg_own_server
    db = primary.create_database()
    standby = pgcluster.make_standby(primary)
    try:
        (d,) = fleet(primary.url(db), extra=["--listen-db", standby.url(db)])
        line = d.wait_log(r"cannot check that notifications arrive", timeout=10)
        assert line and "cannot execute LISTEN during recovery" in line, d.log_text()
        line = d.wait_log(r"PostgreSQL unreachable", timeout=RESYNC_TIMEOUT)
        assert line, d.log_text()
        kv = parse_line(line, "logfmt")
        assert "cannot execute LISTEN during recovery" in kv["error"], line
        assert "cannot connect" not in kv["error"], line
    finally:
        standby.cleanup()
