"""
Running out of file descriptors (issue 8, point 2): the daemon raises its
soft RLIMIT_NOFILE to the hard limit and says so at start; when idle
connections hold every descriptor it neither spins nor stops answering
probes: it closes the longest-idle connections first; when nothing idle is
left (long polls hold every descriptor), the probe worker answers probes
and agent checks on descriptors it keeps in reserve and refuses other
requests 503; only once the reserve is spent does it pause accepting
briefly.

The daemon runs under `prlimit`, which sets the limits and then execs it,
so the process id is the daemon's.
"""

import json
import os
import socket
import ssl
import threading
import time

import pytest
import requests

from conftest import Daemon, _close_all, exchange, free_port, parse_logfmt, recv_until

IDLE_CONNECTIONS = 100  # well above what 64 descriptors allow
HELD_S = 10  # how long the long polls of the agent-listener test hold


class LimitedDaemon(Daemon):
    def __init__(self, tmp_path, nofile, **kw):
        self.nofile = nofile
        super().__init__(tmp_path, **kw)

    def argv(self):
        return ["prlimit", "--nofile=%s" % self.nofile, "--"] + super().argv()


@pytest.fixture
def limited_daemon(tmp_path, cm_bin):
    made = []

    def factory(nofile, extra_args=None, tls=None):
        d = LimitedDaemon(tmp_path / ("d%d" % len(made)), nofile, bin_path=cm_bin,
                          extra_args=extra_args, start=False, tls=tls)
        made.append(d)
        d.start()
        return d

    try:
        yield factory
    finally:
        _close_all(made)


def cpu_seconds(pid):
    """User + system CPU time the process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14, 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runnable_seconds(pid):
    """Time the process's threads have spent running or waiting to run
    (/proc/PID/task/TID/schedstat: on-CPU ns, run-queue ns). A thread that
    spins is always runnable, so this grows at wall-clock speed however
    loaded the machine is, while its CPU time shrinks with the share it
    gets; a thread that sleeps in epoll_wait adds almost nothing."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                on_cpu, queued = f.read().split()[:2]
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        total += int(on_cpu) + int(queued)
    return total / 1e9


def quietest_window(pid, windows=2, seconds=2.0):
    """(runnable, cpu) seconds of the process in the quietest of a few
    consecutive windows. A daemon that spins is runnable through every
    window; one that waits may still be caught once by a stall of the
    machine (a wake-up left 1-2 s in the run queue), but not in each."""
    out = []
    for _ in range(windows):
        cpu0, runnable0 = cpu_seconds(pid), runnable_seconds(pid)
        time.sleep(seconds)
        out.append((runnable_seconds(pid) - runnable0, cpu_seconds(pid) - cpu0))
    return min(out)


def wait_quiet(pid, quiet=0.5, timeout=10.0):
    """Waits (bounded) until the process has been on a CPU less than 10 ms
    in a `quiet` stretch: nothing it accepted is left unread."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = runnable_seconds(pid)
        time.sleep(quiet)
        if runnable_seconds(pid) - before < 0.01:
            return True
    return False


def open_idle(d, n):
    """n connections that send nothing (the kernel completes them in the
    listen backlog whether or not the daemon can accept them)."""
    out = []
    for _ in range(n):
        out.append(socket.create_connection(("127.0.0.1", d.port), timeout=5))
    return out


def wait_descriptors_in_use(pid, at_least, timeout=10.0):
    """Waits (bounded) until the process holds at least that many
    descriptors; returns how many it holds."""
    deadline = time.monotonic() + timeout
    while True:
        n = len(os.listdir("/proc/%d/fd" % pid))
        if n >= at_least or time.monotonic() >= deadline:
            return n
        time.sleep(0.05)


def is_closed_by_peer(sock, wait=0.2):
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def test_start_log_names_the_raised_descriptor_limit(limited_daemon):
    d = limited_daemon("64:512")
    started = [parse_logfmt(l) for l in d.log_lines() if "clustermgmt started" in l]
    assert started and started[-1].get("nofile") == "512", d.log_text()


def test_idle_flood_at_the_descriptor_limit_neither_spins_nor_blocks_probes(limited_daemon):
    d = limited_daemon("64:64")
    d.set_nodes(["n1"])
    idle = open_idle(d, IDLE_CONNECTIONS)
    try:
        # the daemon has used up its descriptors on the idle connections
        assert wait_descriptors_in_use(d.proc.pid, 62) >= 62
        runnable, cpu = quietest_window(d.proc.pid)
        # a spinning accept loop is runnable the whole 2 s of each window
        # (and gets as much of a core as the machine's load leaves it); a
        # waiting one sleeps
        assert runnable < 0.5 and cpu < 0.5, (
            "while idle connections wait the daemon was runnable %.2f s and used %.2f s "
            "of CPU in the quietest 2 s" % (runnable, cpu))
        for _ in range(5):
            r = requests.get(d.url + "/health?node=n1", timeout=10)
            assert r.status_code == 200, r.text
        line = d.wait_log("out of file descriptors")
        assert line and parse_logfmt(line).get("nofile") == "64", d.log_text()
    finally:
        for s in idle:
            s.close()


def hold_long_polls(d, n, wait_s):
    """n connections that each hold an events long poll of wait_s (those
    the daemon cannot hold are refused or wait in the backlog)."""
    _, token = d.make_token("viewer")
    version = d.get("/v1/clusters/default/events?after=0", auth=("bearer", token)).json()["version"]
    request = ("GET /v1/clusters/default/events?after=%d&wait=%d HTTP/1.1\r\nHost: x\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (version, wait_s, token)).encode()
    held = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(request)
        held.append(s)
    return held


def test_no_spin_when_every_connection_is_busy(limited_daemon):
    """Nothing idle to close (every connection holds a long poll): the
    listener is not polled for a while instead of being retried at once."""
    d = limited_daemon("64:64")
    held = hold_long_polls(d, IDLE_CONNECTIONS, 30)
    try:
        assert wait_descriptors_in_use(d.proc.pid, 62) >= 62
        assert d.wait_log("out of file descriptors", timeout=10), d.log_text()
        runnable, _ = quietest_window(d.proc.pid)
        assert runnable < 0.5, "daemon runnable %.2f s of the quietest 2 s with nothing idle " \
            "to close" % runnable
    finally:
        for s in held:
            s.close()


def test_longest_idle_connections_are_closed_first(limited_daemon):
    d = limited_daemon("64:64")
    idle = open_idle(d, IDLE_CONNECTIONS)
    try:
        assert wait_descriptors_in_use(d.proc.pid, 62) >= 62
        assert is_closed_by_peer(idle[0], wait=5), "the oldest idle connection is still open"
        assert not is_closed_by_peer(idle[-1]), "the newest idle connection was closed"
    finally:
        for s in idle:
            s.close()


def agent_check(port, node):
    """One HAProxy agent check on a connection of its own: the answer line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(node.encode() + b"\n")
        return recv_until(s, b"\n")


def test_agent_check_is_answered_at_the_descriptor_limit(limited_daemon):
    port = free_port()
    d = limited_daemon("64:64", ["--agent-listen", "127.0.0.1:%d" % port])
    d.set_nodes(["n1"])
    idle = open_idle(d, IDLE_CONNECTIONS)
    try:
        assert wait_descriptors_in_use(d.proc.pid, 62) >= 62
        # within 5 s: the idle connections would time out by themselves
        # after 10 s (http1 request timeout) and free descriptors anyway
        assert agent_check(port, "n1") == b"up ready\n"
    finally:
        for s in idle:
            s.close()


def probes_served_others_refused(ask):
    """With every descriptor in use: 20 probes in a row, each on a new
    connection (ask(request) -> what came back), are answered 200, and a
    request that is not a probe 503 with the JSON error."""
    probe = b"GET /health?node=n1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for _ in range(20):
        answer = ask(probe)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nOK"), answer
    answer = ask(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 503 "), answer
    assert b"retry-after: 1" in head.lower(), head
    assert json.loads(body)["error"].startswith("out of file descriptors"), body


def test_probes_are_answered_while_long_polls_hold_every_descriptor(limited_daemon):
    """Nothing idle to close (every connection holds a long poll): the
    probe worker's reserve of descriptors takes the probes, one after
    the other, and a request that is not a probe is answered 503."""
    d = limited_daemon("64:64")
    d.set_nodes(["n1"])
    held = hold_long_polls(d, IDLE_CONNECTIONS, HELD_S * 3)
    try:
        assert wait_descriptors_in_use(d.proc.pid, 62) >= 62
        assert d.wait_log("out of file descriptors", timeout=10), d.log_text()
        assert wait_quiet(d.proc.pid), "the daemon did not go quiet"
        assert len(os.listdir("/proc/%d/fd" % d.proc.pid)) == 64
        probes_served_others_refused(lambda request: exchange(d.port, request))
    finally:
        for s in held:
            s.close()


def test_agent_check_is_answered_while_long_polls_hold_every_descriptor(limited_daemon):
    """The same on the agent listener: an agent check is a probe, taken on
    a descriptor of the reserve."""
    port = free_port()
    d = limited_daemon("64:64", ["--agent-listen", "127.0.0.1:%d" % port])
    d.set_nodes(["n1"])
    held = hold_long_polls(d, IDLE_CONNECTIONS, HELD_S * 3)
    try:
        assert wait_descriptors_in_use(d.proc.pid, 62) >= 62
        assert wait_quiet(d.proc.pid), "the daemon did not go quiet"
        assert len(os.listdir("/proc/%d/fd" % d.proc.pid)) == 64
        for _ in range(10):
            assert agent_check(port, "n1") == b"up ready\n"
    finally:
        for s in held:
            s.close()


def test_agent_listener_pauses_once_agent_checks_spend_the_reserve(limited_daemon):
    """Long polls hold every descriptor and silent agent connections wait
    in the listen backlog: each is taken on a descriptor of the reserve
    and closed after the agent's read timeout (300 ms), so the reserve is
    spent most of the time. Meanwhile the agent listener is not polled,
    instead of accept() being retried at once, and an agent check queued
    behind the silent connections is still answered."""
    port = free_port()
    d = limited_daemon("64:64", ["--agent-listen", "127.0.0.1:%d" % port])
    d.set_nodes(["n1"])
    held = hold_long_polls(d, IDLE_CONNECTIONS, HELD_S * 3)
    silent = []
    try:
        assert wait_descriptors_in_use(d.proc.pid, 62) >= 62
        assert wait_quiet(d.proc.pid), "the daemon did not go quiet"
        for _ in range(150):  # about 8 taken every 300-400 ms: 6 s of a spent reserve
            silent.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        check = socket.create_connection(("127.0.0.1", port), timeout=20)
        check.sendall(b"n1\n")
        runnable, _ = quietest_window(d.proc.pid, seconds=1.0)
        assert runnable < 0.5, "daemon runnable %.2f s of the quietest 1 s with the " \
            "reserve spent by agent connections" % runnable
        assert recv_until(check, b"\n") == b"up ready\n"
        check.close()
    finally:
        for s in silent + held:
            s.close()


def test_https_probes_are_answered_while_long_polls_hold_every_descriptor(limited_daemon, cert):
    """With TLS the general workers accept on --listen, probes included
    (the request line comes after the handshake): they keep a reserve of
    their own. A connection taken on it has its probes served and any
    other request answered 503."""
    d = limited_daemon("64:64", tls=cert)
    d.set_nodes(["n1"])
    _, token = d.make_token("viewer")
    version = d.get("/v1/clusters/default/events?after=0", auth=("bearer", token)).json()["version"]
    poll = ("GET /v1/clusters/default/events?after=%d&wait=%d HTTP/1.1\r\nHost: x\r\n"
            "Authorization: Bearer %s\r\n\r\n" % (version, HELD_S * 3, token)).encode()
    context = ssl.create_default_context(cafile=str(cert[0]))
    context.set_alpn_protocols(["http/1.1"])

    def tls_connect(timeout):
        raw = socket.create_connection(("127.0.0.1", d.port), timeout=timeout)
        try:
            return context.wrap_socket(raw, server_hostname="127.0.0.1")
        except BaseException:
            raw.close()
            raise

    held, lock = [], threading.Lock()

    def hold_one():
        # those the daemon cannot hold wait in the backlog, and are then
        # taken on the reserve and refused
        try:
            s = tls_connect(30)
            s.sendall(poll)
        except OSError:
            return
        with lock:
            held.append(s)

    def hold(n):
        threads = [threading.Thread(target=hold_one, daemon=True) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=40)
        assert wait_quiet(d.proc.pid), "the daemon did not go quiet"

    try:
        hold(IDLE_CONNECTIONS)
        # Making room, the daemon closes unfinished handshakes (idle): the
        # last one closed can leave a descriptor free with no connection
        # left to take it. A few more polls take it (bounded).
        for _ in range(5):
            if len(os.listdir("/proc/%d/fd" % d.proc.pid)) == 64:
                break
            hold(5)
        assert len(os.listdir("/proc/%d/fd" % d.proc.pid)) == 64

        def ask(request):
            data = b""
            with tls_connect(5) as s:
                s.sendall(request)
                try:
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                except ssl.SSLEOFError:  # closed without close_notify
                    pass
            return data

        probes_served_others_refused(ask)
        # a connection taken on the reserve that stays open (keep-alive
        # here, HTTP/2 alike) is served as any other once it is full again
        kept = tls_connect(5)
        kept.sendall(b"GET /health?node=n1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_until(kept, b"\r\n\r\nOK").startswith(b"HTTP/1.1 200 ")
        for s in held:
            s.close()
        assert wait_quiet(d.proc.pid), "the daemon did not go quiet"
        kept.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = recv_until(kept, b"\r\n\r\n")
        kept.close()
        assert answer.startswith(b"HTTP/1.1 200 "), answer
    finally:
        for s in held:
            s.close()
