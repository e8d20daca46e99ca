"""
A real PostgreSQL server for the end-to-end tests (a pytest plugin: the
fixtures below are imported by conftest.py).

PostgreSQL refuses to run as root, so initdb and postgres run as the
`postgres` user the Debian package creates (`runuser -u postgres --`), in
a temporary directory that user owns. The server listens on a free
loopback port (another is tried when the port is taken meanwhile) and on
a Unix socket in its own directory. It is stopped by process id; every
wait is bounded.

  pg_server        fixture (session): one running PgServer per test
                   process; each test takes a database of its own
  pg_url           fixture: postgresql://cm:PASSWORD@127.0.0.1:PORT/<fresh db>
  PgServer(...)    .start() .stop(mode) .kill() .url(db) .psql(sql, db)
                   .create_database() .port .data .pid
  pg_available()   whether the PostgreSQL binaries are installed

Password authentication (scram-sha-256) is on for TCP, so that the tests
see a real password in every URL they give the daemon.
"""

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

PG_USER = "postgres"
ROLE = "cm"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def pg_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return os.path.dirname(found[-1]) if found else None


def pg_available():
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return False
    return pg_bindir() is not None


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(["runuser", "-u", PG_USER, "--"] + list(argv), **kw)


class PgServer:
    """One PostgreSQL cluster in a temporary directory owned by postgres."""

    _counter = 0

    def __init__(self, base=None, password=None, data=None, initdb=True):
        self.bindir = pg_bindir()
        self.password = password or secrets.token_urlsafe(12)
        if base is None:
            base = tempfile.mkdtemp(prefix="cm-pg-")
            os.chmod(base, 0o755)
            self._own_base = True
        else:
            self._own_base = False
        self.base = base
        self.data = data or os.path.join(base, "data")
        self.sockdir = os.path.join(base, "sock")
        self.logfile = os.path.join(base, "server.log")
        self.port = None
        self.pid = None
        uid = pwd.getpwnam(PG_USER)
        os.makedirs(self.sockdir, exist_ok=True)
        os.chown(base, uid.pw_uid, uid.pw_gid)
        os.chown(self.sockdir, uid.pw_uid, uid.pw_gid)
        if initdb:
            self._initdb()

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def _initdb(self):
        pwfile = os.path.join(self.base, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password)
        uid = pwd.getpwnam(PG_USER)
        os.chown(pwfile, uid.pw_uid, uid.pw_gid)
        r = as_postgres([self._bin("initdb"), "-D", self.data, "-U", PG_USER, "-E", "UTF8",
                         "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
                         "--pwfile", pwfile], timeout=120)
        os.unlink(pwfile)
        assert r.returncode == 0, "initdb failed: %s %s" % (r.stdout, r.stderr)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# clustermgmt tests\n"
                    "fsync = on\n"
                    "max_connections = 100\n"
                    "shared_buffers = 16MB\n"
                    "listen_addresses = '127.0.0.1'\n"
                    "unix_socket_directories = '%s'\n"
                    "log_min_messages = warning\n"
                    "wal_level = replica\n"
                    "max_wal_senders = 4\n"
                    "hot_standby = on\n" % self.sockdir)
        with open(os.path.join(self.data, "pg_hba.conf"), "a") as f:
            f.write("host replication all 127.0.0.1/32 scram-sha-256\n")

    # --- process control ----------------------------------------------

    def running(self):
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def start(self, port=None):
        """Starts the server; when the port is taken, tries another
        (unless one was asked for). Bounded."""
        assert not self.running(), "PostgreSQL already running"
        fixed = port is not None or self.port is not None
        for attempt in range(5):
            self.port = port or self.port or _free_port()
            mark = os.path.getsize(self.logfile) if os.path.exists(self.logfile) else 0
            r = as_postgres([self._bin("pg_ctl"), "-D", self.data, "-l", self.logfile,
                             "-o", "-p %d" % self.port, "-w", "-t", str(int(START_TIMEOUT)),
                             "start"], timeout=START_TIMEOUT + 10)
            if r.returncode == 0:
                self.pid = self._read_pid()
                return self
            log = self._log(mark)
            if not fixed and ("could not bind" in log or "already in use" in log):
                self.port = None
                continue
            raise AssertionError("PostgreSQL did not start: %s %s\n%s" % (r.stdout, r.stderr, log))
        raise AssertionError("PostgreSQL: no free port after 5 tries")

    def _log(self, since=0):
        try:
            with open(self.logfile, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def _read_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline().strip())

    def stop(self, mode="fast"):
        """Stops by pid: fast (SIGINT), immediate (SIGQUIT) or smart
        (SIGTERM); waits (bounded) until the process is gone."""
        if not self.running():
            self.pid = None
            return
        sig = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT,
               "smart": signal.SIGTERM}[mode]
        os.kill(self.pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
            time.sleep(0.2)
        self.pid = None

    def kill(self):
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
        self.pid = None

    def cleanup(self):
        self.stop("immediate")
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    # --- SQL -----------------------------------------------------------

    def psql(self, sql, db="postgres", check=True):
        """Runs sql as the superuser over the Unix socket; returns stdout
        (unaligned, tuples only)."""
        r = as_postgres([self._bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                         "-h", self.sockdir, "-p", str(self.port), "-d", db, "-c", sql],
                        timeout=30)
        if check:
            assert r.returncode == 0, "psql %r: %s" % (sql, r.stderr)
        return r.stdout.strip()

    def ensure_role(self):
        self.psql("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') "
                  "THEN CREATE ROLE %s LOGIN REPLICATION PASSWORD '%s'; END IF; END$$"
                  % (ROLE, ROLE, self.password))

    def create_database(self, template=None):
        """A new database owned by the test role; with template, a copy of
        that database (which nobody may be connected to)."""
        PgServer._counter += 1
        name = "cm_%d_%d" % (os.getpid(), PgServer._counter)
        self.ensure_role()
        self.psql("CREATE DATABASE %s OWNER %s%s"
                  % (name, ROLE, "" if template is None else " TEMPLATE " + template))
        return name

    def url(self, db, hosts=None, extra=""):
        hosts = hosts or "127.0.0.1:%d" % self.port
        return "postgresql://%s:%s@%s/%s%s" % (ROLE, self.password, hosts, db, extra)


@pytest.fixture(scope="session")
def pg_server():
    if not pg_available():
        pytest.skip("PostgreSQL is not installed (sh tools/install-packages.sh postgresql)")
    server = PgServer()
    try:
        server.start()
        server.ensure_role()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the session's server, as a URL with a
    password."""
    if not pg_server.running():  # a test stopped it: bring it back
        pg_server.start()
    return pg_server.url(pg_server.create_database())


@pytest.fixture
def pg_own_server():
    """A server of this test's own, for tests that stop or kill it."""
    if not pg_available():
        pytest.skip("PostgreSQL is not installed")
    server = PgServer()
    try:
        server.start()
        server.ensure_role()
        yield server
    finally:
        server.cleanup()


# --- the existing suites, on PostgreSQL ------------------------------------------
#
# A test module re-runs another module's tests against PostgreSQL with
#
#     from test_api_v1 import *  # noqa: F401,F403  (the tests themselves)
#     daemon, make_daemon, shared_daemon = pgcluster.daemon_fixtures()
#
# Module-level fixtures win over conftest's, so every daemon those tests
# start gets a fresh database of the session's server instead of an SQLite
# file (a restart keeps its database). The admin password stays per daemon,
# as each daemon has a database of its own.


def pg_template(pg_server, t, bin_path):
    """The name of a database of pg_server holding a copy of the template
    store t (`clustermgmt store copy`, once per server and template); each
    test's database is then a copy of it (CREATE DATABASE ... TEMPLATE),
    which is cheaper than copying the store again."""
    made = pg_server.__dict__.setdefault("templates", {})
    if t not in made:
        name = pg_server.create_database()
        r = subprocess.run([bin_path, "store", "copy", "--from", str(t.db),
                            "--to", pg_server.url(name)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, "store copy of the template: %s" % r.stderr
        made[t] = name
    return made[t]


def daemon_fixtures():
    from conftest import BEARER, Daemon, _Template, _close_all  # conftest imports this module

    def on_pg(pg_server, tmp, cm_bin, template=True, **kw):
        """A daemon on a fresh database; like conftest's, a new store is a
        copy of the template store (`clustermgmt store copy` from the
        template's SQLite file), with its admin password and token."""
        if not pg_server.running():
            pg_server.start()
        d = Daemon(tmp, bin_path=cm_bin, start=False, db="", template=False, **kw)
        if template and d.pw_file is not None:
            t = _Template.get(d.bin, None if template is True else template)
            d.db = pg_server.url(pg_server.create_database(template=pg_template(pg_server, t, d.bin)))
            d.password = t.password
            d.admin_token = (BEARER, t.token)
            d.helper_token_id = t.token_id
            d.template_data = t.data
            d.pw_file.write_text(d.password)
        else:
            d.db = pg_server.url(pg_server.create_database())
        return d

    @pytest.fixture
    def daemon(tmp_path, cm_bin, pg_server):
        d = on_pg(pg_server, tmp_path / "daemon", cm_bin)
        try:
            d.start()
            yield d
        finally:
            _close_all([d])

    @pytest.fixture
    def make_daemon(tmp_path, cm_bin, pg_server):
        made = []

        def factory(extra_args=None, **kw):
            d = on_pg(pg_server, tmp_path / ("d%d" % len(made)), cm_bin,
                      extra_args=extra_args, **kw)
            made.append(d)
            d.start()
            return d

        try:
            yield factory
        finally:
            _close_all(made)

    @pytest.fixture(scope="module")
    def shared_daemon(tmp_path_factory, cm_bin, pg_server):
        d = on_pg(pg_server, tmp_path_factory.mktemp("shared"), cm_bin)
        try:
            d.start()
            yield d
        finally:
            _close_all([d])

    return daemon, make_daemon, shared_daemon


DAEMON_FIXTURES = {"daemon", "make_daemon", "shared_daemon"}


def keep_daemon_tests(namespace, skip=()):
    """Removes from a module namespace the imported tests that start no
    daemon (nothing to prove on PostgreSQL) and those named in skip (tests
    about SQLite itself). A test starts a daemon when it, or a module
    fixture it uses, takes one of DAEMON_FIXTURES."""
    import inspect

    def params(fn):
        fn = getattr(fn, "__wrapped__", fn)
        try:
            return set(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            return set()

    uses = set(DAEMON_FIXTURES)
    changed = True
    while changed:  # fixtures that use daemon fixtures, transitively
        changed = False
        for name, obj in list(namespace.items()):
            if (hasattr(obj, "_pytestfixturefunction") and name not in uses
                    and params(obj) & uses):
                uses.add(name)
                changed = True
    # Under ASan (make test's second pass) these prove nothing new: the
    # behaviour is proven by the release pass, and the PostgreSQL code's
    # memory safety by test_postgres.py, which does run sanitized.
    sanitized = os.environ.get("CLUSTERMGMT_SANITIZED") == "1"
    for name, obj in list(namespace.items()):
        if name.startswith("test_") and callable(obj):
            if sanitized or name in skip or not params(obj) & uses:
                del namespace[name]


def make_standby(primary):
    """A streaming standby of primary (pg_basebackup -R), started on a
    port of its own, in a temporary directory owned by postgres."""
    standby = PgServer(password=primary.password, initdb=False)
    r = as_postgres([primary._bin("pg_basebackup"), "-h", primary.sockdir, "-p",
                     str(primary.port), "-U", PG_USER, "-D", standby.data, "-R", "-X",
                     "stream", "-c", "fast"], timeout=120)
    assert r.returncode == 0, "pg_basebackup failed: %s %s" % (r.stdout, r.stderr)
    with open(os.path.join(standby.data, "postgresql.conf"), "a") as f:
        f.write("unix_socket_directories = '%s'\n" % standby.sockdir)
    standby.start()
    return standby


def promote(server):
    r = as_postgres([server._bin("pg_ctl"), "-D", server.data, "-w", "-t", "30", "promote"],
                    timeout=60)
    assert r.returncode == 0, "promote failed: %s %s" % (r.stdout, r.stderr)
