"""
Signing in through the identity provider with several daemons on one
PostgreSQL, as behind one load balancer: a session started on one daemon
holds on the others with the same roles per cluster, a sign-in started on
one daemon finishes on another, and signing out on one ends the session
everywhere and at the provider.

A real PostgreSQL (pgcluster.py), two real daemons, the real provider
(oidc-provider under node, test_oidc.Provider) and, for the browser test,
headless Chromium. Cookies do not tell ports apart, so a browser (or a
requests session) that signed in on daemon A carries the same cookie to
daemon B on another port of 127.0.0.1, as it would through a load balancer.

Every process a test starts is stopped by its pid; every wait is bounded.
"""

import base64
import json
import re
import subprocess
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from conftest import free_port
from test_oidc import (CLIENT_ID, CLIENT_SECRET, NODE, OIDC_DIR, ROLES, TIMEOUT, Provider,
                       _clusters, browser, browser_operates_shop_only,  # noqa: F401
                       browser_sign_in, follow_callback, page_operates_shop_only,
                       walk_to_callback)
from test_postgres import fleet  # noqa: F401  (the daemons on one database)
from ui_helpers import page_csrf, wait_until

SHARE_TIMEOUT = 10  # s: sessions travel every 0.5 s

pytestmark = pytest.mark.skipif(
    NODE is None or not (OIDC_DIR / "node_modules" / "oidc-provider").exists(),
    reason="needs node and `npm ci` in tests/e2e/oidc")


def start_site(fleet, pg_url, tmp_path, extra_a=(), extra_b=()):  # noqa: F811
    """Daemons a and b on one database, both signing in through one
    provider with the same client and roles file (and extra_a, extra_b);
    clusters shop and other. Returns a, b and the provider (started)."""
    pport = free_port()
    roles = tmp_path / "roles"
    roles.write_text(ROLES)
    secret = tmp_path / "client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    extra = ["--oidc-issuer", "http://localhost:%d" % pport, "--oidc-client-id", CLIENT_ID,
             "--oidc-client-secret-file", str(secret),
             "--oidc-scopes", "openid profile email groups", "--roles", str(roles)]
    a, = fleet(pg_url, extra=extra + list(extra_a))
    b, = fleet(pg_url, extra=extra + list(extra_b))
    _clusters(a)
    wait_until(lambda: b.get("/v1/clusters/other/nodes", auth=b.as_admin).status_code == 200,
               what="b to see a's clusters", timeout=SHARE_TIMEOUT)
    p = Provider(tmp_path, pport, [a.url, b.url])
    a.provider = b.provider = p
    return a, b, p.start()


@pytest.fixture
def site(fleet, pg_url, tmp_path):  # noqa: F811
    a, b, p = start_site(fleet, pg_url, tmp_path)
    try:
        yield a, b
    finally:
        p.stop()


def page_of(s, d, path):
    return s.get(d.url + path, allow_redirects=False, timeout=TIMEOUT)


def is_signed_in(s, d, who):
    r = page_of(s, d, "/shop/managenodes")
    return r.status_code == 200 and who in r.text


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_sign_in_on_a_holds_on_b_with_the_same_roles_per_cluster(site):
    a, b = site
    s = requests.Session()
    r = follow_callback(s, walk_to_callback(s, a, "alice"))  # team-shop: operator on shop
    assert r.status_code == 200 and "Signed in" in r.text, r.text[:400]
    wait_until(lambda: is_signed_in(s, b, "oidc:alice"), what="b to know a's session",
               timeout=SHARE_TIMEOUT)
    # b's page: the form of shop changes shop, the one of other is refused
    page_operates_shop_only(s, b)
    # b's API with the same cookie: shop yes, other no
    assert s.get(b.url + "/v1/clusters/shop/nodes", timeout=TIMEOUT).status_code == 200
    r = s.get(b.url + "/v1/clusters/other/nodes", timeout=TIMEOUT)
    assert r.status_code == 403 and "cluster other" in r.text
    # the audit record b wrote names the provider's subject
    context = b.audit("shop")[0]["context"]
    assert context["method"] == "oidc" and context["subject"] == "alice", context
    assert context["issuer"] == a.provider.issuer, context


def test_callback_on_b_finishes_a_sign_in_started_on_a(site):
    a, b = site
    s = requests.Session()
    callback = walk_to_callback(s, a, "alice", next_path="/shop/managenodes")
    assert callback.startswith(a.url)
    binding = s.cookies.get("cm_oidc")
    assert binding
    on_b = b.url + callback[len(a.url):]
    r = follow_callback(s, on_b)
    assert r.status_code == 200 and "Signed in" in r.text, r.text[:400]
    assert "/shop/managenodes" in r.text
    assert is_signed_in(s, b, "oidc:alice")
    wait_until(lambda: is_signed_in(s, a, "oidc:alice"), what="a to know b's session",
               timeout=SHARE_TIMEOUT)
    # the same callback again, with the same cookie: refused on b (used
    # there), and on a, which started it, by the provider (a code is
    # taken once)
    for d in (b, a):
        replay = requests.Session()
        replay.cookies.set("cm_oidc", binding)
        r = follow_callback(replay, d.url + callback[len(a.url):])
        assert r.status_code in (400, 401), (d.url, r.status_code, r.text[:300])
        assert "cm_session=" not in r.headers.get("set-cookie", "")


def test_callback_with_a_forged_cookie_is_refused_on_the_other_daemon(site):
    a, b = site
    s = requests.Session()
    callback = walk_to_callback(s, a, "alice")
    binding = s.cookies.get("cm_oidc")
    forged = binding[:-4] + ("AAAA" if binding[-4:] != "AAAA" else "BBBB")
    other = requests.Session()
    other.cookies.set("cm_oidc", forged)
    r = follow_callback(other, b.url + callback[len(a.url):])
    assert r.status_code == 400 and "cm_session=" not in r.headers.get("set-cookie", "")
    # the genuine cookie still finishes it there
    other = requests.Session()
    other.cookies.set("cm_oidc", binding)
    r = follow_callback(other, b.url + callback[len(a.url):])
    assert r.status_code == 200 and "cm_session=" in r.headers.get("set-cookie", "")


def test_state_key_file_decides_which_daemons_finish_a_sign_in(fleet, pg_url,  # noqa: F811
                                                                 tmp_path):
    keys = {name: tmp_path / ("state-key-" + name) for name in ("one", "other")}
    keys["one"].write_text("k" * 40 + "\n")
    keys["other"].write_text("o" * 40 + "\n")
    a, b, p = start_site(fleet, pg_url, tmp_path,
                         extra_a=["--oidc-state-key-file", str(keys["one"])],
                         extra_b=["--oidc-state-key-file", str(keys["other"])])
    try:
        # another key on b: the sealed cookie does not open there
        s = requests.Session()
        callback = walk_to_callback(s, a, "alice")
        binding = s.cookies.get("cm_oidc")
        r = follow_callback(s, b.url + callback[len(a.url):])
        assert r.status_code == 400 and "cm_session=" not in r.headers.get("set-cookie", "")
        # a, which started it, still finishes it (b's answer cleared the
        # cookie in this jar: the browser's copy comes back)
        s = requests.Session()
        s.cookies.set("cm_oidc", binding)
        r = follow_callback(s, callback)
        assert r.status_code == 200 and "cm_session=" in r.headers.get("set-cookie", "")
    finally:
        p.stop()


def test_short_state_key_file_is_refused_at_start(tmp_path, cm_bin):
    key = tmp_path / "state-key"
    key.write_text("too short\n")
    r = subprocess.run([cm_bin, "serve", "--oidc-issuer", "http://localhost:1",
                        "--oidc-client-id", "x", "--oidc-state-key-file", str(key),
                        "--check-config", "--db", str(tmp_path / "cm.db")],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 78 and "32 to 1022 bytes" in r.stderr, r.stderr


def test_sign_out_on_b_ends_the_session_on_a_with_the_id_token_as_hint(site):
    a, b = site
    s = requests.Session()
    r = follow_callback(s, walk_to_callback(s, a, "alice"))
    assert r.status_code == 200
    assert "eyJ" not in r.text and "eyJ" not in r.headers.get("set-cookie", "")
    wait_until(lambda: is_signed_in(s, b, "oidc:alice"), what="b to know a's session",
               timeout=SHARE_TIMEOUT)
    html = page_of(s, b, "/shop/managenodes").text
    r = s.post(b.url + "/logout", data={"csrf": page_csrf(html)}, allow_redirects=False,
               timeout=TIMEOUT)
    assert r.status_code == 200, r.text[:400]
    end = re.search(r'content="0;url=([^"]+)"', r.text).group(1).replace("&amp;", "&")
    assert end.startswith(a.provider.issuer + "/session/end?"), end
    q = parse_qs(urlsplit(end).query)
    assert q["client_id"] == [CLIENT_ID]
    assert q["post_logout_redirect_uri"] == [b.url + "/login"]
    claims = jwt_claims(q["id_token_hint"][0])
    assert claims["sub"] == "alice" and claims["aud"] == CLIENT_ID, claims
    assert claims["iss"] == a.provider.issuer
    # ended on b at once, on a within the sharing round
    assert page_of(s, b, "/shop/managenodes").status_code in (302, 303)
    wait_until(lambda: page_of(s, a, "/shop/managenodes").status_code in (302, 303),
               what="a to end the session signed out on b", timeout=SHARE_TIMEOUT)
    # the provider takes the hint: its page ends its session by itself
    r = s.get(end, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 200 and "f.submit()" in r.text, r.text[:400]


@pytest.mark.once  # the flow's checks run over HTTP above, also under ASan
def test_browser_signs_in_on_a_works_on_b_and_signs_out_on_b(site, browser):  # noqa: F811
    a, b = site
    br = browser
    browser_sign_in(br, a, "alice", "/shop/managenodes")
    assert "oidc:alice" in br.text(".who")
    # b: the same session and roles, through its page; sign out on b,
    # with no confirmation at the provider
    wait_until(lambda: (br.get(b.url + "/shop/managenodes") or True)
               and "oidc:alice" in br.driver.page_source,
               what="b's page to know the session", timeout=SHARE_TIMEOUT)
    browser_operates_shop_only(br, b)
    # a ends it too
    wait_until(lambda: (br.get(a.url + "/shop/managenodes") or True)
               and urlsplit(br.driver.current_url).path == "/login",
               what="a to end the session", timeout=SHARE_TIMEOUT)
    # and the provider's session is over: signing in asks for credentials
    br.find("#oidc-sign-in").click()
    br.wait_url("/interaction/")
    assert br.find_all("input[name=login]")
