"""
One set of limits (docs/API.md, "Limits"): every surface - the v1 API,
the seed REST, the web page's forms, HTTP Basic, the page's login and the
CLI - gets the same value at and just over each limit and must give the
same verdict. A limit measured differently on two surfaces fails here.
"""

import json
import os
import re
import subprocess

import pytest

from conftest import Daemon
from ui_helpers import form_post, get_page, login_session, page_csrf

PAGE = "/health/managenodes"
RUN_TIMEOUT = 60

PASSWORD_MAX = 1024  # bytes
AT_LIMIT_PASSWORD = "é" * 512            # 1,024 bytes, 512 characters
OVER_LIMIT_PASSWORD = "é" * 600          # 1,200 bytes, 600 characters
SHORT_PASSWORD = "é" * 3 + "x"           # 7 bytes
MIN_PASSWORD = "é" * 4                   # 8 bytes, 4 characters


@pytest.fixture(scope="module")
def d(tmp_path_factory, cm_bin):
    daemon = Daemon(tmp_path_factory.mktemp("limits"), bin_path=cm_bin)
    try:
        daemon.set_nodes(["web1", "web2", "web3"])
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def cm(cm_bin, tmp_path):
    home = tmp_path / "home"
    home.mkdir()

    def run(*args, input=None, env=None):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("CLUSTERMGMT_") and k != "NETRC"}
        e["HOME"] = str(home)
        e.update(env or {})
        return subprocess.run([cm_bin] + list(args), input=input, env=e,
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)

    return run


def admin_page(d):
    s = login_session(d, *d.admin)
    return s, page_csrf(get_page(s, d, "/admin"))


_names = iter(range(10 ** 6))


def fresh(prefix):
    return "%s%d" % (prefix, next(_names))


# --- passwords ----------------------------------------------------------------

def create_user_api(d, name, password):
    return d.post("/v1/users", auth=d.admin,
                  json={"name": name, "password": password, "role": "viewer"}).status_code


def create_user_page(d, name, password):
    s, csrf = admin_page(d)
    r = form_post(s, d, "/admin", {"form": "user-add", "csrf": csrf, "name": name,
                                   "password": password, "role": "viewer"})
    return r.status_code


def create_user_cli(d, cm, name, password):
    return cm("--server", d.url, "--user", "admin", "user", "add", name, "--role", "viewer",
              "--password-stdin", input="%s\n%s\n" % (d.password, password)).returncode


def sign_in_verdicts(d, cm, name, password):
    """(Basic, page login, CLI) verdicts: True for signed in."""
    # UTF-8 on the wire, as curl (the CLI) and browsers send it
    basic = d.get("/v1/clusters", auth=(name.encode(), password.encode())).status_code == 200
    page = d.post("/login", data={"user": name, "password": password, "next": "/"}).status_code
    cli = cm("--server", d.url, "--user", name, "--password-stdin", "status",
             input=password + "\n").returncode
    return basic, page == 303, cli == 0


@pytest.mark.parametrize("how", ["api", "page", "cli"])
def test_password_at_the_byte_limit_works_on_every_surface(d, cm, how):
    name = fresh("at" + how)
    if how == "api":
        assert create_user_api(d, name, AT_LIMIT_PASSWORD) == 201
    elif how == "page":
        assert create_user_page(d, name, AT_LIMIT_PASSWORD) == 303
    else:
        assert create_user_cli(d, cm, name, AT_LIMIT_PASSWORD) == 0
    assert sign_in_verdicts(d, cm, name, AT_LIMIT_PASSWORD) == (True, True, True)


def test_password_over_the_byte_limit_is_refused_on_every_surface(d, cm):
    """600 x "é" is 600 characters but 1,200 bytes: over the limit."""
    name = fresh("over")
    assert create_user_api(d, name, OVER_LIMIT_PASSWORD) == 400
    assert create_user_page(d, name, OVER_LIMIT_PASSWORD) == 400
    assert create_user_cli(d, cm, name, OVER_LIMIT_PASSWORD) != 0
    assert name not in [u["name"] for u in d.get("/v1/users", auth=d.admin).json()["users"]]
    # and signing in with such a password is refused the same way everywhere
    assert sign_in_verdicts(d, cm, "admin", OVER_LIMIT_PASSWORD) == (False, False, False)


def test_password_under_the_minimum_is_refused_and_the_minimum_works(d, cm):
    assert create_user_api(d, fresh("short"), SHORT_PASSWORD) == 400
    assert create_user_page(d, fresh("short"), SHORT_PASSWORD) == 400
    assert create_user_cli(d, cm, fresh("short"), SHORT_PASSWORD) != 0
    for create in (lambda n: create_user_api(d, n, MIN_PASSWORD) == 201,
                   lambda n: create_user_page(d, n, MIN_PASSWORD) == 303,
                   lambda n: create_user_cli(d, cm, n, MIN_PASSWORD) == 0):
        name = fresh("min")
        assert create(name)
        assert sign_in_verdicts(d, cm, name, MIN_PASSWORD) == (True, True, True)


def test_admin_password_file_at_the_limit_starts_and_signs_in(tmp_path, cm_bin):
    # an empty store: the admin must come from the file, not a template
    daemon = Daemon(tmp_path, bin_path=cm_bin, start=False, template=False)
    daemon.password = "p" * PASSWORD_MAX
    daemon.pw_file.write_text(daemon.password + "\n")
    try:
        daemon.start()
        assert daemon.get("/v1/clusters", auth=daemon.admin).status_code == 200
    finally:
        daemon.close()


def test_admin_password_file_over_the_limit_is_refused_not_cut(tmp_path, cm_bin):
    pw = tmp_path / "pw"
    pw.write_text("p" * (PASSWORD_MAX + 1) + "\n")
    r = subprocess.run([cm_bin, "serve", "--listen", "127.0.0.1:0", "--db",
                        str(tmp_path / "cm.db"), "--admin-password-file", str(pw)],
                       capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert r.returncode != 0
    assert "longer than 1024 bytes" in r.stderr + r.stdout
    assert str(pw) in r.stderr + r.stdout


# --- token descriptions (characters) -------------------------------------------

def token_api(d, description):
    return d.post("/v1/tokens", auth=d.admin,
                  json={"role": "viewer", "description": description}).status_code


def token_page(d, description):
    s, csrf = admin_page(d)
    return form_post(s, d, "/admin", {"form": "token-create", "csrf": csrf, "role": "viewer",
                                      "description": description}).status_code


def token_cli(d, cm, description):
    return cm("--server", d.url, "--user", "admin", "--password-stdin", "token", "create",
              "--role", "viewer", "--description", description,
              input=d.password + "\n").returncode


def descriptions(d):
    return [t["description"] for t in d.get("/v1/tokens", auth=d.admin).json()["tokens"]]


def test_token_description_of_256_characters_is_stored_by_every_surface(d, cm):
    for i, create in enumerate((lambda s: token_api(d, s) == 201,
                                lambda s: token_page(d, s) == 200,
                                lambda s: token_cli(d, cm, s) == 0)):
        text = str(i) + "é" * 255
        assert create(text)
        assert text in descriptions(d)


@pytest.mark.parametrize("length", [257, 300])
def test_token_description_over_256_characters_is_refused_by_every_surface(d, cm, length):
    text = "d" + "é" * (length - 1)
    assert token_api(d, text) == 400
    assert token_page(d, text) == 400
    assert token_cli(d, cm, text) != 0
    assert text not in descriptions(d)


# --- reasons (characters) and TTLs ------------------------------------------------

def status_v1(d, node, reason=None, ttl=None):
    change = {"status": "drain"}
    if reason is not None:
        change["reason"] = reason
    if ttl is not None:
        change["ttl"] = ttl
    return d.post("/v1/clusters/default/status", auth=d.admin,
                  json={"changes": {node: change}}).status_code


def status_seed(d, node, reason=None, ttl=None):
    change = {"status": "drain"}
    if reason is not None:
        change["reason"] = reason
    if ttl is not None:
        change["ttl"] = ttl
    return d.post("/health/++rest++setstatus", auth=d.admin,
                  data={"change": json.dumps({node: change})}).status_code


def status_page(d, node, reason="", ttl=""):
    s = login_session(d, *d.admin)
    html = get_page(s, d, PAGE)
    shown = re.search(r'name="shown" id="shown" value="([^"]*)"', html).group(1)
    r = form_post(s, d, PAGE, {"form": "status", "csrf": page_csrf(html), "shown": shown,
                               "drain": node, "reason": reason, "ttl": ttl})
    return r.status_code


def status_cli(d, cm, node, reason=None, ttl=None):
    args = ["--server", d.url, "--user", "admin", "--password-stdin", "drain", node]
    if reason is not None:
        args += ["--reason", reason]
    if ttl is not None:
        args += ["--ttl", ttl]
    return cm(*args, input=d.password + "\n").returncode


def reset(d):
    d.set_status({n: {"status": "online"} for n in ("web1", "web2", "web3")})


def test_reason_of_256_characters_is_taken_by_every_surface(d, cm):
    reason = "é" * 256
    for verdict in (lambda: status_v1(d, "web1", reason) == 200,
                    lambda: status_seed(d, "web1", reason) == 200,
                    lambda: status_page(d, "web1", reason) == 303,
                    lambda: status_cli(d, cm, "web1", reason) == 0):
        reset(d)
        assert verdict()
        assert d.node_states()["web1"] == ("drain", reason)
    reset(d)


def test_reason_over_256_characters_is_refused_by_every_surface(d, cm):
    reason = "é" * 257
    reset(d)
    assert status_v1(d, "web1", reason) == 400
    assert status_seed(d, "web1", reason) == 400
    assert status_page(d, "web1", reason) == 400
    assert status_cli(d, cm, "web1", reason) != 0
    assert d.node_states()["web1"] == ("online", "")


def test_ttl_of_30_days_is_taken_and_one_second_more_refused_by_every_surface(d, cm):
    month = 30 * 86400
    for verdict in (lambda s: status_v1(d, "web2", ttl=s),
                    lambda s: status_seed(d, "web2", ttl=s),
                    lambda s: status_page(d, "web2", ttl="%ds" % s),
                    lambda s: status_cli(d, cm, "web2", ttl="%ds" % s)):
        reset(d)
        assert verdict(month + 1) not in (0, 200, 303)
        assert d.node_states()["web2"][0] == "online"
        assert verdict(month) in (0, 200, 303)
        assert d.node_states()["web2"][0] == "drain"
    reset(d)


# --- names ------------------------------------------------------------------------

NAME_64 = "n" * 64
NAME_65 = "n" * 65


def node_list_v1(d, names):
    body = json.dumps({"nodes": names}, separators=(",", ":"))  # compact, as the CLI sends it
    # 10,000 nodes are one durable transaction of 10,000 rows and audit
    # entries: seconds under ASan on a loaded machine
    return d.put("/v1/clusters/default/nodes", auth=d.admin, data=body, timeout=60,
                 headers={"Content-Type": "application/json"}).status_code


def node_list_page(d, names):
    s = login_session(d, *d.admin)
    html = get_page(s, d, PAGE)
    return form_post(s, d, PAGE, {"form": "nodes", "csrf": page_csrf(html),
                                  "nodes": "\n".join(names)}, timeout=60).status_code


def node_list_cli(d, cm, names):
    return cm("--server", d.url, "--user", "admin", "--password-stdin", "nodes", "set",
              *names, input=d.password + "\n").returncode


def cluster_v1(d, name):
    return d.post("/v1/clusters", auth=d.admin,
                  json={"name": name, "path": "/" + fresh("p")}).status_code


def cluster_page(d, name):
    s = login_session(d, *d.admin)
    html = get_page(s, d, "/")
    return form_post(s, d, "/clusters", {"form": "add", "csrf": page_csrf(html), "name": name,
                                         "path": "/" + fresh("p")}).status_code


def cluster_cli(d, cm, name):
    return cm("--server", d.url, "--user", "admin", "--password-stdin", "cluster", "add",
              name, "--path", "/" + fresh("p"), input=d.password + "\n").returncode


def cluster_names(d):
    return [c["name"] for c in d.get("/v1/clusters", auth=d.admin).json()["clusters"]]


@pytest.mark.parametrize("bad", [".", "..", NAME_65])
def test_bad_node_name_is_refused_by_every_surface(d, cm, bad):
    before = d.nodes()["nodes"]
    assert node_list_v1(d, ["web1", "web2", "web3", bad]) == 400
    assert node_list_page(d, ["web1", "web2", "web3", bad]) == 400
    assert node_list_cli(d, cm, ["web1", "web2", "web3", bad]) != 0
    assert status_seed(d, bad) in (400, 404)
    assert d.nodes()["nodes"] == before


@pytest.mark.parametrize("bad", [".", "..", NAME_65])
def test_bad_cluster_name_is_refused_by_every_surface(d, cm, bad):
    assert cluster_v1(d, bad) == 400
    assert cluster_page(d, bad) == 400
    assert cluster_cli(d, cm, bad) != 0
    assert bad not in cluster_names(d)


def test_names_of_64_characters_and_dots_inside_are_taken_by_every_surface(d, cm):
    for i, verdict in enumerate((lambda n: node_list_v1(d, ["web1", "web2", "web3", n]) == 200,
                                 lambda n: node_list_page(d, ["web1", "web2", "web3", n]) == 303,
                                 lambda n: node_list_cli(d, cm, ["web1", "web2", "web3", n]) == 0)):
        for name in (str(i) + NAME_64[1:], "..." + str(i)):
            assert verdict(name)
            assert name in [n["name"] for n in d.nodes()["nodes"]]
    assert node_list_v1(d, ["web1", "web2", "web3"]) == 200
    for i, verdict in enumerate((lambda n: cluster_v1(d, n) == 201,
                                 lambda n: cluster_page(d, n) == 303,
                                 lambda n: cluster_cli(d, cm, n) == 0)):
        name = "c%d" % i + NAME_64[2:]
        assert verdict(name)
        assert name in cluster_names(d)


# --- nodes per cluster ------------------------------------------------------------

def three_letter_names(n):
    """n distinct 3-character names: 10,001 of them fit a 64 KiB body."""
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    return [a + b + c for a in letters for b in letters for c in letters][:n]


def test_a_cluster_holds_at_most_10000_nodes_on_every_surface(tmp_path, cm_bin, cm):
    daemon = Daemon(tmp_path, bin_path=cm_bin)
    try:
        too_many = three_letter_names(10001)
        assert node_list_v1(daemon, too_many) == 400
        assert node_list_page(daemon, too_many) == 400
        assert node_list_cli(daemon, cm, too_many) != 0
        assert daemon.nodes()["nodes"] == []
        assert node_list_v1(daemon, too_many[:10000]) == 200
        assert len(daemon.nodes()["nodes"]) == 10000
        r = daemon.put("/v1/clusters/default/nodes/one-more", auth=daemon.admin, json={})
        assert r.status_code == 409 and "10000" in r.json()["error"]
        assert node_list_page(daemon, too_many[1:10001]) == 303  # the same count is fine
        assert node_list_v1(daemon, ["a"]) == 200
    finally:
        daemon.close()
