"""
Operator niceties (issue 11 point 6): `--version` wherever it is given,
`serve --log-format json` for log shippers (logfmt stays the default),
`serve --log-file` and its re-opening on SIGHUP, `serve --check-config`.
"""

import json
import os
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import free_port, parse_logfmt

VERSION_ARGS = [
    ["--version"],
    ["version"],
    ["serve", "--version"],
    ["status", "--version"],
    ["--json", "--version"],
    ["nodes", "add", "--version"],
    ["rollout", "--version"],
]


def version_of(cm_bin):
    out = subprocess.run([cm_bin, "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    assert out.stdout.startswith("clustermgmt "), out.stdout
    return out.stdout.strip()


@pytest.mark.parametrize("args", VERSION_ARGS, ids=" ".join)
def test_version_everywhere(cm_bin, args):
    out = subprocess.run([cm_bin] + args, capture_output=True, text=True, timeout=10,
                         env=dict(os.environ, CLUSTERMGMT_URL="http://127.0.0.1:1"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == version_of(cm_bin)
    assert out.stderr == ""


def test_demo_seeds_only_an_empty_default_cluster(make_daemon):
    """`serve --demo` (what `make run` starts): node1..node3 into an
    empty default cluster, and nothing once it has nodes."""
    d = make_daemon(["--demo"])
    assert sorted(d.node_states()) == ["node1", "node2", "node3"]
    assert d.probe("node1").status_code == 200
    d.set_nodes(["app1"])
    d.stop()
    d.start()
    assert sorted(d.node_states()) == ["app1"]


def test_log_format_json_lines_are_objects(make_daemon):
    d = make_daemon(["--log-format", "json"])
    d.set_nodes(["zope1"])
    d.set_status({"zope1": {"status": "offline", "reason": 'quotes " and = signs'}})
    d.stop()
    lines = d.log_lines()
    assert lines
    objects = [json.loads(line) for line in lines]
    for o in objects:
        assert {"ts", "level", "msg"} <= set(o), o
        assert all(isinstance(v, str) for v in o.values()), o
    assert any(o["msg"] == "clustermgmt started" and o.get("version") for o in objects)
    assert any(o.get("reason") == 'quotes " and = signs' for o in objects), lines


def test_log_format_default_is_logfmt(daemon):
    for line in daemon.log_lines():
        assert line.startswith("ts="), line
        assert {"ts", "level", "msg"} <= set(parse_logfmt(line))


def test_log_format_unknown_is_a_usage_error(cm_bin, tmp_path):
    out = subprocess.run([cm_bin, "serve", "--log-format", "xml", "--db", str(tmp_path / "x.db")],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    assert "--log-format must be logfmt or json" in out.stderr
    assert not (tmp_path / "x.db").exists()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# --- serve --check-config ------------------------------------------------------


def check_config(cm_bin, tmp_path, *args):
    return subprocess.run([cm_bin, "serve", "--check-config", "--db", str(tmp_path / "cm.db")]
                          + list(args), capture_output=True, text=True, timeout=30,
                          cwd=str(tmp_path))


def test_check_config_accepts_a_good_configuration(cm_bin, tmp_path):
    (tmp_path / "pw").write_text("a-good-password\n")
    out = check_config(cm_bin, tmp_path, "--listen", "127.0.0.1:1", "--admin-password-file",
                       str(tmp_path / "pw"), "--log-format", "json")
    assert out.returncode == 0, out.stderr
    assert "configuration OK" in out.stdout


def test_check_config_does_not_bind_so_a_running_daemon_keeps_its_port(cm_bin, daemon, tmp_path):
    out = check_config(cm_bin, tmp_path, "--listen", "127.0.0.1:%d" % daemon.port)
    assert out.returncode == 0, out.stderr
    assert daemon.alive()


def test_check_config_refuses_a_bad_certificate(cm_bin, tmp_path):
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    out = check_config(cm_bin, tmp_path, "--tls-cert", str(tmp_path / "cert.pem"),
                       "--tls-key", str(tmp_path / "cert.pem"))
    assert out.returncode == 78  # EX_CONFIG: not retried by the systemd unit
    assert "cannot load the TLS certificate" in out.stderr
    assert "cert.pem" in out.stderr


def test_check_config_accepts_a_good_certificate(cm_bin, tmp_path, cert):
    crt, key = cert
    out = check_config(cm_bin, tmp_path, "--tls-cert", str(crt), "--tls-key", str(key))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "nosuchhost.invalid:80", "8080"])
def test_check_config_refuses_a_bad_address(cm_bin, tmp_path, address):
    out = check_config(cm_bin, tmp_path, "--agent-listen", address)
    assert out.returncode in (2, 78), out.stderr  # usage, or configuration
    assert "--agent-listen" in out.stderr and address in out.stderr


def test_check_config_refuses_a_short_admin_password(cm_bin, tmp_path):
    (tmp_path / "pw").write_text("short\n")
    out = check_config(cm_bin, tmp_path, "--admin-password-file", str(tmp_path / "pw"))
    assert out.returncode == 78
    assert "shorter than" in out.stderr


def test_check_config_names_the_daemon_holding_the_store(cm_bin, daemon):
    out = subprocess.run([cm_bin, "serve", "--check-config", "--db", daemon.db],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "in use by another clustermgmt daemon, process %d" % daemon.proc.pid in out.stderr


def test_check_config_refuses_an_unwritable_store(cm_bin, tmp_path):
    (tmp_path / "ro").mkdir(mode=0o500)
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          cm_bin, "serve", "--check-config", "--db",
                          str(tmp_path / "ro" / "cm.db")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "cm.db" in out.stderr


# --- exit statuses: what systemd must not retry ---------------------------------------


def serve_once(cm_bin, tmp_path, *args):
    return subprocess.run([cm_bin, "serve", "--db", str(tmp_path / "cm.db")] + list(args),
                          capture_output=True, text=True, timeout=30, cwd=str(tmp_path))


def test_start_with_a_bad_certificate_exits_78_with_the_reason(cm_bin, tmp_path):
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    out = serve_once(cm_bin, tmp_path, "--listen", "127.0.0.1:%d" % free_port(),
                     "--tls-cert", str(tmp_path / "cert.pem"),
                     "--tls-key", str(tmp_path / "cert.pem"))
    assert out.returncode == 78, out.stderr
    assert "cannot load the TLS certificate" in out.stderr.strip().splitlines()[-1]


def test_start_with_a_bad_postgres_url_exits_78(cm_bin, tmp_path):
    out = subprocess.run([cm_bin, "serve", "--listen", "127.0.0.1:%d" % free_port(), "--db",
                          "postgresql://h/db?nosuchoption=1"],
                         capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert out.returncode == 78, out.stderr
    assert "--db" in out.stderr


def test_start_with_a_bad_option_exits_2(cm_bin, tmp_path):
    out = serve_once(cm_bin, tmp_path, "--threads", "zero")
    assert out.returncode == 2, out.stderr
    assert "--threads" in out.stderr


def test_start_on_an_address_in_use_exits_1_to_be_retried(cm_bin, daemon, tmp_path):
    out = serve_once(cm_bin, tmp_path, "--listen", "127.0.0.1:%d" % daemon.port)
    assert out.returncode == 1, out.stderr
    assert "127.0.0.1:%d" % daemon.port in out.stderr


# --- systemd notifications and SIGHUP ------------------------------------------------


class NotifySocket:
    """What systemd would read from $NOTIFY_SOCKET."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.path = str(path)
        self.messages = []

    def wait_for(self, field, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not any(field in m.split("\n") for m in self.messages):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                return False
        return True


def test_sd_notify_ready_reloading_stopping(make_daemon, tmp_path, monkeypatch):
    notify = NotifySocket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    d = make_daemon()
    assert notify.wait_for("READY=1"), notify.messages
    ready = next(m for m in notify.messages if "READY=1" in m.split("\n"))
    assert "STATUS=serving on 127.0.0.1:%d" % d.port in ready.split("\n")
    assert d.alive()  # READY came once it listens
    d.proc.send_signal(signal.SIGHUP)
    assert notify.wait_for("RELOADING=1"), notify.messages
    notify.messages.clear()
    assert notify.wait_for("READY=1"), notify.messages
    d.stop()
    assert notify.wait_for("STOPPING=1"), notify.messages


def test_no_notify_socket_no_notification(daemon):
    assert daemon.alive()  # nothing to send to; nothing breaks


def test_sighup_reopens_the_log_file(cm_bin, tmp_path):
    log = tmp_path / "cm.log"
    port = free_port()
    (tmp_path / "pw").write_text("log-password-1")
    proc = subprocess.Popen([cm_bin, "serve", "--listen", "127.0.0.1:%d" % port, "--db",
                             str(tmp_path / "cm.db"), "--admin-password-file",
                             str(tmp_path / "pw"), "--log-file", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: log.exists() and "clustermgmt started" in log.read_text())
        log.rename(tmp_path / "cm.log.1")  # what logrotate does
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: log.exists() and "log file re-opened" in log.read_text())
        requests.get("http://127.0.0.1:%d/v1/clusters" % port, auth=("admin", "wrong"),
                     timeout=10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    rotated = (tmp_path / "cm.log.1").read_text()
    assert "clustermgmt started" in rotated and "stopped" not in rotated
    assert "msg=stopped" in log.read_text()
    assert proc.stderr.read() == b""  # nothing went to stderr


def test_log_file_that_cannot_be_opened_fails_the_start(cm_bin, tmp_path):
    out = subprocess.run([cm_bin, "serve", "--db", str(tmp_path / "cm.db"), "--log-file",
                          str(tmp_path / "no" / "such" / "dir" / "log")],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 78  # a configuration error
    assert "--log-file" in out.stderr


def test_unreadable_admin_password_file_fails_the_start_before_the_store_is_made(
        cm_bin, tmp_path):
    out = subprocess.run([cm_bin, "serve", "--listen", "127.0.0.1:%d" % free_port(), "--db",
                          str(tmp_path / "cm.db"), "--admin-password-file",
                          str(tmp_path / "missing")],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 78, out.stderr  # a configuration error
    assert "missing" in out.stderr
    assert not (tmp_path / "cm.db").exists()  # nothing was created
