"""
The roles file for the daemon's own principals (README.md, "The roles
file"): a `token ID` line gives an API token the file's grants instead of
its stored role and its scope from `token create --cluster`; grants add
up (a principal's role on a cluster is the highest any clause gives there
or on `*`); a file that names a principal twice is refused whole, at the
start and on SIGHUP, and the roles in force stay.

The OpenID Connect and proxy-header principals are in test_oidc.py.
"""

import os
import signal
import subprocess
import time

from conftest import BEARER

TIMEOUT = 10


def wait_for_log(d, mark, text, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in d.log_text(mark):
            return
        time.sleep(0.05)
    raise AssertionError("no %r in the log:\n%s" % (text, d.log_text(mark)))


def two_clusters(d):
    d.post("/v1/clusters", json={"name": "shop", "path": "/shop"}, auth=d.admin)
    d.post("/v1/clusters", json={"name": "other", "path": "/other"}, auth=d.admin)
    for c in ("shop", "other"):
        d.set_nodes(["web1", "web2"], cluster=c)


def offline(d, token, cluster, node="web1"):
    return d.post("/v1/clusters/%s/status" % cluster, auth=(BEARER, token),
                  json={"changes": {node: {"status": "offline"}}}).status_code


def reload_roles(d, text):
    mark = d.log_mark()
    d.roles_path.write_text(text)
    d.proc.send_signal(signal.SIGHUP)
    wait_for_log(d, mark, "roles file")
    return d.log_text(mark)


def daemon_with_roles(make_daemon, tmp_path, text="# nobody yet\n"):
    roles = tmp_path / "roles"
    roles.write_text(text)
    d = make_daemon(["--roles", str(roles)])
    d.roles_path = roles
    two_clusters(d)
    return d


def test_a_token_line_gives_the_files_grants_instead_of_the_stored_role(make_daemon, tmp_path):
    d = daemon_with_roles(make_daemon, tmp_path)
    token_id, token = d.make_token("admin", "deploy job")
    # Stored admin, named by no line: admin everywhere.
    assert offline(d, token, "other") == 200
    # The clauses add up: operator on shop wins over viewer on shop and
    # on *, whatever their order.
    assert "roles file reloaded" in reload_roles(
        d, "token %s: operator on shop; viewer on *; viewer on shop\n" % token_id)
    assert offline(d, token, "shop") == 200
    assert offline(d, token, "other", "web2") == 403
    assert d.get("/v1/clusters/other/nodes", auth=(BEARER, token)).status_code == 200
    assert d.get("/v1/users", auth=(BEARER, token)).status_code == 403  # admin on * only
    entry = d.audit("shop")[0]
    assert entry["context"]["method"] == "token", entry
    assert entry["context"]["scope"] == "operator on shop; viewer on *", entry
    # Another line for it: the new grants replace the old ones at once.
    reload_roles(d, "token %s: viewer on shop\n" % token_id)
    assert offline(d, token, "shop", "web2") == 403
    assert d.get("/v1/clusters/other/nodes", auth=(BEARER, token)).status_code == 403
    listed = d.get("/v1/clusters", auth=(BEARER, token))
    assert [c["name"] for c in listed.json()["clusters"]] == ["shop"], listed.text
    assert d.node_states("other")["web2"][0] == "online"


def test_a_token_line_replaces_the_scope_the_token_was_created_with(make_daemon, tmp_path,
                                                                     cm_bin):
    d = daemon_with_roles(make_daemon, tmp_path)
    out = subprocess.run([cm_bin, "--server", d.url, "token", "create", "--role", "operator",
                          "--cluster", "shop", "--description", "shop deploys"],
                         env=dict(os.environ, CLUSTERMGMT_TOKEN=d.admin_token[1]),
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    token_id = token.split("_")[1]
    assert offline(d, token, "shop") == 200
    assert offline(d, token, "other") == 403
    reload_roles(d, "token %s: operator on other\n" % token_id)
    assert offline(d, token, "other") == 200
    assert offline(d, token, "shop", "web2") == 403


def test_a_principal_named_twice_is_refused_and_the_roles_in_force_stay(make_daemon, tmp_path,
                                                                        cm_bin):
    d = daemon_with_roles(make_daemon, tmp_path)
    token_id, token = d.make_token("admin", "deploy job")
    reload_roles(d, "token %s: operator on shop\n" % token_id)
    twice = "token %s: operator on shop\ntoken %s: admin on *\n" % (token_id, token_id)
    text = reload_roles(d, twice)
    assert "cannot reload the roles file; keeping the current roles" in text, text
    assert "mapped twice" in text, text
    assert offline(d, token, "shop") == 200
    assert offline(d, token, "other") == 403  # not admin on *: the old file holds
    # At the start, the same file stops the daemon with the reason.
    r = subprocess.run([cm_bin, "serve", "--roles", str(d.roles_path), "--check-config",
                        "--db", str(tmp_path / "check.db")],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode != 0 and "mapped twice" in r.stderr, (r.returncode, r.stderr)
