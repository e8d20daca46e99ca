"""
A small load-balanced web cluster on loopback, for tests/e2e/test_lb_real.py.

Everything here is a real process started by the test and stopped at
teardown, on 127.0.0.1 only:

  AppNode    nginx answering "NAME\\n" on / and passing the probe path
             (/health) through to the clustermgmt daemon with proxy_pass,
             the way the original application servers answered the probe
             themselves.
  HAProxy    `haproxy -f GENERATED -f STATS -db`, configured by
             `clustermgmt lbconfig haproxy`; its stats socket is read with
             `show stat`.
  Varnish    `varnishd -F` configured by `clustermgmt lbconfig varnish`.
  Traffic    a thread sending steady GETs (default 20/s) through one load
             balancer and recording who answered, or the failure.

Every wait is bounded; every process is stopped (SIGTERM, then SIGKILL) by
its stop() method, which teardown always calls.

Ports: start_on_free_port(make) picks a port, starts make(port) and, when
the server could not bind it because another test's server took it since
it was picked, starts a new one on another port. A server counts as
started only once it proves to be this very process (nginx: a per-instance
header; HAProxy: its pid on the stats socket; Varnish: "Child launched OK"
in its own log), never because something accepts on the port.
"""

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import requests

from conftest import free_port, port_taken

PORT_ATTEMPTS = 4

STOP_TIMEOUT = 5.0


def cli(cm_bin, daemon, *args, timeout=60, check=False):
    """Runs `clustermgmt ARGS` as admin against daemon; returns CompletedProcess."""
    env = dict(os.environ)
    for k in ("CLUSTERMGMT_TOKEN", "NETRC"):
        env.pop(k, None)
    env.update(CLUSTERMGMT_URL=daemon.url, CLUSTERMGMT_USER="admin",
               CLUSTERMGMT_PASSWORD=daemon.password)
    r = subprocess.run([cm_bin] + list(args), env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, "clustermgmt %s -> %d\nstdout: %s\nstderr: %s" % (
            " ".join(args), r.returncode, r.stdout, r.stderr)
    return r


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it is true; returns its value or raises."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


class PortTaken(Exception):
    """The server could not bind its port: another process has it."""


def start_on_free_port(make, attempts=PORT_ATTEMPTS):
    """make(port) -> an unstarted Process; returns it started, on a port that
    was free (another one when the first was taken meanwhile)."""
    for attempt in range(attempts):
        proc = make(free_port())
        try:
            return proc.start()
        except PortTaken:
            proc.stop()
            if attempt == attempts - 1:
                raise AssertionError("%s: every port tried was taken; log:\n%s"
                                     % (proc.name, proc.log_text()[-2000:]))
    return None


class Process:
    """A foreground server process with its output in a log file."""

    stop_signal = signal.SIGTERM
    port = None
    start_timeout = 15.0

    def __init__(self, name, directory):
        self.name = name
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / (name + ".log")
        self.proc = None

    def argv(self):
        raise NotImplementedError

    def start(self):
        """Starts the process and waits (bounded) until it is ready; raises
        PortTaken when it could not bind self.port."""
        assert not self.running(), "%s already running" % self.name
        self._mark = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, cwd=str(self.dir), start_new_session=True)
        wait_until(self._started, self.start_timeout, what="%s to start" % self.name)
        return self

    def _started(self):
        if not self.running():
            if self.port is not None and port_taken(self.log_text(self._mark), self.port):
                raise PortTaken(self.name)
            self.assert_alive()
        return self.ready()

    def ready(self):
        """True once this very process serves (not just anything on its port)."""
        raise NotImplementedError

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=None):
        """Stops the process (bounded); safe to call when not running."""
        if not self.running():
            return
        self.proc.send_signal(sig or self.stop_signal)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)

    def log_text(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def assert_alive(self):
        assert self.running(), "%s exited (%s); log:\n%s" % (
            self.name, self.proc and self.proc.returncode, self.log_text()[-3000:])


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class AppNode(Process):
    """One application node: nginx answering its own name."""

    def __init__(self, name, directory, port, daemon_port, mount="/health"):
        super().__init__(name, directory)
        self.port = port
        self.address = "127.0.0.1:%d" % port
        self.instance = os.urandom(8).hex()
        conf = self.dir / "nginx.conf"
        d = self.dir
        conf.write_text("""
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        # the probe goes to the daemon, query string and User-Agent included
        location = {mount} {{
            proxy_pass http://127.0.0.1:{daemon_port};
        }}
        location / {{
            default_type text/plain;
            add_header Cache-Control "no-store" always;
            add_header X-Instance "{instance}" always;
            return 200 "{name}\\n";
        }}
    }}
}}
""".format(d=d, port=port, mount=mount, daemon_port=daemon_port, name=name,
           instance=self.instance))
        self.conf = conf

    def argv(self):
        return ["nginx", "-p", str(self.dir), "-c", str(self.conf), "-e", str(self.dir / "error.log"),
                "-g", "daemon off;"]

    def ready(self):
        try:
            r = requests.get("http://127.0.0.1:%d/" % self.port, timeout=1,
                             headers={"Connection": "close"})
        except requests.RequestException:
            return False
        return r.headers.get("X-Instance") == self.instance


class HAProxy(Process):
    def __init__(self, directory, config_text, port):
        super().__init__("haproxy", directory)
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.cfg = self.dir / "haproxy.cfg"
        self.cfg.write_text(config_text)
        self.stats_path = self.dir / "stats.sock"
        self.stats_cfg = self.dir / "stats.cfg"
        self.stats_cfg.write_text("global\n    stats socket %s mode 600 level admin\n"
                                  % self.stats_path)

    def argv(self):
        return ["haproxy", "-f", str(self.cfg), "-f", str(self.stats_cfg), "-db"]

    def ready(self):
        """Its own stats socket gives its pid: every listener is bound."""
        try:
            info = self.stats_command("show info")
        except OSError:
            return False
        return ("\nPid: %d\n" % self.proc.pid) in info and accepts(self.port)

    def stats_command(self, command):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.stats_path))
            s.sendall(command.encode() + b"\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.decode(errors="replace")

    def server_status(self):
        """{server name: status} from `show stat` ("UP", "DOWN", "DRAIN", "MAINT", ...)."""
        lines = self.stats_command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("svname") not in (None, "FRONTEND", "BACKEND"):
                out[row["svname"]] = row["status"]
        return out


class Varnish(Process):
    def __init__(self, directory, vcl_text, port):
        super().__init__("varnish", directory)
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.vcl = self.dir / "cluster.vcl"
        self.vcl.write_text(vcl_text)
        self.workdir = self.dir / "varnish"

    def argv(self):
        return ["varnishd", "-F", "-j", "none", "-n", str(self.workdir),
                "-a", "127.0.0.1:%d" % self.port, "-f", str(self.vcl),
                "-s", "malloc,32m", "-T", "none", "-p", "vsl_space=1M"]

    start_timeout = 30.0

    def ready(self):
        """varnishd binds before it launches the child."""
        return "Child launched OK" in self.log_text(self._mark) and accepts(self.port)


class Traffic(threading.Thread):
    """Steady GETs through one load balancer, each on a new connection.

    records: (started, ended, node or None, failure or None), times from
    time.monotonic(). A failure is anything but a 200 carrying a node name.

    workers: requests under way at once, each worker sending rate/workers a
    second. One worker sends its next request only after the last one's
    answer, so it cannot keep a rate whose period is shorter than a
    request's latency on a loaded machine; tests whose verdicts need the
    volume ask for more.
    """

    def __init__(self, name, url, rate=20.0, timeout=5.0, workers=1):
        super().__init__(name="traffic-" + name, daemon=True)
        self.lb = name
        self.url = url
        self.period = workers / rate
        self.workers = workers
        self.timeout = timeout
        self.records = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._n = 0
        self._others = []

    def run(self):
        self._others = [threading.Thread(target=self._send, args=(k,), daemon=True,
                                         name="%s-%d" % (self.name, k))
                        for k in range(1, self.workers)]
        for t in self._others:
            t.start()
        self._send(0)
        for t in self._others:
            t.join()

    def _send(self, k):
        next_at = time.monotonic() + self.period * k / self.workers
        self._halt.wait(max(0.0, next_at - time.monotonic()))
        while not self._halt.is_set():
            with self._lock:
                self._n += 1
                n = self._n
            started = time.monotonic()
            node = failure = None
            try:
                r = requests.get("%s/?r=%d" % (self.url, n), timeout=self.timeout,
                                 headers={"Connection": "close"})
                body = r.text.strip()
                if r.status_code == 200 and body.startswith("app"):
                    node = body
                else:
                    failure = "HTTP %d %r" % (r.status_code, body[:80])
            except requests.RequestException as e:
                failure = repr(e)
            with self._lock:
                self.records.append((started, time.monotonic(), node, failure))
            next_at += self.period
            delay = next_at - time.monotonic()
            if delay > 0:
                self._halt.wait(delay)
            else:
                next_at = time.monotonic()

    def stop(self):
        self._halt.set()
        self.join(timeout=self.timeout + 2)

    def snapshot(self, since=0.0, until=None):
        with self._lock:
            return [r for r in self.records
                    if r[0] >= since and (until is None or r[0] <= until)]

    def failures(self, since=0.0, until=None):
        return [r for r in self.snapshot(since, until) if r[3] is not None]

    def served(self, node, since=0.0, until=None):
        """Start times of the requests node answered."""
        return [r[0] for r in self.snapshot(since, until) if r[2] == node]

    def nodes_seen(self, since=0.0):
        return {r[2] for r in self.snapshot(since) if r[2] is not None}
