"""
`clustermgmt serve` itself: listening on several addresses (IPv4 and IPv6),
worker threads, the default node, start-up errors, and graceful shutdown
with requests in flight (issue 2 point 2).
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

from conftest import not_under_tsan, read_to_end


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def serve(cm_bin, tmp_path, *args, timeout=10):
    return subprocess.run([cm_bin, "serve", "--db", str(tmp_path / "x.db"), *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback here")
def test_listens_on_ipv4_and_ipv6_at_once(make_daemon):
    d = make_daemon(ipv6=True)  # --listen [::1]:PORT too
    d.set_nodes(["web1"])
    v4 = requests.get(d.url + "/health?node=web1", timeout=5)
    v6 = requests.get("http://[::1]:%d/health?node=web1" % d.port, timeout=5)
    assert (v4.status_code, v4.text) == (200, "OK")
    assert (v6.status_code, v6.text) == (200, "OK")


def test_several_threads_answer_concurrent_probes(make_daemon):
    d = make_daemon(extra_args=["--threads", "4"])
    d.set_nodes(["web1", "web2"])
    d.set_status({"web2": {"status": "offline"}})
    failures = []

    def probe_many():
        s = requests.Session()
        for _ in range(100):
            r1 = s.get(d.url + "/health?node=web1", timeout=5)
            r2 = s.get(d.url + "/health?node=web2", timeout=5)
            if (r1.status_code, r2.status_code) != (200, 503):
                failures.append((r1.status_code, r2.status_code))

    workers = [threading.Thread(target=probe_many) for _ in range(8)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    assert not failures


def test_change_on_one_thread_is_seen_by_probes_on_all(make_daemon):
    d = make_daemon(extra_args=["--threads", "4"])
    d.set_nodes(["web1"])
    d.set_status({"web1": {"status": "offline"}})
    # The write went through a general worker; the probes, each on a new
    # connection, are answered by the probe worker, and must all see it.
    for _ in range(40):
        r = requests.get(d.url + "/health?node=web1", timeout=5,
                         headers={"Connection": "close"})
        assert (r.status_code, r.text) == (503, "node is offline")


def test_default_node_answers_probe_without_node(make_daemon):
    d = make_daemon(extra_args=["--node", "web1"])
    d.set_nodes(["web1", "web2"])
    d.set_status({"web1": {"status": "drain"}})
    r = requests.get(d.url + "/health", timeout=5)
    assert (r.status_code, r.text) == (503, "node is draining")
    r = requests.get(d.url + "/health?node=web2", timeout=5)
    assert (r.status_code, r.text) == (200, "OK")


def test_port_in_use_fails_with_clear_message(cm_bin, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        p = serve(cm_bin, tmp_path, "--listen", "127.0.0.1:%d" % port)
    assert p.returncode == 1
    assert "cannot listen on 127.0.0.1:%d" % port in p.stderr


# A configuration error exits 78 (EX_CONFIG), which the systemd unit lists
# in RestartPreventExitStatus=: the service ends "failed" instead of being
# restarted for ever. The reason goes to stderr (the journal) even when the
# log goes to a file.
EXIT_CONFIG = 78


def config_error_args(tmp_path, cert, case):
    crt, key = cert
    garbage = tmp_path / "garbage"
    garbage.write_text("not a certificate, a key, or a database\n")
    other_key = tmp_path / "other-key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", str(other_key)],
                   check=True, capture_output=True, timeout=60)
    return {
        "missing certificate": (["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(key)],
                                "cannot load the TLS certificate"),
        "garbage certificate": (["--tls-cert", str(garbage), "--tls-key", str(key)],
                                "cannot load the TLS certificate"),
        "unreadable key": (["--tls-cert", str(crt), "--tls-key", str(tmp_path / "nope.pem")],
                           "cannot load the TLS key"),
        "key of another certificate": (["--tls-cert", str(crt), "--tls-key", str(other_key)],
                                       "does not match the certificate"),
        "bad --db spec": (["--db", "postgresql://localhost:abc/db"],
                          "not a valid PostgreSQL URL"),
        "--db not a store": (["--db", str(garbage)], "is not an SQLite database"),
        "unresolvable listen address": (["--listen", "nosuchhost.invalid:8080"],
                                        "--listen nosuchhost.invalid:8080"),
        "missing admin password file": (["--admin-password-file", str(tmp_path / "nope")],
                                        "cannot read"),
        "log file in a missing directory": (["--log-file", str(tmp_path / "no" / "log")],
                                            "--log-file"),
    }[case]


CONFIG_ERRORS = ["missing certificate", "garbage certificate", "unreadable key",
                 "key of another certificate", "bad --db spec", "--db not a store",
                 "unresolvable listen address", "missing admin password file",
                 "log file in a missing directory"]


@pytest.mark.parametrize("case", CONFIG_ERRORS)
def test_configuration_error_exits_78_with_the_reason(cm_bin, tmp_path, cert, case):
    args, needle = config_error_args(tmp_path, cert, case)
    p = serve(cm_bin, tmp_path, *args)
    assert p.returncode == EXIT_CONFIG, (p.returncode, p.stderr)
    assert needle in p.stderr, p.stderr


@pytest.mark.parametrize("case", ["garbage certificate", "bad --db spec"])
def test_configuration_error_reaches_stderr_when_logging_to_a_file(cm_bin, tmp_path, cert, case):
    args, needle = config_error_args(tmp_path, cert, case)
    p = serve(cm_bin, tmp_path, "--log-file", str(tmp_path / "cm.log"), *args)
    assert p.returncode == EXIT_CONFIG, (p.returncode, p.stderr)
    assert "cannot start" in p.stderr and needle in p.stderr, p.stderr


@pytest.mark.parametrize("case", ["garbage certificate", "bad --db spec",
                                  "missing admin password file"])
def test_check_config_exits_78_on_a_configuration_error(cm_bin, tmp_path, cert, case):
    args, needle = config_error_args(tmp_path, cert, case)
    p = serve(cm_bin, tmp_path, "--check-config", *args)
    assert p.returncode == EXIT_CONFIG, (p.returncode, p.stderr)
    assert needle in p.stderr, p.stderr


def test_privileged_port_without_the_capability_is_a_configuration_error(cm_bin, tmp_path):
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) <= 81:
            pytest.skip("every port is unprivileged here")
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        cm_bin, "serve", "--db", str(tmp_path / "x.db"),
                        "--listen", "127.0.0.1:81"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == EXIT_CONFIG, (p.returncode, p.stderr)
    assert "cannot listen on 127.0.0.1:81: Permission denied" in p.stderr, p.stderr


def test_store_in_use_is_not_a_configuration_error(cm_bin, daemon):
    p = subprocess.run([cm_bin, "serve", "--db", daemon.db, "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, (p.returncode, p.stderr)  # restarted: the other may stop


@pytest.mark.parametrize("args,needle", [
    (["--listen", "nonsense"], "expected ADDR:PORT"),
    (["--listen", "127.0.0.1:"], "expected ADDR:PORT"),
    (["--listen", "127.0.0.1:70000"], "expected ADDR:PORT"),
    (["--listen", "[::1:8080"], "expected ADDR:PORT"),
    (["--listen", "::1:8080"], "expected ADDR:PORT"),  # IPv6 needs its brackets
    (["--threads", "0"], "--threads"),
    (["--tls-cert", "x.pem"], "--tls-cert and --tls-key go together"),
    (["--node", "bad name"], "not a valid node name"),
    (["--bogus"], "unknown"),
])
def test_bad_options_are_usage_errors(cm_bin, tmp_path, args, needle):
    p = serve(cm_bin, tmp_path, *args)
    assert p.returncode == 2
    assert needle in p.stderr
    assert not (tmp_path / "x.db").exists(), "a usage error must not create a store"


def test_help_prints_usage(cm_bin, tmp_path):
    p = serve(cm_bin, tmp_path, "--help")
    assert p.returncode == 0
    assert "usage: clustermgmt serve" in p.stdout


def unread_bytes(server_port, client_port):
    """Bytes the server side of a loopback TCP connection has not read yet
    (/proc/net/tcp's rx_queue), or None when there is no such socket."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote, queues = fields[1], fields[2], fields[4]
            if int(local.split(":")[1], 16) == server_port and \
                    int(remote.split(":")[1], 16) == client_port:
                return int(queues.split(":")[1], 16)
    return None


def offline_write(d, node):
    """A status write taking node offline, as raw HTTP/1.1 (Connection: close)."""
    body = json.dumps({"changes": {node: {"status": "offline"}}}).encode()
    return ("POST /v1/clusters/default/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\nConnection: close\r\n\r\n"
            % (d.admin_token[1], len(body))).encode() + body


def wait_until_read(d, s):
    """Until the daemon has read everything sent on s (a fixed sleep could
    be outlasted by a stall of the sender)."""
    client_port = s.getsockname()[1]
    deadline = time.monotonic() + 10
    while unread_bytes(d.port, client_port) != 0:
        assert time.monotonic() < deadline, "the daemon never read the request"
        time.sleep(0.001)


def test_sigterm_answers_write_in_flight(daemon):
    """A write that reached the daemon before SIGTERM is answered and kept."""
    daemon.set_nodes(["web1"])
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        s.sendall(offline_write(daemon, "web1"))
        wait_until_read(daemon, s)  # SIGTERM once the daemon has read it
        daemon.stop()
        answer = read_to_end(s)
    daemon.start()
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert daemon.node_states()["web1"][0] == "offline"


def thread_wakeups(pid):
    """The voluntary context switches of every thread of pid, summed:
    how often its threads went to sleep, so how often they woke."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                total += next(int(line.split()[1]) for line in f
                              if line.startswith("voluntary_ctxt_switches:"))
        except (OSError, StopIteration):
            pass  # a thread that ended meanwhile
    return total


@not_under_tsan
def test_an_idle_daemon_sleeps(daemon):
    """Nothing to do, nothing done: no worker wakes on a timer of its own
    (the tick runs only while a worker holds a wait), so a fleet of idle
    daemons costs what their stores' round trips cost, not their
    threads' ticks (4 a second per worker before)."""
    daemon.set_nodes(["web1"])
    time.sleep(1)
    before = thread_wakeups(daemon.proc.pid)
    time.sleep(5)
    woken = thread_wakeups(daemon.proc.pid) - before
    assert woken <= 12, "an idle daemon's threads woke %d times in 5 s" % woken


def held_list_request(d):
    """A socket that asked d for the default cluster's node list, with a
    small segment size and receive buffer: most of a large answer waits
    in the daemon, not in the kernel, until the socket is read."""
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", d.port))
    s.sendall(("GET /v1/clusters/default/nodes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Authorization: Bearer %s\r\nConnection: close\r\n\r\n"
               % d.admin_token[1]).encode())
    return s


def test_sigterm_lets_a_large_answer_be_read_to_its_end(daemon):
    """An answer larger than the socket's buffers, still being written
    when SIGTERM arrives, is written out to its last byte before the
    daemon exits: here the client reads it only after the signal. (The
    worker used to end once its handlers were done, cutting it.)"""
    names = ["web%05d-%s" % (i, "x" * 40) for i in range(3000)]
    daemon.set_nodes(names)
    with held_list_request(daemon) as s:
        wait_until_read(daemon, s)
        time.sleep(0.5)  # rendered, and what fits is in the socket
        daemon._expected_exit = True
        daemon.proc.send_signal(signal.SIGTERM)
        time.sleep(1)  # a worker that ends at once has ended by now
        answer = read_to_end(s)
    assert daemon.proc.wait(timeout=15) == 0
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head[:200]
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert length is not None, head
    assert len(body) == int(length.group(1)), "%d of %s bytes" % (len(body), length.group(1))
    assert [n["name"] for n in json.loads(body)["nodes"]] == names
    daemon.start()
