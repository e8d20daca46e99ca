"""
Logging (ARCHITECTURE.md src/util/log: logfmt on stderr): the start-up
line names the listen address, the store and the version; a status change
logs who and what; errors are logged; every line is logfmt.
"""

import re
import socket


from conftest import free_port, fresh_source_ip, parse_logfmt

LOGFMT_LINE = re.compile(r'^[^\s="]+=("(?:[^"\\]|\\.)*"|[^\s"]*)( [^\s="]+=("(?:[^"\\]|\\.)*"|[^\s"]*))*$')


def startup_lines(d):
    return d.log_lines()


def test_every_line_is_logfmt(daemon):
    daemon.set_nodes(["zope1"])
    daemon.set_status({"zope1": {"status": "offline", "reason": 'quotes " and = signs'}})
    daemon.get("/v1/clusters", auth=("admin", "wrong"), source=fresh_source_ip())
    daemon.stop()
    lines = daemon.log_lines()
    assert lines
    for line in lines:
        kv = parse_logfmt(line)
        assert {"ts", "level", "msg"} <= set(kv), line
        assert kv["level"] in ("debug", "info", "warn", "error"), line
        assert line.startswith("ts="), line
        assert LOGFMT_LINE.match(line), "not logfmt: %r" % line


def test_startup_line_names_listen_address(daemon):
    text = daemon.log_text()
    assert "127.0.0.1:%d" % daemon.port in text, text


def test_startup_line_names_store(daemon):
    text = daemon.log_text()
    assert daemon.db in text, text


def test_startup_line_names_version(daemon, cm_bin):
    import subprocess
    version = subprocess.run([cm_bin, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()[-1]
    lines = [l for l in daemon.log_lines() if version in l]
    assert lines, daemon.log_text()
    assert any(parse_logfmt(l).get("version") == version for l in lines), lines


def test_one_startup_line_names_address_store_and_version(daemon):
    addr = "127.0.0.1:%d" % daemon.port
    lines = daemon.log_lines()
    assert any(addr in l and daemon.db in l and "version=" in l for l in lines), "\n".join(lines)


def test_status_change_logs_who_and_what(daemon):
    daemon.set_nodes(["zope1"])
    op = daemon.make_user("dave", "operator")
    mark = daemon.log_mark()
    daemon.set_status({"zope1": {"status": "offline", "reason": "patching"}}, auth=op)
    line = daemon.wait_log(r"zope1", since=mark, timeout=3)
    assert line, "status change not logged:\n" + daemon.log_text(mark)
    lines = [l for l in daemon.log_lines(mark) if "zope1" in l]
    assert any("dave" in l and "offline" in l for l in lines), lines


def test_status_change_log_names_address(daemon):
    daemon.set_nodes(["zope1"])
    mark = daemon.log_mark()
    daemon.set_status({"zope1": {"status": "drain"}})
    daemon.wait_log(r"zope1", since=mark, timeout=3)
    lines = [l for l in daemon.log_lines(mark) if "zope1" in l and "drain" in l]
    assert any("127.0.0.1" in l for l in lines), lines


def test_ttl_expiry_is_logged(daemon):
    daemon.set_nodes(["zope1"])
    mark = daemon.log_mark()
    daemon.set_status({"zope1": {"status": "offline", "ttl": 1}})
    line = daemon.wait_log(r"ttl.*zope1|zope1.*ttl", since=mark, timeout=10)
    assert line, daemon.log_text(mark)


def test_failed_login_is_logged(daemon):
    src = fresh_source_ip()
    mark = daemon.log_mark()
    daemon.get("/v1/clusters", auth=("mallory", "wrong-password"), source=src)
    line = daemon.wait_log(src.replace(".", r"\."), since=mark, timeout=3)
    assert line, "failed login from %s not logged:\n%s" % (src, daemon.log_text(mark))
    assert parse_logfmt(line)["level"] in ("warn", "error", "info"), line


def test_startup_failure_logs_error_and_exits_nonzero(make_daemon, tmp_path, cm_bin):
    import subprocess
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        pw = tmp_path / "pw"
        pw.write_text("some-password-1")
        p = subprocess.run([cm_bin, "serve", "--listen", "127.0.0.1:%d" % port,
                            "--db", str(tmp_path / "x.db"), "--admin-password-file", str(pw)],
                           capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
    finally:
        busy.close()
    assert p.returncode != 0
    errs = [l for l in p.stderr.splitlines() if parse_logfmt(l).get("level") == "error"]
    assert errs, p.stderr
    assert str(port) in "\n".join(errs), errs


def test_unusable_store_logs_error_and_exits_nonzero(tmp_path, cm_bin):
    import subprocess
    pw = tmp_path / "pw"
    pw.write_text("some-password-1")
    p = subprocess.run([cm_bin, "serve", "--listen", "127.0.0.1:%d" % free_port(),
                        "--db", str(tmp_path / "no" / "such" / "dir" / "x.db"),
                        "--admin-password-file", str(pw)],
                       capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    errs = [l for l in p.stderr.splitlines() if parse_logfmt(l).get("level") == "error"]
    assert errs, p.stderr


def test_bad_serve_option_is_usage_error(tmp_path, cm_bin):
    import subprocess
    p = subprocess.run([cm_bin, "serve", "--no-such-option"], capture_output=True, text=True,
                       timeout=15, stdin=subprocess.DEVNULL, cwd=str(tmp_path))
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.strip()


def _unreachable_postgres_daemon(make_daemon, *args):
    port = free_port()  # nothing listens there: every connection is refused
    return make_daemon(list(args), db="postgresql://cm@127.0.0.1:%d/cm" % port,
                       template=False)


def test_log_level_debug_shows_reconnection_attempts(make_daemon):
    d = _unreachable_postgres_daemon(make_daemon, "--log-level", "debug")
    line = d.wait_log(r"msg=\"PostgreSQL reconnection attempt failed\"", timeout=10)
    kv = parse_logfmt(line)
    assert kv["level"] == "debug" and int(kv["attempt"]) >= 1, line
    assert 0 < int(kv["next_attempt_in_ms"]) <= 5000, line
    why = d.wait_log(r"msg=\"PostgreSQL connection attempt failed\"", timeout=10)
    assert "refused" in parse_logfmt(why)["error"], why


def test_log_level_info_writes_no_debug_line(make_daemon):
    d = _unreachable_postgres_daemon(make_daemon)
    # the failed attempt's debug line comes before the outage's line
    d.wait_log(r"PostgreSQL unreachable", timeout=10)
    d.stop()
    assert not [l for l in d.log_lines() if parse_logfmt(l).get("level") == "debug"]


def test_bad_log_level_is_refused(cm_bin, tmp_path):
    import subprocess
    r = subprocess.run([cm_bin, "serve", "--db", str(tmp_path / "x.db"), "--log-level", "loud"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "--log-level must be debug, info, warn or error, not 'loud'" in r.stderr
    assert not (tmp_path / "x.db").exists()
