"""
The SQLite store guarded against a bad day (issue 8 points 3, 4 and 5):
one daemon per database file; a database file removed or replaced under a
running daemon makes writes fail with 503 (nothing acknowledged that a
restart would lose) while probes keep answering from memory; and memory
stays flat across many writes that involve no password check.
"""

import http.client
import os
import shutil
import sqlite3
import subprocess

import pytest

from conftest import BEARER, assert_json_error, free_port, parse_logfmt


def second_serve(d, timeout=15):
    """`serve` on d's database, another port; returns the finished process."""
    return subprocess.run(
        [d.bin, "serve", "--listen", "127.0.0.1:%d" % free_port(), "--db", d.db,
         "--admin-password-file", str(d.pw_file)],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_second_daemon_on_same_file_refuses_to_start(daemon):
    d = daemon
    d.set_nodes(["zope1"])
    p = second_serve(d)
    assert p.returncode != 0
    assert d.db in p.stderr, p.stderr
    assert "in use by another clustermgmt daemon" in p.stderr, p.stderr
    assert "process %d" % d.proc.pid in p.stderr, p.stderr
    # the first one is untouched and still writes
    d.set_status({"zope1": {"status": "drain"}})
    assert d.probe("zope1").status_code == 503


def test_file_is_free_again_once_the_daemon_stopped(daemon):
    d = daemon
    d.set_nodes(["zope1"])
    d.stop()
    d.start()
    assert "zope1" in d.node_states()
    d.kill9()  # the kernel releases the lock of a killed process too
    d.start()
    assert "zope1" in d.node_states()


def write_zope1(d, token, status="offline"):
    return d.post("/v1/clusters/default/status", auth=(BEARER, token),
                  json={"changes": {"zope1": {"status": status, "reason": "after"}}})


def assert_writes_refused_probes_unchanged(d, token, needle, since):
    r = write_zope1(d, token)
    body = assert_json_error(r, 503)
    assert needle in body["error"], body
    assert d.db in body["error"], body
    # the probes answer from memory, as before
    r1, r2 = d.probe("zope1"), d.probe("zope2")
    assert (r1.status_code, r1.text) == (200, "OK")
    assert (r2.status_code, r2.text) == (503, "node is offline")
    assert d.node_states()["zope1"] == ("online", "")
    # loudly: an error line naming the file
    line = d.wait_log(r"level=error.*" + needle, since=since)
    assert line is not None, d.log_text(since)
    assert d.db in parse_logfmt(line)["error"]
    # every time, not once
    mark = d.log_mark()
    assert_json_error(write_zope1(d, token), 503)
    assert d.wait_log(r"level=error.*" + needle, since=mark) is not None


def prepared(d):
    d.set_nodes(["zope1", "zope2"])
    d.set_status({"zope2": {"status": "offline"}})
    _, token = d.make_token("operator")
    return token


def test_removed_database_file_refuses_writes(daemon):
    d = daemon
    token = prepared(d)
    mark = d.log_mark()
    os.unlink(d.db)
    assert_writes_refused_probes_unchanged(d, token, "was removed", mark)
    assert d.alive()


def test_replaced_database_file_refuses_writes(daemon):
    d = daemon
    token = prepared(d)
    other = str(d.tmp / "other.db")
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE x (y)")
    con.commit()
    con.close()
    aside = str(d.tmp / "aside.db")
    mark = d.log_mark()
    os.rename(d.db, aside)
    shutil.move(other, d.db)
    assert_writes_refused_probes_unchanged(d, token, "was replaced", mark)
    # the original file put back: writes are stored again, and survive
    os.rename(aside, d.db)
    assert write_zope1(d, token).status_code == 200
    d.stop()
    d.start()
    assert d.node_states()["zope1"] == ("offline", "after")


def test_removed_database_with_a_ttl_due_retries_without_spinning(daemon):
    """A TTL expiry the store refuses is retried about once a second, not
    in a busy loop (which would burn a core and flood the log)."""
    import time
    d = daemon
    d.set_nodes(["zope1"])
    # 3 s: the file must be gone before the TTL falls due, even if this
    # process stalls a second or two after the write.
    d.set_status({"zope1": {"status": "offline", "ttl": 3}})
    mark = d.log_mark()
    os.unlink(d.db)
    first = d.wait_log("ttl expiry retried", since=mark, timeout=15)
    assert first, "no refused expiry logged:\n" + d.log_text(mark)
    time.sleep(3)  # ~3 retries follow, a busy loop would make thousands
    retries = [l for l in d.log_lines(mark) if "ttl expiry retried" in l]
    assert 1 <= len(retries) <= 6, "%d retries in 3 s after the first" % len(retries)
    assert "was removed" in parse_logfmt(retries[0])["error"]
    # not expired in memory either: nothing that is not stored is shown
    assert d.probe("zope1").status_code == 503
    assert d.alive()


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


@pytest.mark.skipif(os.environ.get("CLUSTERMGMT_SANITIZED") == "1",
                    reason="ASan's quarantine keeps freed memory resident; "
                           "tests/unit/test_engine.c covers reclamation under ASan")
def test_memory_stays_flat_across_10000_token_writes(daemon):
    """Writes through a token involve no password check: before the fix
    the idle password thread kept every replaced snapshot alive (a copy of
    the whole model per write)."""
    d = daemon
    d.set_nodes(["zope%02d" % i for i in range(40)])
    _, token = d.make_token("operator")
    # One kept-alive connection and http.client: `requests` cost the test
    # three times the daemon's CPU per write.
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

    def writes(n):
        for i in range(n):
            status = "offline" if i % 2 == 0 else "online"
            conn.request("POST", "/v1/clusters/default/status", headers=headers,
                         body='{"changes": {"zope00": {"status": "%s"}}}' % status)
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200, body

    writes(1000)  # warm up: pools, caches, SQLite's page cache
    before = vm_rss_kib(d.proc.pid)
    writes(10000)
    after = vm_rss_kib(d.proc.pid)
    conn.close()
    assert after - before < 4 * 1024, "RSS grew from %d KiB to %d KiB" % (before, after)
