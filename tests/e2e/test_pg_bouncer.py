"""
PgBouncer in transaction mode in front of PostgreSQL (issue 14, point 6):
LISTEN cannot work through it. A daemon whose --db goes through it alone
refuses to start and says to give --listen-db; with --listen-db straight
to PostgreSQL, writes go through the pooler and changes reach every
daemon at once.

The real pgbouncer (Debian), run by the test as the postgres user on
loopback and stopped by pid; every wait is bounded.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import pgcluster
from conftest import free_port
from test_postgres import fleet, probe_code, wait_until  # noqa: F401

PGBOUNCER = "/usr/sbin/pgbouncer"


@pytest.fixture
def bouncer(pg_server, tmp_path):
    if not os.path.exists(PGBOUNCER):
        pytest.skip("pgbouncer is not installed (sh tools/install-packages.sh pgbouncer)")
    # Not under tmp_path: the postgres user cannot enter pytest's 0700
    # directories.
    base = pathlib.Path(tempfile.mkdtemp(prefix="cm-bouncer-"))
    os.chmod(base, 0o755)
    shutil.chown(str(base), "postgres", "postgres")
    port = free_port()
    ini = base / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        "* = host=127.0.0.1 port=%d user=%s password=%s\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        "listen_port = %d\n"
        "unix_socket_dir =\n"
        "auth_type = any\n"
        "pool_mode = transaction\n"
        "max_client_conn = 100\n"
        "default_pool_size = 4\n"
        "logfile = %s\n"
        "pidfile = %s\n"
        % (pg_server.port, pgcluster.ROLE, pg_server.password, port, base / "log",
           base / "pid"))
    shutil.chown(str(ini), "postgres", "postgres")
    proc = subprocess.Popen(["runuser", "-u", "postgres", "--", PGBOUNCER, str(ini)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        proc.wait(5)
        log = (base / "log").read_text() if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail("pgbouncer did not listen within 10 s: %s" % log)
    yield port
    # SIGTERM: pgbouncer's immediate shutdown (SIGINT would wait for the
    # daemons' server connections, which stay open until they stop).
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    shutil.rmtree(base, ignore_errors=True)


def via(pg_server, port, db):
    return pg_server.url(db, hosts="127.0.0.1:%d" % port)


def test_db_through_transaction_pooler_alone_refuses_start_naming_listen_db(
        pg_server, bouncer, tmp_path, cm_bin):
    db = pg_server.create_database()
    pw = tmp_path / "pw"
    pw.write_text("secret-admin-pw")
    r = subprocess.run([cm_bin, "serve", "--listen", "127.0.0.1:%d" % free_port(),
                        "--db", via(pg_server, bouncer, db), "--admin-password-file", str(pw)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r.stderr
    assert "--listen-db" in r.stderr and "transaction" in r.stderr, r.stderr
    assert pg_server.password not in r.stderr


def test_writes_through_pooler_and_listen_db_direct_reach_every_daemon(
        fleet, pg_server, bouncer):  # noqa: F811
    db = pg_server.create_database()
    a, b = fleet(via(pg_server, bouncer, db), n=2, extra=["--listen-db", pg_server.url(db)])
    a.set_nodes(["web1"])
    wait_until(lambda: probe_code(b, "web1") == 200, 10.0, "web1 on b")
    for status, code in (("offline", 503), ("online", 200), ("drain", 503)):
        a.set_status({"web1": {"status": status}})
        wait_until(lambda: probe_code(b, "web1") == code, 10.0, "b to see %s" % status)


def test_listen_db_with_sqlite_store_is_a_usage_error(tmp_path, cm_bin):
    r = subprocess.run([cm_bin, "serve", "--db", str(tmp_path / "x.db"), "--listen-db",
                        "postgresql://localhost/x"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2, r.stderr
    assert "--listen-db goes with a PostgreSQL --db only" in r.stderr
