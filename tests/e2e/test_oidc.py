"""
Signing in the way teams run it (issue 16), black-box against a real
OpenID Connect provider: the npm package oidc-provider (a certified
implementation, tests/e2e/oidc/provider.mjs, installed by `npm ci` from
tests/e2e/oidc/package-lock.json), started by each test on 127.0.0.1
under the name localhost, so that the provider and the daemon
(127.0.0.1) are different sites to the browser, as they are in
production.

The browser tests run headless Chromium through the whole flow. The
tests of what the daemon must refuse (a tampered state, a replayed code,
a wrong audience, an expired token, a token signed with "none" or HS256)
walk the same redirects with requests, so that they can change what the
browser would carry; the provider's /__test/mischief makes it issue the
bad ID tokens (signed again with its own key).

Every process a test starts is stopped by its pid; every wait is bounded.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit, urlencode, urlunsplit

import pytest
import requests

from conftest import REPO, free_port, session_from
from journal_double import JOURNAL_WRAPPER, needs_journal_double, parse_journal_datagram
from ui_helpers import WAIT, have_browser, make_browser, page_csrf, wait_until

OIDC_DIR = REPO / "tests" / "e2e" / "oidc"
NODE = shutil.which("node")
CLIENT_ID = "clustermgmt"
CLIENT_SECRET = "s3cret-for-tests-only"
USERS = {"alice": ["team-shop", "staff"], "bob": ["staff"], "root": ["platform"]}
EMAILS = {"dave": ["dave@example.com", True], "eve": ["dave@example.com", False]}
ROLES = """\
# team-shop runs the shop
team-shop: operator on shop
group platform: admin on *
user carol: operator on shop
email dave@example.com: viewer on other
"""
TIMEOUT = 10


pytestmark = pytest.mark.skipif(
    NODE is None or not (OIDC_DIR / "node_modules" / "oidc-provider").exists(),
    reason="needs node and `npm ci` in tests/e2e/oidc")


class Provider:
    """oidc-provider on 127.0.0.1:port, issuer http://localhost:port, with
    one client whose redirect URIs are those of daemon_url (one URL, or a
    list of the daemons behind one site)."""

    def __init__(self, tmp, port, daemon_url, kid="key-1"):
        self.tmp, self.port, self.daemon_url, self.kid = Path(tmp), port, daemon_url, kid
        self.daemon_urls = daemon_url if isinstance(daemon_url, list) else [daemon_url]
        self.issuer = "http://localhost:%d" % port
        self.proc = None

    def start(self, kid=None):
        if kid is not None:
            self.kid = kid
        env = dict(os.environ)
        env.update({
            "OIDC_PORT": str(self.port), "OIDC_ISSUER": self.issuer, "OIDC_KID": self.kid,
            "OIDC_USERS": json.dumps(USERS), "OIDC_EMAILS": json.dumps(EMAILS),
            "OIDC_CLIENTS": json.dumps([{
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "redirect_uris": [u + "/login/oidc/callback" for u in self.daemon_urls],
                "post_logout_redirect_uris": [u + "/login" for u in self.daemon_urls]}]),
        })
        self.log = open(self.tmp / ("provider-%s.log" % self.kid), "ab")
        self.proc = subprocess.Popen([NODE, str(OIDC_DIR / "provider.mjs")], env=env,
                                     stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)

        def up():
            assert self.proc.poll() is None, "the provider exited: %s" % self.log_text()
            try:
                return requests.get(self.issuer + "/.well-known/openid-configuration",
                                    timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_until(up, timeout=60, what="the OIDC provider")
        return self

    def log_text(self):
        return "\n".join(p.read_text(errors="replace") for p in self.tmp.glob("provider-*.log"))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def mischief(self, **kw):
        r = requests.post(self.issuer + "/__test/mischief", data=json.dumps(kw), timeout=TIMEOUT)
        assert r.status_code == 200, r.text


def _clusters(d):
    for name in ("shop", "other"):
        r = d.post("/v1/clusters", auth=d.as_admin, json={"name": name, "path": "/" + name})
        assert r.status_code == 201, r.text
        d.set_nodes(["web1", "web2"], cluster=name)


@pytest.fixture
def oidc_site(make_daemon, tmp_path):
    """A daemon signing in through a provider started for the test, with
    clusters shop and other, and the roles file ROLES."""
    pport = free_port()
    roles = tmp_path / "roles"
    roles.write_text(ROLES)
    secret = tmp_path / "client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    d = make_daemon(["--oidc-issuer", "http://localhost:%d" % pport,
                     "--oidc-client-id", CLIENT_ID, "--oidc-client-secret-file", str(secret),
                     "--oidc-scopes", "openid profile email groups", "--roles", str(roles)])
    _clusters(d)
    p = Provider(tmp_path, pport, d.url)
    p.start()
    d.provider, d.roles_path = p, roles
    try:
        yield d
    finally:
        p.stop()


# --- the flow over HTTP, to change what a browser would carry ---------------

FORM_RE = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"', re.I)
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def walk_to_callback(s, d, user, next_path="/"):
    """Signs in at the provider as user with requests session s and returns
    the daemon's callback URL the provider redirects to (not followed)."""
    r = s.get(d.url + "/login/oidc?next=" + next_path, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 302, (r.status_code, r.text[:300])
    url = r.headers["location"]
    assert url.startswith(d.provider.issuer + "/auth?")
    q = parse_qs(urlsplit(url).query)
    assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) == 43
    assert q["nonce"][0] and q["state"][0] and q["client_id"] == [CLIENT_ID]
    for _ in range(12):
        if url.startswith(d.url + "/login/oidc/callback"):
            return url
        r = s.get(url, allow_redirects=False, timeout=TIMEOUT)
        if r.status_code in (302, 303):
            url = urljoin(url, r.headers["location"])
            continue
        m = FORM_RE.search(r.text)
        assert r.status_code == 200 and m, (url, r.status_code, r.text[:500])
        fields = dict(HIDDEN_RE.findall(r.text))
        fields.update({"login": user, "password": "any"})
        r = s.post(urljoin(url, m.group(1)), data=fields, allow_redirects=False,
                   timeout=TIMEOUT)
        assert r.status_code in (302, 303), (r.status_code, r.text[:500])
        url = urljoin(url, r.headers["location"])
    raise AssertionError("no callback reached: %s" % url)


def follow_callback(s, url):
    return s.get(url, allow_redirects=False, timeout=TIMEOUT)


def signed_in_session(d, user):
    s = requests.Session()
    r = follow_callback(s, walk_to_callback(s, d, user))
    assert r.status_code == 200 and "Signed in" in r.text, (r.status_code, r.text[:400])
    return s


def test_code_flow_with_pkce_signs_in_with_a_session_cookie_only(oidc_site):
    d = oidc_site
    s = requests.Session()
    callback = walk_to_callback(s, d, "alice")
    r = follow_callback(s, callback)
    assert r.status_code == 200, r.text[:400]
    set_cookie = r.headers.get("set-cookie", "")
    assert "cm_session=" in set_cookie and "HttpOnly" in set_cookie
    assert "eyJ" not in set_cookie and "eyJ" not in r.text  # no JWT reaches the browser
    page = s.get(d.url + "/shop/managenodes", allow_redirects=False, timeout=TIMEOUT)
    assert page.status_code == 200 and "oidc:alice" in page.text


def test_tampered_state_is_refused(oidc_site):
    d = oidc_site
    s = requests.Session()
    callback = walk_to_callback(s, d, "alice")
    parts = urlsplit(callback)
    q = parse_qs(parts.query)
    q["state"] = [q["state"][0][:-2] + ("AA" if not q["state"][0].endswith("AA") else "BB")]
    bad = urlunsplit(parts._replace(query=urlencode({k: v[0] for k, v in q.items()})))
    r = follow_callback(s, bad)
    assert r.status_code == 400 and "cm_session=" not in r.headers.get("set-cookie", "")
    # and the right state from another browser (no binding cookie) is refused too
    r = follow_callback(requests.Session(), callback)
    assert r.status_code == 400


def test_callback_naming_another_issuer_is_refused(oidc_site):
    d = oidc_site
    s = requests.Session()
    callback = walk_to_callback(s, d, "alice")
    parts = urlsplit(callback)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["iss"] == d.provider.issuer  # RFC 9207: the provider names itself
    q["iss"] = "https://evil.example.com"
    r = follow_callback(s, urlunsplit(parts._replace(query=urlencode(q))))
    assert r.status_code == 400 and "another identity provider" in r.text
    assert "cm_session=" not in r.headers.get("set-cookie", "")


def test_pkce_can_be_switched_off(make_daemon, tmp_path):
    """--oidc-no-pkce sends no challenge; this provider requires one, so it
    refuses: the switch is what decides."""
    pport = free_port()
    d = make_daemon(["--oidc-issuer", "http://localhost:%d" % pport, "--oidc-client-id",
                     CLIENT_ID, "--oidc-no-pkce"])
    p = Provider(tmp_path, pport, d.url).start()
    try:
        r = requests.get(d.url + "/login/oidc", allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code == 302 and "code_challenge" not in r.headers["location"]
        r = requests.get(r.headers["location"], allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code in (302, 303) and "error=invalid_request" in r.headers["location"]
    finally:
        p.stop()


def test_replayed_callback_and_replayed_code_are_refused(oidc_site):
    d = oidc_site
    s = requests.Session()
    callback = walk_to_callback(s, d, "alice")
    assert follow_callback(s, callback).status_code == 200
    again = follow_callback(s, callback)  # the same state a second time
    assert again.status_code == 400 and "cm_session=" not in again.headers.get("set-cookie", "")
    # a fresh sign-in, but carrying the code already used: the provider refuses it
    s2 = requests.Session()
    fresh = walk_to_callback(s2, d, "alice")
    old_code = parse_qs(urlsplit(callback).query)["code"][0]
    parts = urlsplit(fresh)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    q["code"] = old_code
    r = follow_callback(s2, urlunsplit(parts._replace(query=urlencode(q))))
    assert r.status_code == 401 and "refused the sign-in" in r.text, r.text[:400]
    assert "cm_session=" not in r.headers.get("set-cookie", "")


@pytest.mark.parametrize("mischief,words", [
    ({"aud": "someone-else"}, "not meant for this client"),
    ({"aud": [CLIENT_ID, "someone-else"]}, "another party"),
    ({"exp_offset": -3600, "iat_offset": -4000}, "expired"),
    ({"iat_offset": 3600, "exp_offset": 7200}, "issue time"),
    ({"alg": "none"}, "only RS*, PS* and ES*"),
    ({"alg": "HS256"}, "only RS*, PS* and ES*"),
])
def test_bad_id_tokens_are_refused(oidc_site, mischief, words):
    d = oidc_site
    d.provider.mischief(**mischief)
    s = requests.Session()
    r = follow_callback(s, walk_to_callback(s, d, "alice"))
    assert r.status_code == 401, (r.status_code, r.text[:400])
    assert words in r.text.replace("&#39;", "'"), r.text[:600]
    assert "cm_session=" not in r.headers.get("set-cookie", "")
    assert "sign-in failed" in d.log_text()
    d.provider.mischief()  # and a good token is taken again
    signed_in_session(d, "alice")


def test_key_rotation_is_followed_by_kid(oidc_site):
    d = oidc_site
    signed_in_session(d, "alice")
    fetched_at = time.monotonic()
    d.provider.stop()
    d.provider.start(kid="key-2")  # a new signing key, another kid
    # the daemon fetches keys for an unknown kid at most every 2 s
    # (KEYS_REFETCH_MS), so that made-up kids cannot make it hammer the
    # provider; a rotation is followed after that
    time.sleep(max(0.0, fetched_at + 2.2 - time.monotonic()))
    signed_in_session(d, "alice")
    fetched = [line for line in d.log_text().splitlines() if "keys fetched" in line]
    assert len(fetched) == 2, fetched


def page_operates_shop_only(s, d):
    """alice's session s (operator on shop) on d's page: the offline form
    changes shop; the same form on other is refused and changes nothing."""
    html = s.get(d.url + "/shop/managenodes", timeout=TIMEOUT).text
    fields = {"form": "status", "csrf": page_csrf(html), "off": "web1",
              "shown": re.search(r'name="shown" id="shown" value="([^"]*)"', html).group(1)}
    r = s.post(d.url + "/shop/managenodes", data=fields, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303, r.text[:400]
    assert d.node_states("shop")["web1"][0] == "offline"
    r = s.post(d.url + "/other/managenodes", data=fields, allow_redirects=False,
               timeout=TIMEOUT)
    assert r.status_code == 403
    assert d.node_states("other")["web1"][0] == "online"


def test_group_role_holds_on_its_cluster_only(oidc_site):
    d = oidc_site
    s = signed_in_session(d, "alice")  # team-shop: operator on shop
    page_operates_shop_only(s, d)
    assert s.get(d.url + "/other/managenodes", timeout=TIMEOUT).status_code == 403
    # the API with the same session
    assert s.get(d.url + "/v1/clusters/shop/nodes", timeout=TIMEOUT).status_code == 200
    r = s.get(d.url + "/v1/clusters/other/nodes", timeout=TIMEOUT)
    assert r.status_code == 403 and "cluster other" in r.text
    # the cluster list shows only what alice may see
    listed = [c["name"] for c in s.get(d.url + "/v1/clusters", timeout=TIMEOUT).json()["clusters"]]
    assert listed == ["shop"], listed
    page = s.get(d.url + "/", timeout=TIMEOUT).text
    assert "/shop/managenodes" in page and "/other/managenodes" not in page
    assert "refused: role too low" in d.log_text()


def test_user_without_a_role_sees_a_page_saying_so(oidc_site):
    d = oidc_site
    s = signed_in_session(d, "bob")  # group staff: mapped to nothing
    r = s.get(d.url + "/", timeout=TIMEOUT)
    assert r.status_code == 403 and 'id="no-role"' in r.text and "oidc:bob" in r.text
    fields = {"form": "status", "csrf": page_csrf(r.text), "off": "web1", "shown": "web1 web2"}
    r = s.post(d.url + "/shop/managenodes", data=fields, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 403
    assert d.node_states("shop")["web1"][0] == "online"


def test_verified_email_maps_a_role_and_an_unverified_one_does_not(oidc_site):
    d = oidc_site
    dave = signed_in_session(d, "dave")
    assert dave.get(d.url + "/other/managenodes", timeout=TIMEOUT).status_code == 200
    assert dave.get(d.url + "/shop/managenodes", timeout=TIMEOUT).status_code == 403
    eve = signed_in_session(d, "eve")  # the same address, not verified
    r = eve.get(d.url + "/", timeout=TIMEOUT)
    assert r.status_code == 403 and 'id="no-role"' in r.text


def test_roles_file_is_read_again_on_sighup(oidc_site):
    d = oidc_site
    s = signed_in_session(d, "bob")
    assert s.get(d.url + "/", timeout=TIMEOUT).status_code == 403
    d.roles_path.write_text(ROLES + "staff: viewer on other\n")
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "roles file reloaded" in d.log_text(), what="the reload")
    assert s.get(d.url + "/other/managenodes", timeout=TIMEOUT).status_code == 200
    assert s.get(d.url + "/shop/managenodes", timeout=TIMEOUT).status_code == 403
    d.roles_path.write_text("staff: superuser on *\n")  # refused whole: the last one stays
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "cannot reload the roles file" in d.log_text(), what="the refusal")
    assert s.get(d.url + "/other/managenodes", timeout=TIMEOUT).status_code == 200


def test_bad_roles_file_stops_the_start_with_its_line(tmp_path, cm_bin):
    roles = tmp_path / "roles"
    roles.write_text("team-shop: operator on shop\nteam-x: operator of shop\n")
    r = subprocess.run([cm_bin, "serve", "--roles", str(roles), "--check-config", "--db",
                        str(tmp_path / "cm.db")], capture_output=True, text=True, timeout=20)
    assert r.returncode == 78 and "line 2" in r.stderr, r.stderr


def test_http_issuer_elsewhere_than_this_host_is_refused(tmp_path, cm_bin):
    r = subprocess.run([cm_bin, "serve", "--oidc-issuer", "http://idp.example.com",
                        "--oidc-client-id", "x", "--check-config", "--db",
                        str(tmp_path / "cm.db")], capture_output=True, text=True, timeout=20)
    assert r.returncode == 78 and "https" in r.stderr, r.stderr


# --- in a real browser ---------------------------------------------------------


@pytest.fixture
def browser():
    if not have_browser():
        pytest.skip("needs chromium, chromium-driver, python3-selenium")
    b = make_browser()
    try:
        yield b
    finally:
        b.quit()


def browser_sign_in(b, d, user, next_path):
    b.get(d.url + "/login?next=" + next_path)
    b.find("#oidc-sign-in").click()
    b.wait_url("/interaction/")
    b.find("input[name=login]").send_keys(user)
    b.find("input[name=password]").send_keys("any")
    b.find("button[type=submit]").click()
    b.wait_for(lambda: b.driver.current_url.startswith(d.url + next_path), WAIT,
               "back at %s (now %s)" % (next_path, b.driver.current_url))


def browser_operates_shop_only(b, d):
    """alice (operator on shop) on d's pages: the offline form changes
    shop, and other refuses; then signs out there, where the provider asks
    no confirmation (the ID token is the id_token_hint: a confirmation
    page would stay and the wait for /login would fail)."""
    b.get(d.url + "/shop/managenodes")
    b.find("#off-web2").click()
    b.find("#offline-form button.primary").click()
    wait_until(lambda: d.node_states("shop")["web2"][0] == "offline", what="web2 offline")
    b.get(d.url + "/other/managenodes")
    wait_until(lambda: "nothing on this cluster" in b.driver.page_source,
               what="the refusal page")
    assert not b.find_all("#offline-form")
    b.get(d.url + "/shop/managenodes")
    b.find("form[action='/logout'] button").click()
    b.wait_for(lambda: b.driver.current_url.startswith(d.url + "/login"), WAIT,
               "back at /login (now %s)" % b.driver.current_url)


@pytest.mark.once  # the flow's checks run over HTTP above, also under ASan
def test_browser_signs_in_changes_its_cluster_and_signs_out(oidc_site, browser):
    d, b = oidc_site, browser
    assert "Sign in with localhost" in requests.get(d.url + "/login", timeout=TIMEOUT).text
    browser_sign_in(b, d, "alice", "/shop/managenodes")
    assert "oidc:alice" in b.text(".who")
    names = [c["name"] for c in b.driver.get_cookies()]
    assert "cm_session" in names
    assert not any(c["value"].startswith("eyJ") for c in b.driver.get_cookies())
    # an operator on shop, nothing on other; sign out: the local session
    # and the provider's
    browser_operates_shop_only(b, d)
    b.get(d.url + "/shop/managenodes")
    b.wait_url("/login?next=")
    # the provider's session is over too: it asks for a login again
    b.find("#oidc-sign-in").click()
    b.wait_url("/interaction/")
    assert b.find_all("input[name=login]")


# --- the trusted proxy's header ------------------------------------------------


def test_proxy_header_is_believed_only_from_listed_addresses(make_daemon, tmp_path):
    roles = tmp_path / "roles"
    roles.write_text(ROLES)
    d = make_daemon(["--auth-proxy-header", "X-Forwarded-User",
                     "--auth-proxy-from", "127.0.0.5/32,10.0.0.0/8", "--roles", str(roles)])
    _clusters(d)
    trusted, other = session_from("127.0.0.5"), session_from("127.0.0.6")
    hdr = {"X-Forwarded-User": "carol"}  # roles: user carol: operator on shop
    r = trusted.post(d.url + "/v1/clusters/shop/status", headers=hdr, timeout=TIMEOUT,
                     json={"changes": {"web1": {"status": "offline", "reason": "proxy"}}})
    assert r.status_code == 200, r.text
    assert d.audit("shop")[0]["actor"] == "proxy:carol"
    r = trusted.post(d.url + "/v1/clusters/other/status", headers=hdr, timeout=TIMEOUT,
                     json={"changes": {"web1": {"status": "offline"}}})
    assert r.status_code == 403
    mark = d.log_mark()
    r = other.post(d.url + "/v1/clusters/shop/status", headers=hdr, timeout=TIMEOUT,
                   json={"changes": {"web2": {"status": "offline"}}})
    assert r.status_code == 401
    assert d.node_states("shop")["web2"][0] == "online"
    wait_until(lambda: "proxy header ignored" in d.log_text(mark), what="the log line")
    # the page through the proxy: a session of its own, bound to the header
    page = trusted.get(d.url + "/shop/managenodes", headers=hdr, timeout=TIMEOUT)
    assert page.status_code == 200 and "proxy:carol" in page.text
    r = trusted.get(d.url + "/shop/managenodes", headers={"X-Forwarded-User": "mallory"},
                    allow_redirects=False, timeout=TIMEOUT)
    assert "proxy:carol" not in r.text


# --- the audit record -----------------------------------------------------------


def test_audit_record_names_principal_method_scope_and_request(oidc_site):
    d = oidc_site
    s = signed_in_session(d, "alice")
    html = s.get(d.url + "/shop/managenodes", timeout=TIMEOUT).text
    fields = {"form": "status", "csrf": page_csrf(html), "off": "web2",
              "shown": re.search(r'name="shown" id="shown" value="([^"]*)"', html).group(1)}
    r = s.post(d.url + "/shop/managenodes", data=fields, allow_redirects=False, timeout=TIMEOUT,
               headers={"User-Agent": "audit-test/1.0", "X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 303, r.text[:300]
    entry = d.audit("shop")[0]
    assert (entry["node"], entry["new_status"], entry["actor"]) == ("web2", "offline",
                                                                    "oidc:alice")
    c = entry["context"]
    assert c["principal"] == "oidc:alice" and c["method"] == "oidc" and c["session"] is True
    assert c["issuer"] == d.provider.issuer and c["subject"] == "alice"
    assert c["role"] == "operator" and c["scope"] == "operator on shop"
    assert c["peer"] == "127.0.0.1" and c["user_agent"] == "audit-test/1.0"
    assert c["forwarded"] == "203.0.113.9" and c["forwarded_trusted"] is False
    assert c["request_id"] == r.headers["x-request-id"]
    # a token's write: method token, its role on every cluster
    tok = d.admin_token
    d.set_status({"web1": {"status": "drain"}}, cluster="other", auth=tok)
    c = d.audit("other")[0]["context"]
    assert c["method"] == "token" and c["scope"] == "admin on *" and c["session"] is False


@needs_journal_double
def test_changes_reach_the_journal_with_their_fields(make_daemon, tmp_path, cm_bin,
                                                     monkeypatch):
    import socket as socketmod
    sock_path = str(tmp_path / "journal.sock")
    receiver = socketmod.socket(socketmod.AF_UNIX, socketmod.SOCK_DGRAM)
    receiver.bind(sock_path)
    receiver.settimeout(0.5)
    wrapper = tmp_path / "clustermgmt-in-ns"
    wrapper.write_text(JOURNAL_WRAPPER % cm_bin)
    wrapper.chmod(0o755)
    monkeypatch.setenv("CM_TEST_JOURNAL_SOCKET", sock_path)
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")  # as systemd sets it
    try:
        d = make_daemon(bin_path=str(wrapper))
        d.set_nodes(["web1"])
        d.set_status({"web1": {"status": "offline", "reason": "kernel"}},
                     auth=d.admin_token)
        entries, deadline = [], time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                f = parse_journal_datagram(receiver.recv(65536))
            except socketmod.timeout:
                continue
            if f.get("MESSAGE_ID") == "4d0e6c1b8a2f4e5c9b7d3a1f0e2c8b6a":
                entries.append(f)
                if f.get("CLUSTERMGMT_ACTION") == "status":
                    break
        status = [e for e in entries if e.get("CLUSTERMGMT_ACTION") == "status"]
        assert status, entries
        e = status[0]
        assert e["PRIORITY"] == "6" and e["CLUSTERMGMT_CLUSTER"] == "default"
        assert e["CLUSTERMGMT_NODE"] == "web1" and e["CLUSTERMGMT_NEW_STATUS"] == "offline"
        assert e["CLUSTERMGMT_REASON"] == "kernel" and e["CLUSTERMGMT_METHOD"] == "token"
        assert e["CLUSTERMGMT_ACTOR"].startswith("token:")
        assert e["CLUSTERMGMT_SCOPE"] == "admin on *" and e["CLUSTERMGMT_PEER"] == "127.0.0.1"
        assert len(e["CLUSTERMGMT_REQUEST_ID"]) == 16 and "MESSAGE" in e
        # in the journal instead of a log line
        assert 'msg=change ' not in d.log_text() and '"msg":"change"' not in d.log_text()
    finally:
        receiver.close()


# --- tokens scoped to clusters ---------------------------------------------------


def test_token_scoped_to_a_cluster_by_the_cli(make_daemon, cm_bin):
    d = make_daemon()
    _clusters(d)
    env = dict(os.environ, CLUSTERMGMT_TOKEN=d.admin_token[1])
    out = subprocess.run([cm_bin, "--server", d.url, "token", "create", "--role", "operator",
                          "--cluster", "shop", "--description", "deploys of shop"],
                         capture_output=True, text=True, timeout=20, env=env)
    assert out.returncode == 0, out.stderr
    token = ("bearer", out.stdout.strip())
    d.set_status({"web1": {"status": "offline"}}, cluster="shop", auth=token)
    r = d.post("/v1/clusters/other/status", auth=token,
               json={"changes": {"web1": {"status": "offline"}}})
    assert r.status_code == 403 and "cluster other" in r.text
    assert d.node_states("other")["web1"][0] == "online"
    r = d.get("/v1/clusters", auth=token)
    assert [c["name"] for c in r.json()["clusters"]] == ["shop"]
    assert d.audit("shop")[0]["context"]["scope"] == "operator on shop"
    listed = {t["description"]: t for t in d.get("/v1/tokens", auth=d.as_admin).json()["tokens"]}
    assert listed["deploys of shop"]["clusters"] == ["shop"]
    # a token for every cluster lists as null
    assert listed[[k for k in listed if k != "deploys of shop"][0]]["clusters"] is None


def test_token_with_a_bad_cluster_name_is_refused_and_nothing_is_created(make_daemon):
    d = make_daemon()
    before = len(d.get("/v1/tokens", auth=d.as_admin).json()["tokens"])
    for clusters in (["shop", "../x"], ["shop", "shop"], "shop", [""]):
        r = d.post("/v1/tokens", auth=d.as_admin, json={"role": "viewer", "clusters": clusters})
        assert r.status_code == 400, (clusters, r.text)
    assert len(d.get("/v1/tokens", auth=d.as_admin).json()["tokens"]) == before


def test_empty_roles_file_starts_with_no_mapping(tmp_path, cm_bin):
    """The empty file once handed qsort a NULL array (fuzz_roles found it)."""
    roles = tmp_path / "roles"
    roles.write_text("")
    r = subprocess.run([cm_bin, "serve", "--roles", str(roles), "--check-config", "--db",
                        str(tmp_path / "cm.db")], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr


def test_discovery_surfaces_show_only_the_clusters_a_user_may_see(oidc_site):
    d = oidc_site
    for name in ("shop", "other"):
        r = d.put("/v1/clusters/%s/nodes/web1" % name, auth=d.as_admin,
                  json={"address": "10.0.0.1:8080"})
        assert r.status_code == 200, r.text
    s = signed_in_session(d, "alice")  # team-shop: operator on shop only
    groups = s.get(d.url + "/v1/sd/prometheus", timeout=TIMEOUT).json()
    assert [g["labels"]["__meta_clustermgmt_cluster"] for g in groups] == ["shop"], groups
    r = s.get(d.url + "/v1/sd/prometheus?cluster=other", timeout=TIMEOUT)
    assert r.status_code == 403, r.text
    everything = d.get("/v1/sd/prometheus", auth=d.as_admin).json()
    assert sorted(g["labels"]["__meta_clustermgmt_cluster"] for g in everything) == [
        "other", "shop"]
