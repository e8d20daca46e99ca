"""
Black-box tests of the `clustermgmt` client commands (docs/CLI.md).

Three kinds, in this order:

  * command-line tests that need no server (help, usage errors, exit 2;
    unreachable server, exit 3);
  * tests against a small fake API in this file, which records every
    request, so what the CLI sends (method, path, credentials, change set)
    and how it prints a known answer are pinned exactly;
  * end-to-end tests against the real daemon (the `daemon` fixture of
    conftest.py).

Every run gets a clean environment: no CLUSTERMGMT_* variables, HOME in a
temporary directory (so no real ~/.netrc is read) and no NETRC.
"""

import base64
import json
import os
import re
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port, sanitizer_of

RUN_TIMEOUT = 60


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def cm(cm_bin, home):
    """cm(*args, input=None, env={}) -> CompletedProcess of the CLI."""

    def run(*args, input=None, env=None):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("CLUSTERMGMT_") and k != "NETRC"}
        e["HOME"] = str(home)
        e.update(env or {})
        return subprocess.run([cm_bin] + list(args), input=input, env=e,
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)

    return run


def closed_port_url():
    return "http://127.0.0.1:%d" % free_port()


def assert_usage_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr.startswith("clustermgmt: ") and r.stderr.count("\n") == 1, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


# --- help -------------------------------------------------------------------

HELP_COMMANDS = [[], ["status"], ["offline"], ["online"], ["drain"], ["nodes"],
                 ["nodes", "add"], ["cluster"], ["user"], ["token"], ["token", "create"]]


@pytest.mark.parametrize("words", HELP_COMMANDS, ids=lambda w: " ".join(w) or "main")
def test_help_prints_usage_on_stdout_and_exits_0(cm, words):
    r = cm(*(words + ["--help"]))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: clustermgmt"), r.stdout
    assert r.stderr == ""


def test_help_needs_no_server_even_when_unreachable(cm):
    r = cm("--server", closed_port_url(), "status", "--help")
    assert r.returncode == 0 and "status" in r.stdout


def test_short_h_is_help(cm):
    r = cm("offline", "-h")
    assert r.returncode == 0 and r.stdout.startswith("usage: clustermgmt offline")


def test_main_help_lists_commands_options_and_exit_codes(cm):
    out = cm("--help").stdout
    for word in ["status", "offline", "online", "drain", "nodes", "cluster", "user", "token",
                 "--server", "--cluster", "--user", "--password-stdin", "--json", "--cacert",
                 "--insecure", "CLUSTERMGMT_URL", "CLUSTERMGMT_TOKEN", "CLUSTERMGMT_USER",
                 "CLUSTERMGMT_PASSWORD", "netrc", "Exit codes"]:
        assert word in out, word


def test_main_help_lists_rollout(cm):
    out = cm("--help").stdout
    assert re.search(r"^\s+rollout\b", out, re.M), out


def test_command_help_documents_ttl_forms(cm):
    out = cm("offline", "--help").stdout
    assert "--ttl" in out and "10m" in out and "--reason" in out and "--min-online" in out


# --- usage errors (exit 2), no server needed ---------------------------------------


def test_no_command_is_usage_error(cm):
    assert_usage_error(cm(), "missing command")


@pytest.mark.parametrize("word", ["bogus", "rollouts"])
def test_unknown_command_is_usage_error(cm, word):
    r = cm(word)
    assert_usage_error(r)
    assert r.stderr == "clustermgmt: unknown command '%s'; see clustermgmt --help\n" % word


def test_unknown_option_is_usage_error(cm):
    assert_usage_error(cm("status", "--bogus"), "'--bogus'")


def test_option_without_value_is_usage_error(cm):
    assert_usage_error(cm("offline", "a", "--reason"), "--reason")


def test_option_of_another_command_is_usage_error(cm):
    assert_usage_error(cm("nodes", "list", "--address", "h:1"), "--address", "nodes list")


def test_offline_without_names_is_usage_error(cm):
    assert_usage_error(cm("offline", "--server", closed_port_url()), "usage")


def test_group_without_subcommand_is_usage_error(cm):
    assert_usage_error(cm("nodes"), "nodes")


def test_unknown_subcommand_is_usage_error(cm):
    assert_usage_error(cm("cluster", "frob"), "frob")


@pytest.mark.parametrize("args", [
    ["status", "extra"],
    ["nodes", "add"],
    ["nodes", "add", "a", "b"],
    ["nodes", "rm"],
    ["nodes", "set"],
    ["cluster", "add", "c2"],
    ["cluster", "rm"],
    ["user", "add", "bob", "--password-stdin"],
    ["user", "add", "bob", "--role", "viewer"],
    ["user", "rm"],
    ["token", "create"],
    ["token", "revoke"],
], ids=lambda a: " ".join(a))
def test_missing_or_extra_argument_is_usage_error(cm, args):
    # A closed port: trying to connect would exit 3, not 2.
    assert_usage_error(cm(*args, "--server", closed_port_url()), "usage")


@pytest.mark.parametrize("ttl", ["", "0", "-5", "10x", "m", "1.5h", "10 m", "31d"])
def test_bad_ttl_is_usage_error(cm, ttl):
    assert_usage_error(cm("offline", "a", "--ttl", ttl, "--server", closed_port_url()),
                       "--ttl")


def test_ttl_with_online_is_usage_error(cm):
    assert_usage_error(cm("online", "a", "--ttl", "10m", "--server", closed_port_url()),
                       "--ttl")


@pytest.mark.parametrize("k", ["x", "-1", "1.5", ""])
def test_bad_min_online_is_usage_error(cm, k):
    assert_usage_error(cm("drain", "a", "--min-online", k, "--server", closed_port_url()),
                       "--min-online")


def test_server_that_is_not_an_http_url_is_usage_error(cm):
    assert_usage_error(cm("status", "--server", "ftp://127.0.0.1"), "--server")


def test_password_stdin_without_user_is_usage_error(cm):
    assert_usage_error(cm("status", "--password-stdin", "--server", closed_port_url(),
                          input="pw\n"), "--user")


def test_user_without_password_is_usage_error(cm):
    assert_usage_error(cm("status", "--user", "bob", "--server", closed_port_url()),
                       "password")


def test_empty_stdin_password_is_usage_error(cm):
    assert_usage_error(cm("status", "--user", "bob", "--password-stdin", "--server",
                          closed_port_url(), input=""), "stdin")


def test_serve_after_global_options_is_usage_error(cm):
    assert_usage_error(cm("--json", "serve"), "serve")


# --- unreachable server (exit 3) ------------------------------------------------------


def test_closed_port_exits_3_with_connection_refused(cm):
    url = closed_port_url()
    r = cm("status", "--server", url)
    assert r.returncode == 3
    assert r.stdout == ""
    assert r.stderr == "clustermgmt: cannot reach %s: Connection refused\n" % url


def test_server_from_env_is_used(cm):
    url = closed_port_url()
    r = cm("status", env={"CLUSTERMGMT_URL": url})
    assert r.returncode == 3 and url in r.stderr


def test_server_option_beats_env(cm):
    url, other = closed_port_url(), closed_port_url()
    r = cm("status", "--server", url, env={"CLUSTERMGMT_URL": other})
    assert r.returncode == 3 and url in r.stderr and other not in r.stderr


def test_global_options_may_come_before_the_command(cm):
    url = closed_port_url()
    r = cm("--server", url, "--cluster", "x", "offline", "a")
    assert r.returncode == 3 and url in r.stderr


def test_unresolvable_host_exits_3(cm):
    r = cm("status", "--server", "http://no-such-host.invalid:8080")
    assert r.returncode == 3
    assert r.stderr.startswith("clustermgmt: cannot reach http://no-such-host.invalid:8080: ")


def test_silent_server_exits_3_with_one_sentence(cm):
    # A listener that accepts and closes: the server "answers" nothing.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        port = s.getsockname()[1]

        def close_all():
            for _ in range(4):
                try:
                    c, _ = s.accept()
                    c.close()
                except OSError:
                    return

        t = threading.Thread(target=close_all, daemon=True)
        t.start()
        r = cm("status", "--server", "http://127.0.0.1:%d" % port)
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith("clustermgmt: cannot reach ") and r.stderr.count("\n") == 1


# Fails every allocation larger than FAIL_ALLOC_OVER bytes (LD_PRELOAD).
FAIL_BIG_ALLOC_C = r"""
#include <stdlib.h>
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static size_t limit(void)
{
    const char *s = getenv("FAIL_ALLOC_OVER");
    return s ? strtoul(s, NULL, 10) : (size_t)-1;
}
void *malloc(size_t n) { return n > limit() ? NULL : __libc_malloc(n); }
void *calloc(size_t a, size_t b) { return a * b > limit() ? NULL : __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { return n > limit() ? NULL : __libc_realloc(p, n); }
"""


def test_out_of_memory_aborts_and_is_not_called_unreachable(cm, cm_bin, fake, tmp_path):
    # One out-of-memory policy (util/xalloc.h): the CLI aborts, as the
    # daemon does; it used to report the failed allocation as exit 3.
    if sanitizer_of(cm_bin) is not None:
        pytest.skip("an allocation shim cannot be preloaded before a sanitizer's runtime")
    shim = tmp_path / "failbig.so"
    (tmp_path / "failbig.c").write_text(FAIL_BIG_ALLOC_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(shim), str(tmp_path / "failbig.c")],
                   check=True, timeout=RUN_TIMEOUT)
    # A reply body of 3 MB: holding it needs an allocation over 1 MB.
    fake.reply("GET", NODES_PATH, 200, node_list(node("zope1", reason="x" * 3_000_000)))
    ok = cm("status", "--server", fake.url)
    assert ok.returncode == 0, ok.stderr
    r = cm("status", "--server", fake.url,
           env={"LD_PRELOAD": str(shim), "FAIL_ALLOC_OVER": str(1 << 20)})
    assert r.returncode == -6, (r.returncode, r.stderr)  # SIGABRT
    assert "cannot reach" not in r.stderr


# --- a recording fake API -----------------------------------------------------------------


class FakeApi:
    """An HTTP(S) server answering canned JSON and recording every request."""

    def __init__(self, tls=None):
        self.requests = []
        self.routes = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                api.requests.append({"method": self.command, "path": self.path,
                                     "headers": {k.lower(): v for k, v in self.headers.items()},
                                     "body": body})
                status, text = api.routes.get((self.command, self.path),
                                              (404, json.dumps({"error": "no such route",
                                                                "detail": None})))
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reply(self, method, path, status, doc):
        self.routes[(method, path)] = (status, doc if isinstance(doc, str) else json.dumps(doc))

    def last(self):
        assert self.requests, "the CLI sent no request"
        return self.requests[-1]

    def last_json(self):
        return json.loads(self.last()["body"])

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    f = FakeApi()
    yield f
    f.close()


def node(name, status="online", reason="", changed_at=None, expires_at=None, address=None,
         check=None, changed_by=""):
    return {"name": name, "status": status, "reason": reason, "changed_by": changed_by,
            "changed_at": changed_at, "expires_at": expires_at, "address": address,
            "check": check}


def iso(seconds_from_now):
    import datetime
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


NODES_PATH = "/v1/clusters/default/nodes"
STATUS_PATH = "/v1/clusters/default/status"


def node_list(*nodes, version=3):
    return {"cluster": "default", "version": version, "nodes": list(nodes)}


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


# --- output ---------------------------------------------------------------------------------


def test_status_prints_aligned_table_with_relative_times(cm, fake):
    fake.reply("GET", NODES_PATH, 200, node_list(
        node("zope1", changed_at=iso(-3 * 3600 - 120)),
        node("zope22", "offline", "kernel update", changed_at=iso(-300), expires_at=iso(540)),
        node("z3", "drain", changed_at=None)))
    r = cm("status", "--server", fake.url)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.match(r"^NAME +STATUS +REASON +SINCE +EXPIRES$", lines[0]), lines[0]
    cols = [lines[0].index(h) for h in ["STATUS", "REASON", "SINCE", "EXPIRES"]]
    for line in lines[1:]:
        for c in cols:
            assert line[c - 2:c] == "  " and line[c] != " ", (line, c)
    assert lines[1].split()[:2] == ["zope1", "online"] and "3h2m ago" in lines[1]
    assert lines[1].rstrip().endswith("-")
    assert "zope22" in lines[2] and "offline" in lines[2] and "kernel update" in lines[2]
    # Two units, the second left out when zero (util/timefmt.h); seconds
    # may have passed between writing the times (cut to the second) and
    # printing them: up to 9, room for a stall of the CLI or this process.
    assert re.search(r"\b(5m|5m[1-9]s|4m5\ds) ago\b", lines[2]), lines[2]
    assert re.search(r"in (9m|8m5\ds)$", lines[2]), lines[2]
    assert lines[3].split() == ["z3", "drain", "-", "-", "-"]
    assert fake.last()["method"] == "GET" and fake.last()["path"] == NODES_PATH


def test_status_json_prints_the_server_document(cm, fake):
    doc = node_list(node("a"))
    fake.reply("GET", NODES_PATH, 200, doc)
    r = cm("status", "--json", "--server", fake.url)
    assert r.returncode == 0
    assert json.loads(r.stdout) == doc and r.stdout.endswith("\n")


def test_control_characters_in_reason_do_not_break_the_table(cm, fake):
    fake.reply("GET", NODES_PATH, 200, node_list(node("a", "offline", "x\ny\tz")))
    r = cm("status", "--server", fake.url)
    assert len(r.stdout.splitlines()) == 2 and "x?y?z" in r.stdout


def test_nodes_list_table_columns(cm, fake):
    fake.reply("GET", NODES_PATH, 200, node_list(
        node("a", address="10.0.0.1:8080", check="http://10.0.0.1:8080/ok"), node("b")))
    r = cm("nodes", "list", "--server", fake.url)
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "CHECK", "STATUS"]
    assert lines[1].split() == ["a", "10.0.0.1:8080", "http://10.0.0.1:8080/ok", "online"]
    assert lines[2].split() == ["b", "-", "-", "online"]


def test_cluster_list_table(cm, fake):
    fake.reply("GET", "/v1/clusters", 200, {"clusters": [
        {"name": "default", "path": "/health", "version": 7, "nodes": 3, "online": 2}]})
    r = cm("cluster", "list", "--server", fake.url)
    assert r.stdout.splitlines() == ["NAME     PATH     VERSION  NODES  ONLINE",
                                     "default  /health  7        3      2"]


# --- what is sent ------------------------------------------------------------------------------


def test_offline_sends_one_atomic_change_set(cm, fake):
    fake.reply("POST", STATUS_PATH, 200, node_list(node("a", "offline"), node("b", "offline")))
    r = cm("offline", "a", "b", "--reason", "deploy 42", "--ttl", "10m", "--min-online", "1",
           "--server", fake.url)
    assert r.returncode == 0, r.stderr
    req = fake.last()
    assert (req["method"], req["path"]) == ("POST", STATUS_PATH)
    assert req["headers"]["content-type"] == "application/json"
    entry = {"status": "offline", "reason": "deploy 42", "ttl": 600}
    assert json.loads(req["body"]) == {"changes": {"a": entry, "b": entry}, "min_online": 1}
    assert r.stdout.splitlines()[0].split() == ["NAME", "STATUS", "REASON", "SINCE", "EXPIRES"]


def test_online_sends_status_only(cm, fake):
    fake.reply("POST", STATUS_PATH, 200, node_list(node("a")))
    assert cm("online", "a", "--server", fake.url).returncode == 0
    assert fake.last_json() == {"changes": {"a": {"status": "online"}}}


@pytest.mark.parametrize("ttl,seconds", [("90", 90), ("90s", 90), ("10m", 600), ("2h", 7200),
                                         ("1d", 86400)])
def test_ttl_forms(cm, fake, ttl, seconds):
    fake.reply("POST", STATUS_PATH, 200, node_list(node("a", "drain")))
    assert cm("drain", "a", "--ttl", ttl, "--server", fake.url).returncode == 0
    assert fake.last_json()["changes"]["a"] == {"status": "drain", "ttl": seconds}


def test_names_are_percent_encoded_in_paths(cm, fake):
    path = "/v1/clusters/a%20b%2Fc/nodes/n%3Fx"
    fake.reply("DELETE", path, 200, {"cluster": "a b/c", "version": 2, "deleted": "n?x"})
    r = cm("nodes", "rm", "n?x", "--cluster", "a b/c", "--server", fake.url)
    assert r.returncode == 0, r.stderr
    assert fake.last()["path"] == path
    assert r.stdout == "node 'n?x' removed from cluster 'a b/c'\n"


def test_server_url_with_trailing_slash(cm, fake):
    fake.reply("GET", NODES_PATH, 200, node_list())
    assert cm("status", "--server", fake.url + "/").returncode == 0
    assert fake.last()["path"] == NODES_PATH


def test_nodes_set_sends_the_list(cm, fake):
    fake.reply("PUT", NODES_PATH, 200, node_list(node("a"), node("b")))
    r = cm("nodes", "set", "a", "b", "a", "--server", fake.url)
    assert r.returncode == 0
    assert fake.last_json() == {"nodes": ["a", "b", "a"]}
    assert r.stdout.splitlines()[0].split() == ["NAME", "ADDRESS", "CHECK", "STATUS"]


def test_nodes_add_sends_address_and_check_and_says_added(cm, fake):
    fake.reply("PUT", NODES_PATH + "/web1", 201,
               {"cluster": "default", "version": 2, "node": node("web1")})
    r = cm("nodes", "add", "web1", "--address", "10.0.0.1:80", "--check", "http://x/ok",
           "--server", fake.url)
    assert r.returncode == 0
    assert fake.last_json() == {"address": "10.0.0.1:80", "check": "http://x/ok"}
    assert r.stdout == "node 'web1' added to cluster 'default'\n"


def test_nodes_add_existing_says_updated(cm, fake):
    fake.reply("PUT", NODES_PATH + "/web1", 200,
               {"cluster": "default", "version": 2, "node": node("web1")})
    r = cm("nodes", "add", "web1", "--server", fake.url)
    assert fake.last_json() == {}
    assert r.stdout == "node 'web1' updated in cluster 'default'\n"


def test_cluster_add_and_rm(cm, fake):
    fake.reply("POST", "/v1/clusters", 201, {"name": "shop", "path": "/shop", "version": 0})
    r = cm("cluster", "add", "shop", "--path", "/shop", "--server", fake.url)
    assert r.returncode == 0 and fake.last_json() == {"name": "shop", "path": "/shop"}
    fake.reply("DELETE", "/v1/clusters/shop", 200, {"deleted": "shop"})
    r = cm("cluster", "rm", "shop", "--server", fake.url)
    assert r.returncode == 0 and r.stdout == "cluster 'shop' removed\n"


def test_user_add_reads_new_password_from_stdin(cm, fake):
    fake.reply("POST", "/v1/users", 201, {"name": "bob", "role": "operator", "created_at": iso(0)})
    r = cm("user", "add", "bob", "--role", "operator", "--password-stdin", "--server", fake.url,
           input="bobs secret pw\n", env={"CLUSTERMGMT_TOKEN": "cmt_1_x"})
    assert r.returncode == 0, r.stderr
    assert fake.last_json() == {"name": "bob", "password": "bobs secret pw", "role": "operator"}
    assert fake.last()["headers"]["authorization"] == "Bearer cmt_1_x"
    assert "bobs secret pw" not in r.stdout + r.stderr


def test_user_add_with_user_reads_both_passwords_from_stdin(cm, fake):
    fake.reply("POST", "/v1/users", 201, {"name": "bob", "role": "viewer", "created_at": iso(0)})
    r = cm("--user", "admin", "--password-stdin", "user", "add", "bob", "--role", "viewer",
           "--server", fake.url, input="admin pw\nnew pw 123\n")
    assert r.returncode == 0, r.stderr
    assert fake.last()["headers"]["authorization"] == basic("admin", "admin pw")
    assert fake.last_json()["password"] == "new pw 123"


def test_token_create_prints_token_alone_and_a_note(cm, fake):
    fake.reply("POST", "/v1/tokens", 201, {"id": "t1", "token": "cmt_t1_secret",
                                           "role": "operator", "description": "ci"})
    r = cm("token", "create", "--role", "operator", "--description", "ci", "--server", fake.url)
    assert r.returncode == 0
    assert fake.last_json() == {"role": "operator", "description": "ci"}
    assert r.stdout == "cmt_t1_secret\n"
    assert "not be shown again" in r.stderr


def test_token_revoke_and_list(cm, fake):
    fake.reply("DELETE", "/v1/tokens/t1", 200, {"deleted": "t1"})
    assert cm("token", "revoke", "t1", "--server", fake.url).stdout == "token 't1' revoked\n"
    fake.reply("GET", "/v1/tokens", 200, {"tokens": [{"id": "t2", "role": "viewer",
                                                      "description": "", "created_by": "admin",
                                                      "created_at": "2026-01-01T00:00:00Z"}]})
    lines = cm("token", "list", "--server", fake.url).stdout.splitlines()
    assert lines[0].split() == ["ID", "ROLE", "DESCRIPTION", "CREATED_BY", "CREATED"]
    assert lines[1].split() == ["t2", "viewer", "-", "admin", "2026-01-01T00:00:00Z"]


# --- refusals (exit 1) ----------------------------------------------------------------------


def test_refusal_prints_the_servers_sentence_and_exits_1(cm, fake):
    fake.reply("POST", STATUS_PATH, 404, {"error": "node 'x' not found in cluster 'default'",
                                          "detail": {"entry": "x"}})
    r = cm("offline", "x", "--server", fake.url)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == "clustermgmt: node 'x' not found in cluster 'default'\n"


def test_refusal_without_json_names_the_status(cm, fake):
    fake.reply("GET", NODES_PATH, 502, "<html>bad gateway</html>")
    r = cm("status", "--server", fake.url)
    assert r.returncode == 1 and "502" in r.stderr and r.stderr.count("\n") == 1


def test_refusal_with_json_flag_still_reports_on_stderr(cm, fake):
    fake.reply("GET", NODES_PATH, 403, {"error": "role viewer may not do this", "detail": None})
    r = cm("status", "--json", "--server", fake.url)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == "clustermgmt: role viewer may not do this\n"


# --- credentials -----------------------------------------------------------------------------


@pytest.fixture
def fake_nodes(fake):
    fake.reply("GET", NODES_PATH, 200, node_list(node("a")))
    return fake


def sent_auth(fake):
    return fake.last()["headers"].get("authorization")


def test_no_credentials_sends_none(cm, fake_nodes):
    assert cm("status", "--server", fake_nodes.url).returncode == 0
    assert sent_auth(fake_nodes) is None


def test_user_and_password_stdin(cm, fake_nodes):
    r = cm("status", "--user", "op", "--password-stdin", "--server", fake_nodes.url,
           input="s3cret pw\n")
    assert r.returncode == 0, r.stderr
    assert sent_auth(fake_nodes) == basic("op", "s3cret pw")


def test_password_stdin_strips_crlf(cm, fake_nodes):
    cm("status", "--user", "op", "--password-stdin", "--server", fake_nodes.url, input="pw\r\n")
    assert sent_auth(fake_nodes) == basic("op", "pw")


def test_env_user_and_password(cm, fake_nodes):
    cm("status", "--server", fake_nodes.url,
       env={"CLUSTERMGMT_USER": "op", "CLUSTERMGMT_PASSWORD": "pw1"})
    assert sent_auth(fake_nodes) == basic("op", "pw1")


def test_env_token_is_sent_as_bearer(cm, fake_nodes):
    cm("status", "--server", fake_nodes.url, env={"CLUSTERMGMT_TOKEN": "cmt_a_b"})
    assert sent_auth(fake_nodes) == "Bearer cmt_a_b"


def test_user_option_beats_env_token(cm, fake_nodes):
    cm("status", "--user", "op", "--password-stdin", "--server", fake_nodes.url, input="pw\n",
       env={"CLUSTERMGMT_TOKEN": "cmt_a_b"})
    assert sent_auth(fake_nodes) == basic("op", "pw")


def test_env_token_beats_env_user(cm, fake_nodes):
    cm("status", "--server", fake_nodes.url, env={"CLUSTERMGMT_TOKEN": "cmt_a_b",
                                                  "CLUSTERMGMT_USER": "op",
                                                  "CLUSTERMGMT_PASSWORD": "pw"})
    assert sent_auth(fake_nodes) == "Bearer cmt_a_b"


def test_netrc_in_home(cm, fake_nodes, home):
    (home / ".netrc").write_text("machine 127.0.0.1 login nu password netrc-pw\n")
    (home / ".netrc").chmod(0o600)
    assert cm("status", "--server", fake_nodes.url).returncode == 0
    assert sent_auth(fake_nodes) == basic("nu", "netrc-pw")


def test_netrc_file_from_env(cm, fake_nodes, tmp_path):
    f = tmp_path / "other-netrc"
    f.write_text("machine 127.0.0.1 login nu2 password pw2\n")
    cm("status", "--server", fake_nodes.url, env={"NETRC": str(f)})
    assert sent_auth(fake_nodes) == basic("nu2", "pw2")


def test_env_credentials_beat_netrc(cm, fake_nodes, home):
    (home / ".netrc").write_text("machine 127.0.0.1 login nu password netrc-pw\n")
    cm("status", "--server", fake_nodes.url, env={"CLUSTERMGMT_TOKEN": "cmt_a_b"})
    assert sent_auth(fake_nodes) == "Bearer cmt_a_b"


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture
def fake_tls(cert):
    f = FakeApi(tls=cert)
    f.reply("GET", NODES_PATH, 200, node_list(node("a")))
    yield f
    f.close()


def test_https_with_cacert(cm, fake_tls, cert):
    r = cm("status", "--server", fake_tls.url, "--cacert", str(cert[0]))
    assert r.returncode == 0, r.stderr
    assert "a" in r.stdout


def test_https_self_signed_without_cacert_is_unreachable(cm, fake_tls):
    r = cm("status", "--server", fake_tls.url)
    assert r.returncode == 3
    assert r.stderr.startswith("clustermgmt: cannot reach %s: " % fake_tls.url)


def test_https_insecure_skips_verification(cm, fake_tls):
    assert cm("status", "--server", fake_tls.url, "--insecure").returncode == 0


# --- end to end against the real daemon -------------------------------------------------------


@pytest.fixture
def admin_env(daemon):
    user, pw = daemon.admin
    return {"CLUSTERMGMT_URL": daemon.url, "CLUSTERMGMT_USER": user, "CLUSTERMGMT_PASSWORD": pw}


def test_e2e_status_table(cm, daemon, admin_env):
    daemon.set_nodes(["zope1", "zope2"])
    r = cm("status", env=admin_env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "REASON", "SINCE", "EXPIRES"]
    assert [l.split()[:2] for l in lines[1:]] == [["zope1", "online"], ["zope2", "online"]]


def test_e2e_offline_with_ttl_then_online(cm, daemon, admin_env):
    daemon.set_nodes(["zope1", "zope2"])
    r = cm("offline", "zope1", "--reason", "deploy", "--ttl", "10m", env=admin_env)
    assert r.returncode == 0, r.stderr
    row = [l for l in r.stdout.splitlines() if l.startswith("zope1")][0]
    assert "offline" in row and "deploy" in row and re.search(r"in (10m|9m5\ds)$", row), row
    assert daemon.node_states()["zope1"] == ("offline", "deploy")
    assert daemon.probe("zope1").status_code == 503
    assert cm("online", "zope1", env=admin_env).returncode == 0
    assert daemon.node_states()["zope1"][0] == "online"


def test_e2e_json_output_is_the_node_list(cm, daemon, admin_env):
    daemon.set_nodes(["zope1"])
    r = cm("drain", "zope1", "--json", env=admin_env)
    doc = json.loads(r.stdout)
    assert doc["nodes"][0]["name"] == "zope1" and doc["nodes"][0]["status"] == "drain"
    assert isinstance(doc["version"], int)


def test_e2e_unknown_node_is_refused_and_changes_nothing(cm, daemon, admin_env):
    daemon.set_nodes(["zope1"])
    r = cm("offline", "zope1", "nosuch", env=admin_env)
    assert r.returncode == 1
    assert r.stderr.startswith("clustermgmt: ") and "nosuch" in r.stderr
    assert r.stderr.count("\n") == 1
    assert daemon.node_states()["zope1"][0] == "online"


def test_e2e_min_online_refusal(cm, daemon, admin_env):
    daemon.set_nodes(["a", "b"])
    r = cm("offline", "a", "b", "--min-online", "1", env=admin_env)
    assert r.returncode == 1
    assert daemon.node_states() == {"a": ("online", ""), "b": ("online", "")}


def test_e2e_bad_password_is_refused(cm, daemon):
    r = cm("status", "--server", daemon.url, "--user", "admin", "--password-stdin",
           input="wrong-password\n")
    assert r.returncode == 1 and r.stderr.startswith("clustermgmt: ")


def test_e2e_user_and_password_stdin(cm, daemon):
    user, pw = daemon.admin
    r = cm("status", "--server", daemon.url, "--user", user, "--password-stdin", input=pw + "\n")
    assert r.returncode == 0, r.stderr


def test_e2e_netrc(cm, daemon, home):
    user, pw = daemon.admin
    (home / ".netrc").write_text("machine 127.0.0.1 login %s password %s\n" % (user, pw))
    (home / ".netrc").chmod(0o600)
    r = cm("status", "--server", daemon.url)
    assert r.returncode == 0, r.stderr


def test_e2e_nodes_add_list_rm(cm, daemon, admin_env):
    assert cm("nodes", "set", "a", "b", env=admin_env).returncode == 0
    r = cm("nodes", "add", "c", "--address", "10.0.0.3:8080", env=admin_env)
    assert r.returncode == 0 and "added" in r.stdout, r.stderr
    lines = cm("nodes", "list", env=admin_env).stdout.splitlines()
    assert [l.split()[0] for l in lines[1:]] == ["a", "b", "c"]
    assert "10.0.0.3:8080" in lines[3]
    assert cm("nodes", "rm", "b", env=admin_env).returncode == 0
    assert sorted(daemon.node_states()) == ["a", "c"]
    assert cm("nodes", "rm", "b", env=admin_env).returncode == 1


def test_e2e_cluster_add_list_rm_and_cluster_option(cm, daemon, admin_env):
    r = cm("cluster", "add", "shop", "--path", "/shop-health", env=admin_env)
    assert r.returncode == 0, r.stderr
    assert cm("nodes", "set", "s1", "--cluster", "shop", env=admin_env).returncode == 0
    assert cm("--cluster", "shop", "offline", "s1", env=admin_env).returncode == 0
    assert daemon.node_states("shop")["s1"][0] == "offline"
    out = cm("cluster", "list", env=admin_env).stdout
    assert re.search(r"^shop +/shop-health +\d+ +1 +0$", out, re.M), out
    assert cm("cluster", "rm", "shop", env=admin_env).returncode == 0
    assert cm("status", "--cluster", "shop", env=admin_env).returncode == 1


def test_e2e_user_add_then_login_as_operator_and_viewer_refused(cm, daemon, admin_env):
    daemon.set_nodes(["a"])
    r = cm("user", "add", "op1", "--role", "operator", "--password-stdin", env=admin_env,
           input="operator-pw-1\n")
    assert r.returncode == 0, r.stderr
    assert "op1" in cm("user", "list", env=admin_env).stdout
    op_env = {"CLUSTERMGMT_URL": daemon.url, "CLUSTERMGMT_USER": "op1",
              "CLUSTERMGMT_PASSWORD": "operator-pw-1"}
    assert cm("offline", "a", env=op_env).returncode == 0
    viewer = daemon.make_user("v1", "viewer")
    r = cm("online", "a", "--user", viewer[0], "--password-stdin", "--server", daemon.url,
           input=viewer[1] + "\n")
    assert r.returncode == 1 and r.stderr.startswith("clustermgmt: ")
    assert cm("user", "rm", "op1", env=admin_env).returncode == 0
    assert cm("status", env=op_env).returncode == 1


def test_e2e_token_create_use_revoke(cm, daemon, admin_env):
    daemon.set_nodes(["a"])
    r = cm("token", "create", "--role", "operator", "--description", "ci", env=admin_env)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token and "\n" not in token and "not be shown again" in r.stderr
    tok_env = {"CLUSTERMGMT_URL": daemon.url, "CLUSTERMGMT_TOKEN": token}
    assert cm("offline", "a", env=tok_env).returncode == 0
    listing = [t for t in json.loads(cm("token", "list", "--json", env=admin_env).stdout)["tokens"]
               if t["id"] != daemon.helper_token_id]
    assert len(listing) == 1 and listing[0]["description"] == "ci"
    assert cm("token", "revoke", listing[0]["id"], env=admin_env).returncode == 0
    assert cm("status", env=tok_env).returncode == 1


def test_e2e_https_with_cacert(cm, make_daemon, cert):
    d = make_daemon(tls=cert)
    user, pw = d.admin
    r = cm("status", "--server", d.url, "--cacert", str(cert[0]), "--user", user,
           "--password-stdin", input=pw + "\n")
    assert r.returncode == 0, r.stderr
    r = cm("status", "--server", d.url, "--user", user, "--password-stdin", input=pw + "\n")
    assert r.returncode == 3
