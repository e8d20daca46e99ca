"""
Operator niceties (issue 11 point 6): `--version` wherever it is given,
`serve --log-format json` for log shippers (logfmt stays the default),
`serve --log-file` and its re-opening on SIGHUP, `serve --check-config`.
"""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import Daemon, parse_logfmt

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
