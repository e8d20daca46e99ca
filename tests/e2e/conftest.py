"""
Black-box end-to-end fixtures for clustermgmt.

Everything here talks to the real binary over HTTP, as a load balancer, a
deploy script or an operator would. The tests are written against the
documented behaviour (README.md, docs/API.md, docs/CLI.md), not against
the daemon's code.

Public interface (other test files, e.g. test_cli.py, rely on these names):

  cm_bin                      fixture: path of the binary (env CLUSTERMGMT_BIN,
                              else <repo>/build/clustermgmt)
  sanitizer_of(path=None)     "asan", "tsan" or None: the runtime in the binary
  not_under_tsan              mark: skipped against a ThreadSanitizer build
  CLUSTERMGMT_TEST_SERVE_ARGS env: extra `serve` arguments (shell words) for
                              every daemon, before the test's own extra_args,
                              e.g. "--threads 4" to run the suite with
                              several workers (under ThreadSanitizer)
  CLUSTERMGMT_TEST_PORT_SLICE env: the first of the 8 slices of ports the
                              xdist workers draw from (worker n takes
                              slice (first + n) mod 8), for two runs side
                              by side
  Daemon(tmp_path, extra_args=None, agent=False, template=True, ipv6=False, ...)
                              starts `cm_bin serve --listen 127.0.0.1:PORT
                              --db TMP/cm.db --admin-password-file TMP/pw`
                              (plus `--agent-listen 127.0.0.1:AGENT_PORT`
                              with agent=True, `--listen [::1]:PORT` with
                              ipv6=True) and waits (bounded) for
                              GET /v1/health. When a port it picked was
                              taken meanwhile, it starts again on another.
                              A new store is a copy of a template made once
                              per test process (admin already hashed, plus
                              an admin token), so a start costs no argon2id;
                              template=False starts on an empty store;
                              template=prepare (a module-level function)
                              copies a template made once by running
                              prepare(daemon) on a copy of the base one,
                              and sets .template_data to what it returned.
      .url .port .agent_port .db .admin .proc .password .tmp .log_path
      .scheme .verify
      .admin_token            ("bearer", TOKEN) of the template's admin
                              token (None with template=False); the
                              helpers below use it, so only tests about
                              passwords pay for argon2id
      .helper_token_id        that token's id (to leave it out of listings)
      .request(method, path, auth=None|("user","pw")|("bearer", token),
               source=None, **requests_kwargs) -> requests.Response
      .get/.post/.put/.delete(path, **kw)   shorthands for .request
      .make_user(name, role) -> (name, password)
      .make_token(role, description="") -> (id, token)
      .set_nodes(names, cluster="default") / .nodes(cluster) / .set_status(...)
      .stop()   SIGTERM, bounded wait, asserts exit code 0
      .kill9()  SIGKILL, bounded wait
      .start()  (re)start on the same db and port
      .log_text(since=0) / .log_mark() / .log_lines(since=0)
  daemon                      fixture (function scope): a started Daemon
  make_daemon                 fixture: factory make_daemon(extra_args=None, **kw)
                              -> a started Daemon in its own directory
  free_port()                 a free loopback port below the kernel's
                              ephemeral range, not among the last 1,000
                              this test process handed out (still: bind it
                              with a retry, another process may take it)
  recv_until(sock, marker)    bytes from a raw socket up to marker or its end
                              (bounded by the socket's timeout)
  read_to_end(sock)           bytes from a raw socket until the peer closes it
  exchange(port, request)     request sent on a new loopback connection; the
                              bytes that came back until the daemon closed it
  session_from(ip)            a requests.Session whose connections come from
                              the local address ip (e.g. "127.0.0.7"), so
                              that failed logins in one test do not slow down
                              the next (the daemon throttles per address)
  parse_logfmt(line) -> dict  logfmt parser

Every wait in this file is bounded.
"""

import atexit
import collections
import functools
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter

from pgcluster import pg_own_server, pg_server, pg_url  # noqa: F401  (PostgreSQL fixtures)

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 10.0  # seconds until /v1/health must answer
STOP_TIMEOUT = 10.0  # seconds until SIGTERM must have ended the process
REQUEST_TIMEOUT = 10.0  # default per-request timeout
PORT_ATTEMPTS = 4  # starts on a fresh port when the picked one was taken
HELPER_TOKEN_DESCRIPTION = "e2e helpers (tests/e2e/conftest.py)"

BEARER = "bearer"


def binary_path():
    env = os.environ.get("CLUSTERMGMT_BIN")
    if env:
        return str(Path(env).resolve())
    return str(REPO / "build" / "clustermgmt")


@pytest.fixture(scope="session")
def cm_bin():
    return binary_path()


@functools.lru_cache(maxsize=None)
def sanitizer_of(path=None):
    """The sanitizer runtime linked into the binary at path (default: the
    one under test): "asan", "tsan" or None."""
    try:
        with open(path or binary_path(), "rb") as f:
            image = f.read()
    except OSError:
        return None  # not built: the tests say so on their own
    if b"__tsan_init" in image:
        return "tsan"
    if b"__asan_init" in image:
        return "asan"
    return None


# ThreadSanitizer's own thread wakes about ten times a second, and its
# shadow memory grows the resident set: what counts a daemon's wake-ups or
# watches its memory measures TSan, not the daemon.
not_under_tsan = pytest.mark.skipif(
    sanitizer_of() == "tsan", reason="counts wake-ups or memory, which TSan changes")


# Ports are picked below the kernel's ephemeral range (32768-60999 on
# Linux): there the client side of every connection the tests and daemons
# open cannot take a port between its pick and its bind. Each xdist worker
# draws from its own slice, so workers of one run do not collide either;
# another run on the machine still might, hence the retries on bind. A run
# beside another (make test's TSan pass beside its ASan pass) starts its
# workers' slices at CLUSTERMGMT_TEST_PORT_SLICE.
PORT_LOW, PORT_HIGH = 20000, 32000
_PORT_SLICES = 8
_FIRST_SLICE = int(os.environ.get("CLUSTERMGMT_TEST_PORT_SLICE", "0"))
_rng = random.SystemRandom()
_handed_out = collections.deque(maxlen=1000)


def _port_slice():
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    n = int(worker[2:]) if worker[2:].isdigit() else 0
    size = (PORT_HIGH - PORT_LOW) // _PORT_SLICES
    low = PORT_LOW + ((_FIRST_SLICE + n) % _PORT_SLICES) * size
    return low, low + size


def free_port(host="127.0.0.1"):
    """A port nothing listens on now, not among the last 1,000 this process
    handed out."""
    low, high = _port_slice()
    for _ in range(500):
        port = _rng.randrange(low, high)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.append(port)
        return port
    raise RuntimeError("no free port in %d-%d" % (low, high))


def port_taken(log_text, port):
    """True when a server's log says it could not bind port (EADDRINUSE)."""
    return ("already in use" in log_text.lower() or "cannot listen on" in log_text) and \
        re.search(r":%d\b" % port, log_text) is not None


class SourceAdapter(HTTPAdapter):
    """An adapter whose connections are bound to one local address."""

    def __init__(self, source_ip, **kw):
        self._source = (source_ip, 0)
        super().__init__(**kw)

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = self._source
        return super().init_poolmanager(*args, **kw)


def recv_until(sock, marker):
    """What sock gives up to and including the first marker (bytes), or
    up to its end; bounded by the socket's timeout."""
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def read_to_end(sock):
    """What sock gives until the peer closes it (bounded by the socket's
    timeout per read)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def exchange(port, request, timeout=5.0):
    """Sends request on a new loopback connection; what came back until
    the daemon closed it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        return read_to_end(s)


def session_from(ip):
    s = requests.Session()
    a = SourceAdapter(ip)
    s.mount("http://", a)
    s.mount("https://", a)
    return s


_source_counter = [10]


def fresh_source_ip():
    """A loopback address not used before in this test run (127.0.N.M)."""
    _source_counter[0] += 1
    n = _source_counter[0]
    return "127.0.%d.%d" % (n // 250 + 1, n % 250 + 2)


_LOGFMT_RE = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s]*)')


def parse_logfmt(line):
    """Parses one logfmt line into a dict; values are unquoted/unescaped."""
    out = {}
    for key, value in _LOGFMT_RE.findall(line):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1]
            value = re.sub(r'\\x([0-9a-fA-F]{2})', lambda m: chr(int(m.group(1), 16)), value)
            value = value.replace('\\n', '\n').replace('\\"', '"').replace('\\\\', '\\')
        out[key] = value
    return out


def auth_kwargs(auth):
    """Turns the auth argument of Daemon.request into requests kwargs."""
    if auth is None:
        return {}, {}
    if isinstance(auth, (tuple, list)) and len(auth) == 2 and auth[0] == BEARER:
        return {}, {"Authorization": "Bearer " + auth[1]}
    return {"auth": tuple(auth)}, {}


class _Template:
    """A store made once per test process and binary by a real daemon, which
    Daemon copies. The base one has user admin (password hashed) and an admin
    token; with prepare, prepare(daemon) runs on a copy of the base one and
    what it returns is kept as .data (e.g. the passwords of users it made)."""

    made = {}

    def __init__(self, bin_path, prepare=None):
        self.dir = Path(tempfile.mkdtemp(prefix="cm-e2e-template-"))
        atexit.register(shutil.rmtree, str(self.dir), True)
        d = Daemon(self.dir, bin_path=bin_path, template=prepare is not None)
        self.data = None
        try:
            if prepare is None:
                r = d.post("/v1/tokens", auth=d.admin,
                           json={"role": "admin", "description": HELPER_TOKEN_DESCRIPTION})
                body = d._ok(r, 201)
                self.token_id, self.token = body["id"], body["token"]
            else:
                self.data = prepare(d)
                self.token_id, self.token = d.helper_token_id, d.admin_token[1]
            d.stop()
        finally:
            d.close()
        self.password = d.password
        self.db = Path(d.db)
        leftovers = [p for p in (Path(d.db + "-wal"), Path(d.db + "-journal")) if p.exists()
                     and p.stat().st_size > 0]
        assert not leftovers, "template store not checkpointed at exit: %s" % leftovers

    @classmethod
    def get(cls, bin_path, prepare=None):
        t = cls.made.get((bin_path, prepare))
        if t is None:
            t = cls.made[(bin_path, prepare)] = cls(bin_path, prepare)
        return t


class Daemon:
    """One `clustermgmt serve` process on a private store and port."""

    def __init__(self, tmp_path, extra_args=None, bin_path=None, start=True,
                 password_file=True, listen_host="127.0.0.1", tls=None,
                 port=None, db=None, agent=False, template=True, ipv6=False):
        self.tmp = Path(tmp_path)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.bin = bin_path or binary_path()
        self.extra_args = list(extra_args or [])
        self.listen_host = listen_host
        self._port_is_ours = port is None  # may be replaced if taken meanwhile
        self.port = port or free_port()
        self.ipv6 = ipv6  # also listen on [::1] on the same port
        self._agent_port_is_ours = agent is True
        self.agent_port = free_port() if agent is True else (agent or None)
        self.db = str(db or (self.tmp / "cm.db"))
        self.log_path = self.tmp / "daemon.log"
        self.out_path = self.tmp / "daemon.out"
        self.tls = tls  # None or (cert, key)
        self.scheme = "https" if tls else "http"
        self.verify = str(tls[0]) if tls else True
        self.password = None
        self.pw_file = None
        self.admin_token = self.helper_token_id = self.template_data = None
        if password_file:
            self.password = secrets.token_urlsafe(18)
            if template and not os.path.exists(self.db):
                t = _Template.get(self.bin, None if template is True else template)
                shutil.copyfile(t.db, self.db)
                self.password = t.password
                self.admin_token = (BEARER, t.token)
                self.helper_token_id = t.token_id
                self.template_data = t.data
            self.pw_file = self.tmp / "pw"
            self.pw_file.write_text(self.password)
        self.proc = None
        self._expected_exit = False
        self._sessions = {}
        if start:
            self.start()

    # --- addresses and credentials ---------------------------------------

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % (self.scheme, self.port)

    @property
    def admin(self):
        return ("admin", self.password)

    @property
    def listen(self):
        return "%s:%d" % (self.listen_host, self.port)

    def argv(self):
        args = [self.bin, "serve", "--listen", self.listen, "--db", self.db]
        if self.ipv6:
            args += ["--listen", "[::1]:%d" % self.port]
        if self.pw_file is not None:
            args += ["--admin-password-file", str(self.pw_file)]
        if self.agent_port:
            args += ["--agent-listen", "127.0.0.1:%d" % self.agent_port]
        if self.tls:
            args += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        args += shlex.split(os.environ.get("CLUSTERMGMT_TEST_SERVE_ARGS", ""))
        return args + self.extra_args

    # --- process control -------------------------------------------------

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait=True):
        assert not self.running(), "daemon already running"
        if not os.path.exists(self.bin):
            pytest.fail("clustermgmt binary not found at %s (set CLUSTERMGMT_BIN)" % self.bin)
        for attempt in range(PORT_ATTEMPTS):
            with open(self.log_path, "ab") as err, open(self.out_path, "ab") as out:
                self._start_mark = self.log_mark()
                # A session of its own: a daemon a test stops (SIGSTOP)
                # stays stopped when the runner's process group becomes
                # orphaned (the shell that started it exiting), on which
                # the kernel sends that group's stopped members SIGHUP
                # and SIGCONT.
                self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                             stdout=out, stderr=err, cwd=str(self.tmp),
                                             start_new_session=True)
            self._expected_exit = False
            if not wait:
                return self
            if self.wait_ready(retry_taken_port=attempt < PORT_ATTEMPTS - 1) != "port taken":
                break
        self._port_is_ours = self._agent_port_is_ours = False  # restarts keep the ports
        return self

    def _repick_taken_port(self):
        """After a failed start: picks a new port for each of ours that was
        taken meanwhile (tests run in parallel); False when none was."""
        text = self.log_text(self._start_mark)
        repicked = False
        if self._port_is_ours and port_taken(text, self.port):
            self.port, repicked = free_port(), True
        if self._agent_port_is_ours and self.agent_port and port_taken(text, self.agent_port):
            self.agent_port, repicked = free_port(), True
        return repicked

    def wait_ready(self, timeout=START_TIMEOUT, retry_taken_port=False):
        """Waits until the daemon answers. Returns "port taken" instead of
        failing when it could not bind a port this fixture picked (another
        server may have taken it meanwhile); the port is then replaced."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if retry_taken_port and self._repick_taken_port():
                    return "port taken"
                self._expected_exit = True  # reported here, not again at teardown
                pytest.fail("daemon exited with %s before answering /v1/health; stderr:\n%s"
                            % (self.proc.returncode, self.log_text(self._start_mark)))
            if "clustermgmt started" not in self.log_text(self._start_mark):
                time.sleep(0.02)  # not bound yet: whatever answers is not ours
                continue
            try:
                r = requests.get(self.url + "/v1/health", timeout=1, verify=self.verify)
                if r.status_code == 200:
                    return
                last = "HTTP %d %r" % (r.status_code, r.text[:200])
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        self._terminate()
        pytest.fail("daemon did not answer /v1/health within %.0f s (last: %s); stderr:\n%s"
                    % (timeout, last, self.log_text(self._start_mark)))

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, bounded wait, asserts a clean exit (code 0)."""
        assert self.running(), "daemon not running; stderr:\n" + self.log_text()
        self._expected_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            pytest.fail("daemon did not exit within %.0f s of SIGTERM; stderr:\n%s"
                        % (timeout, self.log_text()))
        assert rc == 0, "daemon exit code %s after SIGTERM; stderr:\n%s" % (rc, self.log_text())
        return rc

    def kill9(self):
        assert self.running(), "daemon not running; stderr:\n" + self.log_text()
        self._expected_exit = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=5)

    def _terminate(self):
        if not self.running():
            return None
        self._expected_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            return "killed after SIGTERM timeout"

    def close(self):
        """Teardown: stops the process (bounded); returns a problem or None."""
        for s in self._sessions.values():
            s.close()
        if self.proc is None:
            return None
        if not self.running():
            if not self._expected_exit:
                return "daemon died during the test (exit %s); stderr:\n%s" % (
                    self.proc.returncode, self.log_text()[-4000:])
            return None
        rc = self._terminate()
        if rc != 0:
            return "daemon exit %s at teardown SIGTERM; stderr:\n%s" % (rc, self.log_text()[-4000:])
        return None

    # --- logs --------------------------------------------------------------

    def log_mark(self):
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_lines(self, since=0):
        return [l for l in self.log_text(since).splitlines() if l.strip()]

    def wait_log(self, pattern, since=0, timeout=3.0):
        """Waits (bounded) until a log line matching regex pattern appears."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            for line in self.log_lines(since):
                if rx.search(line):
                    return line
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    # --- HTTP ----------------------------------------------------------------

    def request(self, method, path, auth=None, source=None, **kw):
        kw.setdefault("timeout", REQUEST_TIMEOUT)
        kw.setdefault("allow_redirects", False)
        kw.setdefault("verify", self.verify)
        extra, headers = auth_kwargs(auth)
        kw.update(extra)
        if headers:
            h = dict(kw.pop("headers", None) or {})
            h.update(headers)
            kw["headers"] = h
        url = path if path.startswith("http") else self.url + path
        if source is not None:
            s = self._sessions.get(source)
            if s is None:
                s = self._sessions[source] = session_from(source)
            return s.request(method, url, **kw)
        return requests.request(method, url, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    # --- convenience (as admin) ---------------------------------------------
    # With the admin token when there is one: a Basic check is an argon2id
    # verification, which tests that are not about passwords need not pay.

    @property
    def as_admin(self):
        return self.admin_token or self.admin

    def _ok(self, r, *codes):
        codes = codes or (200, 201)
        assert r.status_code in codes, "%s %s -> %d %s" % (
            r.request.method, r.request.url, r.status_code, r.text[:500])
        return r.json() if r.content else None

    def make_user(self, name, role):
        pw = "pw-" + secrets.token_urlsafe(12)
        r = self.post("/v1/users", auth=self.as_admin,
                      json={"name": name, "password": pw, "role": role})
        self._ok(r, 201)
        return (name, pw)

    def make_token(self, role, description=""):
        r = self.post("/v1/tokens", auth=self.as_admin,
                      json={"role": role, "description": description})
        body = self._ok(r, 201)
        return body["id"], body["token"]

    def set_nodes(self, names, cluster="default"):
        r = self.put("/v1/clusters/%s/nodes" % cluster, auth=self.as_admin,
                     json={"nodes": list(names)})
        return self._ok(r, 200)

    def nodes(self, cluster="default", auth=None):
        r = self.get("/v1/clusters/%s/nodes" % cluster, auth=auth or self.as_admin)
        return self._ok(r, 200)

    def node_states(self, cluster="default"):
        """{name: (status, reason)} of every node of the cluster."""
        return {n["name"]: (n["status"], n["reason"]) for n in self.nodes(cluster)["nodes"]}

    def set_status(self, changes, cluster="default", auth=None, **extra):
        body = {"changes": changes}
        body.update(extra)
        r = self.post("/v1/clusters/%s/status" % cluster, auth=auth or self.as_admin,
                      json=body)
        return self._ok(r, 200)

    def audit(self, cluster="default", limit=None, auth=None):
        path = "/v1/clusters/%s/audit" % cluster
        if limit is not None:
            path += "?limit=%d" % limit
        return self._ok(self.get(path, auth=auth or self.as_admin), 200)["entries"]

    def probe(self, node, mount="/health", method="GET", **kw):
        return self.request(method, "%s?node=%s" % (mount, node), **kw)

    def alive(self):
        """True when the process runs and /v1/health answers 200."""
        if not self.running():
            return False
        try:
            return self.get("/v1/health", timeout=3).status_code == 200
        except requests.RequestException:
            return False


def _close_all(daemons):
    problems = [p for p in (d.close() for d in daemons) if p]
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def daemon(tmp_path, cm_bin):
    d = Daemon(tmp_path / "daemon", bin_path=cm_bin, start=False)
    try:
        d.start()
        yield d
    finally:
        _close_all([d])


@pytest.fixture
def make_daemon(tmp_path, cm_bin):
    made = []

    def factory(extra_args=None, **kw):
        kw.setdefault("bin_path", cm_bin)
        d = Daemon(tmp_path / ("d%d" % len(made)), extra_args=extra_args, start=False, **kw)
        made.append(d)
        d.start()
        return d

    try:
        yield factory
    finally:
        _close_all(made)


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory, cm_bin):
    """One daemon for a whole module, for read-mostly matrices."""
    d = Daemon(tmp_path_factory.mktemp("shared"), bin_path=cm_bin, start=False)
    try:
        d.start()
        yield d
    finally:
        _close_all([d])


# --- assertion helpers shared by the test files ----------------------------

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def assert_json_error(r, *codes):
    """r is a JSON error {"error": sentence, "detail": ...} with one of codes."""
    assert r.status_code in codes, "expected %s, got %d %r" % (codes, r.status_code, r.text[:300])
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), "error Content-Type %r body %r" % (ctype, r.text[:200])
    body = r.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert "detail" in body, "error without detail key: %r" % body
    return body


def assert_401(r):
    assert r.status_code == 401, "expected 401, got %d %r" % (r.status_code, r.text[:200])
    assert r.headers.get("WWW-Authenticate") == 'Basic realm="clustermgmt"', r.headers


def timed(fn, *a, **kw):
    t0 = time.monotonic()
    res = fn(*a, **kw)
    return res, time.monotonic() - t0


@pytest.fixture
def cert(tmp_path):
    """A self-signed certificate for 127.0.0.1: (cert path, key path)."""
    crt, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-days", "1", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    return crt, key
