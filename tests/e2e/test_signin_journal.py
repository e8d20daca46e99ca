"""
Sign-ins, failed sign-ins, sign-outs and refusals for lack of role as
security events (issue 16 point 4; docs/API.md "Sign-in events"): under
systemd one journal entry each, with a MESSAGE_ID per kind, PRIORITY and
CLUSTERMGMT_* fields, checked field by field as real libsystemd sends
them to a journald socket double (journal_double.py), and once through
systemd-journald itself, run in a mount namespace of its own and read
back with `journalctl MESSAGE_ID=...`; without the journal, log lines
(logfmt or JSON) with the same fields. Failed sign-ins and refusals are
limited per peer address and overall.

Every process a test starts is stopped by its pid; every wait is bounded.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import free_port, parse_logfmt
from journal_double import JournalDouble, needs_journal_double
from ui_helpers import form_post, login_session, page_csrf

SIGNED_IN = "96328ebd1c7744cf821bbe2b6a0fa876"
SIGNIN_FAILED = "6f4646621487466499ae387f203dd933"
SIGNED_OUT = "dac9ba2db3af475394ad24dc2fecf9d1"
REFUSED = "f0a5b4ec7d9141febabea431b12f4b52"
PEER_BURST = 10  # auth_event.h's AUTH_EVENT_PEER_BURST
ALL_BURST = 100  # AUTH_EVENT_ALL_BURST
ALL_PER_S = 10  # 1000 / AUTH_EVENT_ALL_INTERVAL_MS
TIMEOUT = 10
HEADERS = {"User-Agent": "journal-test/2.0", "X-Forwarded-For": "198.51.100.7, 10.0.0.1"}


@pytest.fixture
def journal(tmp_path, cm_bin, monkeypatch):
    j = JournalDouble(tmp_path, cm_bin, monkeypatch)
    try:
        yield j
    finally:
        j.close()


@pytest.fixture
def jdaemon(make_daemon, journal):
    """A daemon whose journal is the double."""
    d = make_daemon(bin_path=journal.bin)
    d.journal = journal
    d.set_nodes(["web1", "web2"])
    return d


def of_kind(message_id, **fields):
    def pred(e):
        return e.get("MESSAGE_ID") == message_id and all(
            e.get("CLUSTERMGMT_" + k.upper()) == v for k, v in fields.items())
    return pred


def assert_request_fields(e, r, path):
    """The fields every event of a request carries: peer, the forwarded
    chain (not from a listed proxy), user agent, request id, path."""
    assert e["CLUSTERMGMT_PEER"] == "127.0.0.1"
    assert e["CLUSTERMGMT_FORWARDED"] == "198.51.100.7, 10.0.0.1"
    assert e["CLUSTERMGMT_FORWARDED_TRUSTED"] == "no"
    assert e["CLUSTERMGMT_USER_AGENT"] == "journal-test/2.0"
    assert re.fullmatch(r"[0-9a-f]{16}", e["CLUSTERMGMT_REQUEST_ID"])
    assert e["CLUSTERMGMT_REQUEST_ID"] == r.headers["x-request-id"]
    assert e["CLUSTERMGMT_PATH"] == path
    assert e["SYSLOG_IDENTIFIER"] == "clustermgmt" and e["MESSAGE"]


# --- sign-ins and sign-outs ------------------------------------------------------


@needs_journal_double
def test_password_sign_in_and_sign_out_are_entries_of_their_own(jdaemon):
    d = jdaemon
    s = requests.Session()
    s.headers.update(HEADERS)
    r = s.post(d.url + "/login", data={"user": "admin", "password": d.admin[1], "next": "/"},
               allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303, r.text[:300]
    e = d.journal.wait_for(of_kind(SIGNED_IN))
    assert e["PRIORITY"] == "6" and e["CLUSTERMGMT_EVENT"] == "signed-in"
    assert e["CLUSTERMGMT_PRINCIPAL"] == "admin" and e["CLUSTERMGMT_METHOD"] == "password"
    assert "CLUSTERMGMT_PROBLEM" not in e and "CLUSTERMGMT_SUPPRESSED" not in e
    assert_request_fields(e, r, "/login")
    html = s.get(d.url + "/", timeout=TIMEOUT).text
    r = s.post(d.url + "/logout", data={"csrf": page_csrf(html)}, allow_redirects=False,
               timeout=TIMEOUT)
    assert r.status_code == 303, r.text[:300]
    e = d.journal.wait_for(of_kind(SIGNED_OUT))
    assert e["PRIORITY"] == "6" and e["CLUSTERMGMT_EVENT"] == "signed-out"
    assert e["CLUSTERMGMT_PRINCIPAL"] == "admin" and e["CLUSTERMGMT_METHOD"] == "password"
    assert_request_fields(e, r, "/logout")
    # in the journal instead of log lines
    assert "signed in" not in d.log_text() and "signed out" not in d.log_text()


@needs_journal_double
def test_wrong_password_on_the_page_and_in_basic_is_a_failed_sign_in(jdaemon):
    d = jdaemon
    r = requests.post(d.url + "/login", data={"user": "admin", "password": "wrong-1"},
                      headers=HEADERS, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 401
    e = d.journal.wait_for(of_kind(SIGNIN_FAILED, path="/login"))
    assert e["PRIORITY"] == "4" and e["CLUSTERMGMT_EVENT"] == "sign-in-failed"
    assert e["CLUSTERMGMT_PRINCIPAL"] == "admin" and e["CLUSTERMGMT_METHOD"] == "password"
    assert e["CLUSTERMGMT_PROBLEM"] == "wrong user name or password"
    assert_request_fields(e, r, "/login")
    r = requests.get(d.url + "/v1/clusters", auth=("nobody", "wrong-2"), headers=HEADERS,
                     timeout=TIMEOUT)
    assert r.status_code == 401
    e = d.journal.wait_for(of_kind(SIGNIN_FAILED, path="/v1/clusters"))
    assert e["CLUSTERMGMT_PRINCIPAL"] == "nobody" and e["CLUSTERMGMT_METHOD"] == "password"
    assert_request_fields(e, r, "/v1/clusters")
    assert "wrong-1" not in json.dumps(d.journal.entries)  # no password, ever


@needs_journal_double
def test_bad_tokens_are_failed_sign_ins_naming_a_token_only_when_it_exists(jdaemon):
    d = jdaemon
    token_id = d.admin_token[1].split("_")[1]
    wrong_secret = "cmt_%s_%s" % (token_id, "A" * 43)
    for token, problem in (("cmt_00000000deadbeef_x", "no such token"),
                           (wrong_secret, "wrong secret"), ("nonsense", "not a token")):
        r = d.get("/v1/clusters", auth=("bearer", token), headers=HEADERS)
        assert r.status_code == 401
        e = d.journal.wait_for(of_kind(SIGNIN_FAILED, problem=problem))
        assert e["CLUSTERMGMT_METHOD"] == "token" and e["PRIORITY"] == "4"
        if problem == "wrong secret":
            assert e["CLUSTERMGMT_PRINCIPAL"] == "token:" + token_id
        else:
            assert "CLUSTERMGMT_PRINCIPAL" not in e
        assert_request_fields(e, r, "/v1/clusters")


@needs_journal_double
def test_proxy_header_sign_in_names_the_proxy_user_and_trusts_its_chain(make_daemon, journal):
    d = make_daemon(["--auth-proxy-header", "X-Forwarded-User", "--auth-proxy-from",
                     "127.0.0.1/32"], bin_path=journal.bin)
    r = requests.get(d.url + "/", headers=dict(HEADERS, **{"X-Forwarded-User": "carol"}),
                     allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303, r.text[:300]
    e = journal.wait_for(of_kind(SIGNED_IN))
    assert e["CLUSTERMGMT_PRINCIPAL"] == "proxy:carol" and e["CLUSTERMGMT_METHOD"] == "proxy"
    assert e["CLUSTERMGMT_FORWARDED"] == "198.51.100.7, 10.0.0.1"
    assert e["CLUSTERMGMT_FORWARDED_TRUSTED"] == "yes"  # the peer is the listed proxy


@needs_journal_double
def test_oidc_sign_in_and_a_refused_id_token_are_entries(make_daemon, journal, tmp_path):
    test_oidc = pytest.importorskip("test_oidc")
    if test_oidc.NODE is None or not (test_oidc.OIDC_DIR / "node_modules" /
                                      "oidc-provider").exists():
        pytest.skip("needs node and `npm ci` in tests/e2e/oidc")
    pport = free_port()
    secret = tmp_path / "client-secret"
    secret.write_text(test_oidc.CLIENT_SECRET + "\n")
    d = make_daemon(["--oidc-issuer", "http://localhost:%d" % pport, "--oidc-client-id",
                     test_oidc.CLIENT_ID, "--oidc-client-secret-file", str(secret),
                     "--oidc-scopes", "openid profile email groups"], bin_path=journal.bin)
    d.provider = test_oidc.Provider(tmp_path, pport, d.url).start()
    try:
        s = requests.Session()
        s.headers.update(HEADERS)
        r = test_oidc.follow_callback(s, test_oidc.walk_to_callback(s, d, "alice"))
        assert r.status_code == 200, r.text[:300]
        e = journal.wait_for(of_kind(SIGNED_IN))
        assert e["CLUSTERMGMT_PRINCIPAL"] == "oidc:alice" and e["CLUSTERMGMT_METHOD"] == "oidc"
        assert e["CLUSTERMGMT_ISSUER"] == d.provider.issuer
        assert e["CLUSTERMGMT_SUBJECT"] == "alice" and e["PRIORITY"] == "6"
        assert_request_fields(e, r, "/login/oidc/callback")
        # an ID token for another audience
        d.provider.mischief(aud="someone-else")
        s = requests.Session()
        s.headers.update(HEADERS)
        r = test_oidc.follow_callback(s, test_oidc.walk_to_callback(s, d, "alice"))
        assert r.status_code == 401
        e = journal.wait_for(of_kind(SIGNIN_FAILED, method="oidc"))
        assert "not meant for this client" in e["CLUSTERMGMT_PROBLEM"], e
        assert e["CLUSTERMGMT_ISSUER"] == d.provider.issuer and e["PRIORITY"] == "4"
        assert_request_fields(e, r, "/login/oidc/callback")
        # a tampered state: refused before the provider is asked
        r = s.get(d.url + "/login/oidc/callback?state=forged&code=x", headers=HEADERS,
                  timeout=TIMEOUT)
        assert r.status_code == 400
        e = journal.wait_for(lambda e: of_kind(SIGNIN_FAILED, method="oidc")(e) and
                             e["CLUSTERMGMT_REQUEST_ID"] == r.headers["x-request-id"])
        assert "CLUSTERMGMT_PRINCIPAL" not in e and e["CLUSTERMGMT_PROBLEM"]
    finally:
        d.provider.stop()


# --- refusals --------------------------------------------------------------------


@needs_journal_double
def test_role_refusals_are_entries_on_the_api_the_seed_rest_and_the_page(jdaemon):
    d = jdaemon
    tid, token = d.make_token("viewer", "read only")
    r = d.post("/v1/clusters/default/status", auth=("bearer", token), headers=HEADERS,
               json={"changes": {"web1": {"status": "offline"}}})
    assert r.status_code == 403
    e = d.journal.wait_for(of_kind(REFUSED, path="/v1/clusters/default/status"))
    assert e["PRIORITY"] == "5" and e["CLUSTERMGMT_EVENT"] == "refused"
    assert e["CLUSTERMGMT_PRINCIPAL"] == "token:" + tid and e["CLUSTERMGMT_METHOD"] == "token"
    assert e["CLUSTERMGMT_ROLE"] == "viewer" and e["CLUSTERMGMT_ROLE_NEEDED"] == "operator"
    assert e["CLUSTERMGMT_SCOPE"] == "viewer on *" and e["CLUSTERMGMT_CLUSTER"] == "default"
    assert_request_fields(e, r, "/v1/clusters/default/status")
    # the seed's REST
    r = d.post("/health/++rest++setstatus", auth=("bearer", token), headers=HEADERS,
               data={"change": json.dumps({"web1": {"status": "offline"}})})
    assert r.status_code == 403
    e = d.journal.wait_for(of_kind(REFUSED, path="/health/++rest++setstatus"))
    assert e["CLUSTERMGMT_ROLE_NEEDED"] == "operator" and e["CLUSTERMGMT_CLUSTER"] == "default"
    # the page: a viewer's form
    user = d.make_user("vera", "viewer")
    s = login_session(d, *user)
    html = s.get(d.url + "/health/managenodes", timeout=TIMEOUT).text
    r = form_post(s, d, "/health/managenodes",  # the form an operator's page has
                  {"form": "status", "csrf": page_csrf(html), "off": "web1",
                   "shown": "web1,web2"}, headers=HEADERS)
    assert r.status_code == 403
    e = d.journal.wait_for(of_kind(REFUSED, path="/health/managenodes"))
    assert e["CLUSTERMGMT_PRINCIPAL"] == "vera" and e["CLUSTERMGMT_METHOD"] == "password"
    assert e["CLUSTERMGMT_ROLE"] == "viewer" and e["CLUSTERMGMT_ROLE_NEEDED"] == "operator"
    # the admin page
    r = s.get(d.url + "/admin", headers=HEADERS, timeout=TIMEOUT)
    assert r.status_code == 403
    e = d.journal.wait_for(of_kind(REFUSED, path="/admin"))
    assert e["CLUSTERMGMT_ROLE_NEEDED"] == "admin" and e["CLUSTERMGMT_CLUSTER"] == "*"
    assert d.node_states()["web1"][0] == "online"


# --- the bound -------------------------------------------------------------------


def bad_token_from(d, source):
    """A GET with a token that does not exist, from loopback address source."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=TIMEOUT,
                                 source_address=(source, 0))
    try:
        s.sendall(b"GET /v1/clusters HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Authorization: Bearer cmt_00000000deadbeef_x\r\n\r\n")
        answer = s.recv(4096)
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    # recorded or left out, the answer has the id an entry would name
    assert re.search(rb"\r\nx-request-id: [0-9a-f]{16}\r\n", answer, re.I), answer[:400]


@needs_journal_double
def test_a_flood_of_failed_sign_ins_from_one_peer_is_cut_and_counted(jdaemon):
    d = jdaemon
    started = time.monotonic()
    for _ in range(60):
        bad_token_from(d, "127.0.0.1")
    elapsed = time.monotonic() - started
    got = [e for e in d.journal.read(1.0) if e.get("MESSAGE_ID") == SIGNIN_FAILED]
    # one more per AUTH_EVENT_PEER_INTERVAL_MS (6 s) may pass
    assert PEER_BURST <= len(got) <= PEER_BURST + 1 + int(elapsed / 6), (len(got), elapsed)
    # another peer is not held back by the first one's flood, and its entry
    # counts what was left out
    bad_token_from(d, "127.0.0.2")
    e = d.journal.wait_for(of_kind(SIGNIN_FAILED, peer="127.0.0.2"))
    if len(got) == PEER_BURST:
        assert int(e["CLUSTERMGMT_SUPPRESSED"]) == 60 - PEER_BURST
    else:  # a slow flood let one more through, which took the count so far
        assert 0 < int(e["CLUSTERMGMT_SUPPRESSED"]) <= 60 - len(got)
    # the flooding peer is still held back
    bad_token_from(d, "127.0.0.1")
    later = [e for e in d.journal.read(0.5) if e.get("MESSAGE_ID") == SIGNIN_FAILED]
    assert later == [] or time.monotonic() - started > 6


@needs_journal_double
def test_a_flood_from_many_peers_is_cut_overall(jdaemon):
    d = jdaemon
    started = time.monotonic()
    sent = 0
    for i in range(20):
        for _ in range(PEER_BURST):
            bad_token_from(d, "127.0.3.%d" % (i + 1))
            sent += 1
    elapsed = time.monotonic() - started
    got = [e for e in d.journal.read(1.0) if e.get("MESSAGE_ID") == SIGNIN_FAILED]
    # each peer stays within its own burst; the total is cut at the burst
    # over all peers plus what its rate let through meanwhile
    assert len(got) <= ALL_BURST + 1 + int(elapsed * ALL_PER_S), (len(got), elapsed)
    assert len(got) < sent, "nothing was cut: the flood was too slow to tell (%.1f s)" % elapsed


# --- a real journald -------------------------------------------------------------

REAL_JOURNAL_HELPER = r'''
import json, os, subprocess, sys, time
import requests
sys.path.insert(0, os.environ["E2E"])
from ns_helper import start_daemon, stop

DIR, BIN, PORT = os.environ["DIR"], os.environ["BIN"], os.environ["PORT"]
URL, ADMIN = "http://127.0.0.1:" + PORT, ("admin", os.environ["PW"])
# /run of this mount namespace only: journald's sockets and its volatile
# journal (/run/log/journal) live and die with it
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", "/run"], check=True)
os.makedirs("/run/systemd/journal")
out, procs = {}, []
try:
    procs.append(subprocess.Popen(["/lib/systemd/systemd-journald"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + 20
    while not os.path.exists("/run/systemd/journal/socket"):
        assert time.monotonic() < deadline, "journald did not start"
        time.sleep(0.05)
    procs.append(start_daemon([BIN, "serve", "--listen", "127.0.0.1:" + PORT, "--db",
                               DIR + "/cm.db", "--admin-password-file", DIR + "/pw"],
                              DIR + "/daemon.log", URL + "/v1/health",
                              env=dict(os.environ, JOURNAL_STREAM="8:1")))
    h = {"User-Agent": "real-journal/1.0"}
    s = requests.Session()
    r = s.post(URL + "/login", data={"user": "admin", "password": ADMIN[1]}, headers=h,
               allow_redirects=False, timeout=10)
    out["signed in request id"] = r.headers.get("x-request-id")
    r = requests.get(URL + "/v1/clusters", auth=("admin", "wrong-password"), headers=h,
                     timeout=10)
    out["failed request id"] = r.headers.get("x-request-id")
    token = requests.post(URL + "/v1/tokens", auth=ADMIN, timeout=10,
                          json={"role": "viewer"}).json()["token"]
    r = requests.post(URL + "/v1/clusters/default/status", headers=dict(
        h, Authorization="Bearer " + token), json={"changes": {}}, timeout=10)
    out["refused status"] = r.status_code
    deadline = time.monotonic() + 10
    for name, mid in (("signed in", "96328ebd1c7744cf821bbe2b6a0fa876"),
                      ("failed", "6f4646621487466499ae387f203dd933"),
                      ("refused", "f0a5b4ec7d9141febabea431b12f4b52")):
        while True:  # the documented line, with a field match
            q = subprocess.run(["journalctl", "--no-pager", "-o", "json",
                                "MESSAGE_ID=" + mid, "CLUSTERMGMT_PEER=127.0.0.1"],
                               capture_output=True, text=True, timeout=20)
            entries = [json.loads(l) for l in q.stdout.splitlines() if l.strip()]
            if entries or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        out[name] = entries
finally:
    exits = [stop(p) for p in reversed(procs)]
    out["exit"] = exits[0] if len(procs) > 1 else None
print(json.dumps(out))
'''


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None or
                    not os.path.exists("/lib/systemd/systemd-journald") or
                    shutil.which("journalctl") is None,
                    reason="needs root, unshare, systemd-journald and journalctl")
def test_a_real_journald_finds_each_event_by_its_message_id(cm_bin, tmp_path):
    """systemd-journald itself, in a mount namespace of its own (its
    sockets and volatile journal on a tmpfs /run there), receiving what
    the daemon sends; `journalctl MESSAGE_ID=... CLUSTERMGMT_PEER=...`
    finds each kind."""
    (tmp_path / "pw").write_text("admin-password-1")
    (tmp_path / "helper.py").write_text(REAL_JOURNAL_HELPER)
    out = subprocess.run(["unshare", "-m", "/usr/bin/python3", str(tmp_path / "helper.py")],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, BIN=cm_bin, DIR=str(tmp_path),
                                  PW="admin-password-1", PORT=str(free_port()),
                                  E2E=str(Path(__file__).parent)))
    log = (tmp_path / "daemon.log").read_text() if (tmp_path / "daemon.log").exists() else ""
    assert out.returncode == 0, out.stdout + out.stderr + log
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["exit"] == 0 and seen["refused status"] == 403, seen
    (signed_in,), (failed,), (refused,) = seen["signed in"], seen["failed"], seen["refused"]
    assert signed_in["_TRANSPORT"] == "journal" and signed_in["PRIORITY"] == "6"
    assert signed_in["CLUSTERMGMT_PRINCIPAL"] == "admin"
    assert signed_in["CLUSTERMGMT_REQUEST_ID"] == seen["signed in request id"]
    assert failed["PRIORITY"] == "4" and failed["CLUSTERMGMT_PRINCIPAL"] == "admin"
    assert failed["CLUSTERMGMT_REQUEST_ID"] == seen["failed request id"]
    assert failed["CLUSTERMGMT_USER_AGENT"] == "real-journal/1.0"
    assert refused["PRIORITY"] == "5" and refused["CLUSTERMGMT_ROLE_NEEDED"] == "operator"
    assert all(e["SYSLOG_IDENTIFIER"] == "clustermgmt" for e in (signed_in, failed, refused))
    assert "signed in" not in log and "sign-in failed" not in log


# --- without the journal: log lines with the same fields -------------------------


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_without_the_journal_events_are_log_lines_with_the_same_fields(make_daemon, fmt,
                                                                      monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    d = make_daemon(["--log-format", fmt])
    tid, token = d.make_token("viewer", "read only")
    r = d.get("/v1/clusters", auth=("bearer", "cmt_00000000deadbeef_x"), headers=HEADERS)
    assert r.status_code == 401
    r2 = d.post("/v1/clusters/default/status", auth=("bearer", token), headers=HEADERS,
                json={"changes": {}})
    assert r2.status_code == 403

    def line(msg):
        for text in d.log_lines():
            f = json.loads(text) if fmt == "json" else parse_logfmt(text)
            if f.get("msg") == msg:
                return f
        raise AssertionError("no %r line in %s" % (msg, d.log_text()))

    f = line("sign-in failed")
    assert f["level"] == "warn" and f["event"] == "sign-in-failed"
    assert f["method"] == "token" and f["problem"] == "no such token"
    assert f["peer"] == "127.0.0.1" and f["forwarded"] == "198.51.100.7, 10.0.0.1"
    assert f["forwarded_trusted"] == "no" and f["user_agent"] == "journal-test/2.0"
    assert f["request_id"] == r.headers["x-request-id"] and f["path"] == "/v1/clusters"
    f = line("refused: role too low")
    assert f["event"] == "refused" and f["principal"] == "token:" + tid
    assert f["role"] == "viewer" and f["role_needed"] == "operator"
    assert f["scope"] == "viewer on *" and f["cluster"] == "default"
    assert f["request_id"] == r2.headers["x-request-id"]
