"""
Probes isolated (docs/ARCHITECTURE.md, "Probes isolated"): probes and
agent checks are answered by a worker that does nothing else, and the
heavy answers (the node list) are rendered once per version by the
general workers and shared by every reader.

None of these tests measures a time. They check what can be proven:
  * a probe and an agent check are answered while every general worker
    thread is frozen (stopped with ptrace, so that an API read provably
    cannot be answered until it is let go);
  * the daemon's own counts (/v1/health "workers") show the probe worker
    answered every probe and nothing else, rendered nothing, and that the
    node list was rendered at most once per version per general worker
    while many long polls and writes ran;
  * a request other than a probe on a probe's connection is answered and
    the connection closed after it;
  * the general workers and the other threads run at a lower priority
    than the probe worker;
  * with TLS, the plain --probe-listen is served by the probe worker
    (answered with every general worker frozen), and answers probes alone.
"""

import ctypes
import os
import shlex
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import cert, exchange, free_port, read_to_end, recv_until  # noqa: F401  (cert is a fixture)

PTRACE_ATTACH = 16
PTRACE_DETACH = 17
WALL = 0x40000000  # __WALL: wait for a thread of another process


def threads(pid):
    """{tid: name} of the daemon's threads."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            out[int(tid)] = f.read().strip()
    return out


def nice_of(pid, tid):
    with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19 of stat(5), counted after "pid (comm)"


def http_probe(port, node, timeout=5.0):
    """One probe on a new connection, as HAProxy and Varnish send it."""
    return exchange(port, ("GET /health?node=%s HTTP/1.1\r\nHost: lb\r\nConnection: close"
                           "\r\n\r\n" % node).encode(), timeout)


def agent_check(port, line, timeout=5.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(line.encode() + b"\n")
        data = recv_until(s, b"\n")
    return data.split(b"\n", 1)[0].decode()


def workers(d):
    r = d.get("/v1/health")
    assert r.status_code == 200
    return r.json()["workers"]


def general_threads():
    """--threads from CLUSTERMGMT_TEST_SERVE_ARGS (the suite may run with several)."""
    words = shlex.split(os.environ.get("CLUSTERMGMT_TEST_SERVE_ARGS", ""))
    for i, w in enumerate(words):
        if w == "--threads" and i + 1 < len(words):
            return int(words[i + 1])
        if w.startswith("--threads="):
            return int(w.split("=", 1)[1])
    return 1


@pytest.fixture
def agent_daemon(make_daemon):
    d = make_daemon(agent=True)
    d.set_nodes(["web%03d" % i for i in range(200)])
    return d


def test_probe_and_agent_answered_while_every_general_worker_is_frozen(agent_daemon):
    d = agent_daemon
    d.set_status({"web001": {"status": "offline"}})
    general = [tid for tid, name in threads(d.proc.pid).items() if name == "cm-worker"]
    assert general, "no general worker thread (cm-worker) found"
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    frozen = []
    held = {}
    try:
        for tid in general:
            if libc.ptrace(PTRACE_ATTACH, tid, None, None) != 0:
                pytest.skip("cannot ptrace the daemon's threads: errno %d" % ctypes.get_errno())
            os.waitpid(tid, WALL)
            frozen.append(tid)

        # An API read now provably waits: nothing but a general worker serves it.
        def read():
            try:
                held["status"] = d.get("/v1/clusters/default/nodes", auth=d.as_admin,
                                       timeout=30).status_code
            except requests.RequestException as e:
                held["status"] = repr(e)
        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(0.3)
        assert "status" not in held, "a general worker answered while frozen"

        for _ in range(20):
            assert http_probe(d.port, "web000").startswith(b"HTTP/1.1 200")
            assert b"node is offline" in http_probe(d.port, "web001")
            assert agent_check(d.agent_port, "web000").startswith("up ready")
            assert agent_check(d.agent_port, "web001") == "maint"
        assert "status" not in held
    finally:
        for tid in frozen:
            libc.ptrace(PTRACE_DETACH, tid, None, None)
    reader.join(30)
    assert held.get("status") == 200, held


def frozen_general_workers(pid):
    """Stops every general worker thread (cm-worker) with ptrace; returns
    a function that lets them go."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    general = [tid for tid, name in threads(pid).items() if name == "cm-worker"]
    assert general, "no general worker thread (cm-worker) found"
    frozen = []

    def release():
        for tid in frozen:
            libc.ptrace(PTRACE_DETACH, tid, None, None)

    for tid in general:
        if libc.ptrace(PTRACE_ATTACH, tid, None, None) != 0:
            release()
            pytest.skip("cannot ptrace the daemon's threads: errno %d" % ctypes.get_errno())
        os.waitpid(tid, WALL)
        frozen.append(tid)
    return release


@pytest.fixture
def tls_daemon_with_probe_listener(make_daemon, cert):  # noqa: F811
    probe_port = free_port()
    d = make_daemon(tls=cert, extra_args=["--probe-listen", "127.0.0.1:%d" % probe_port])
    d.probe_port = probe_port
    d.set_nodes(["web%03d" % i for i in range(20)])
    d.set_status({"web001": {"status": "offline"}})
    return d


def test_with_tls_the_probe_listener_is_served_while_every_general_worker_is_frozen(
        tls_daemon_with_probe_listener):
    d = tls_daemon_with_probe_listener
    release = frozen_general_workers(d.proc.pid)
    try:
        for _ in range(20):
            assert http_probe(d.probe_port, "web000").startswith(b"HTTP/1.1 200")
            assert b"node is offline" in http_probe(d.probe_port, "web001")
    finally:
        release()
    # and the HTTPS listener still serves everything, probes included
    assert d.get("/health?node=web000").status_code == 200
    assert d.get("/v1/clusters/default/nodes", auth=d.as_admin).status_code == 200


def test_the_probe_listener_refuses_everything_but_probes(tls_daemon_with_probe_listener):
    d = tls_daemon_with_probe_listener
    url = "http://127.0.0.1:%d" % d.probe_port
    for path in ("/v1/health", "/v1/clusters/default/nodes", "/managenodes", "/login",
                 "/metrics", "/health/++rest++getstatus"):
        r = requests.get(url + path, auth=d.as_admin, timeout=5)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert "only probes" in r.text
    r = requests.post(url + "/v1/clusters/default/status", auth=d.as_admin, timeout=5,
                      json={"changes": {"web000": {"status": "offline"}}})
    assert r.status_code == 404
    assert d.nodes()["nodes"][0]["status"] == "online"  # nothing changed
    # a probe, then another request on the same connection: refused and closed
    data = exchange(d.probe_port, b"GET /health?node=web000 HTTP/1.1\r\nHost: lb\r\n\r\n"
                    b"GET /v1/health HTTP/1.1\r\nHost: lb\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200")
    assert b"HTTP/1.1 404" in data and b"only probes" in data
    assert requests.head(url + "/health?node=web000", timeout=5).status_code == 200


def test_probe_worker_answers_probes_only_and_renders_nothing(agent_daemon):
    d = agent_daemon
    before = workers(d)
    n_probes = 0
    for i in range(50):
        assert http_probe(d.port, "web%03d" % (i % 200)).startswith(b"HTTP/1.1 200")
        n_probes += 1
    # keep-alive probes, as a prober with a persistent connection sends them
    with requests.Session() as s:
        for i in range(30):
            assert s.get(d.url + "/health?node=web%03d" % i, timeout=5).status_code == 200
            n_probes += 1
    for i in range(10):
        assert agent_check(d.agent_port, "web%03d" % i).startswith("up")
    # every other kind of work meanwhile: reads, writes, long polls, scrapes
    assert d.get("/metrics").status_code == 200
    for i in range(5):
        d.set_status({"web%03d" % i: {"status": "drain"}})
        assert d.get("/v1/clusters/default/nodes", auth=d.as_admin).status_code == 200
    after = workers(d)
    probe, general = after["probe"], after["general"]
    assert probe["probes"] - before["probe"]["probes"] == n_probes
    assert probe["others"] == 0
    assert probe["renders"] == 0
    assert general["probes"] == 0
    assert general["renders"] > before["general"]["renders"]


def long_polls_held(d):
    for line in d.get("/metrics").text.splitlines():
        if line.startswith("clustermgmt_long_polls_held "):
            return int(line.split()[1])
    return 0


def test_node_list_rendered_once_per_version_for_every_long_poll(agent_daemon):
    d = agent_daemon
    n_polls, n_writes = 40, 5
    version = d.nodes()["version"]
    target = version + n_writes  # each status write is one version
    answers = []
    lock = threading.Lock()

    def poll(after):
        with requests.Session() as s:
            while after < target:
                r = s.get(d.url + "/v1/clusters/default/events?after=%d&wait=30" % after,
                          headers={"Authorization": "Bearer " + d.admin_token[1]},
                          timeout=40)
                assert r.status_code == 200
                doc = r.json()
                with lock:
                    answers.append(doc)
                after = doc["version"]

    pollers = [threading.Thread(target=poll, args=(version,)) for _ in range(n_polls)]
    for t in pollers:
        t.start()
    deadline = time.monotonic() + 20
    while long_polls_held(d) < n_polls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert long_polls_held(d) == n_polls
    before = workers(d)["general"]["renders"]
    for i in range(n_writes):
        d.set_status({"web%03d" % (10 + i): {"status": "offline"}})
        time.sleep(0.3)
    for t in pollers:
        t.join(60)
    renders = workers(d)["general"]["renders"] - before
    assert len(answers) >= n_polls
    assert all(a["changed"] is True and len(a["nodes"]) == 200 for a in answers)
    assert all(a["version"] > version for a in answers)
    # each write renders its version once (its own answer and every poll
    # share it), however many polls it wakes
    assert 1 <= renders <= n_writes * general_threads(), (renders, len(answers))


def test_other_request_on_a_probe_connection_is_answered_then_closed(agent_daemon):
    d = agent_daemon
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
        s.sendall(b"GET /health?node=web000 HTTP/1.1\r\nHost: lb\r\n\r\n")
        first = b""
        while b"OK" not in first:
            chunk = s.recv(4096)
            assert chunk, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: lb\r\n\r\n")
        rest = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break  # closed by the daemon after the answer
            rest += chunk
    assert rest.startswith(b"HTTP/1.1 200")
    assert b'"status":"ok"' in rest
    assert workers(d)["probe"]["others"] == 1


def test_every_thread_but_the_probe_worker_runs_at_a_lower_priority(agent_daemon):
    d = agent_daemon
    names = threads(d.proc.pid)
    probe = [tid for tid, name in names.items() if name == "cm-probe"]
    assert len(probe) == 1, names
    assert nice_of(d.proc.pid, probe[0]) == 0
    others = [tid for tid in names if tid != probe[0]]
    assert others
    for tid in others:
        assert nice_of(d.proc.pid, tid) > 0, (names[tid], nice_of(d.proc.pid, tid))


def test_probe_at_the_descriptor_limit_when_the_idle_connections_are_on_general_workers(
        tmp_path, cm_bin):
    """The probe worker accepts every connection; the idle keep-alive ones
    (each made a request, so a general worker holds it) must still be
    closed to make room for a probe when descriptors run out."""
    from test_fd_limits import LimitedDaemon, _close_all
    d = LimitedDaemon(tmp_path / "limited", "64:64", bin_path=cm_bin, start=False)
    idle = []
    try:
        d.start()
        d.set_nodes(["n1"])
        for _ in range(100):
            try:
                s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            except OSError:
                break
            idle.append(s)
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                s.recv(65536)  # answered by a general worker: now idle there
            except OSError:
                break
        assert len(idle) > 40
        # within 5 s: idle connections would time out by themselves after 10 s
        for _ in range(5):
            data = http_probe(d.port, "n1", timeout=5)
            assert data.startswith(b"HTTP/1.1 200"), data
    finally:
        for s in idle:
            s.close()
        _close_all([d])


def test_a_write_handed_over_before_sigterm_is_answered_after_it(daemon):
    """The probe worker read a write's request line and handed its
    connection to a general worker before SIGTERM; the general worker
    takes it over only after the stop began (frozen until then): the
    write is still answered and kept, as every request that reached the
    daemon before the signal is."""
    from test_serve import offline_write, wait_until_read

    d = daemon
    d.set_nodes(["web1"])
    release = frozen_general_workers(d.proc.pid)
    try:
        with socket.create_connection(("127.0.0.1", d.port), timeout=20) as s:
            s.sendall(offline_write(d, "web1"))
            wait_until_read(d, s)  # by the probe worker, which hands it over
            d._expected_exit = True
            d.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # the stop begins while the general workers are frozen
            release()
            release = None
            answer = read_to_end(s)
    finally:
        if release is not None:
            release()
    assert d.proc.wait(timeout=30) == 0, d.log_text()
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    d.start()
    assert d.node_states()["web1"][0] == "offline"
