"""
The admin page's tokens scoped to clusters (issue 16 point 3, as
`clustermgmt token create --cluster`): the form's multi-select of the
clusters there are, each chosen cluster checked when the form arrives
(an unknown one refused with a sentence naming it, nothing created), the
list showing each token's clusters; the token then holds on those
clusters only. Form posts over HTTP, and once in headless Chromium.
"""

import re

import pytest

from ui_helpers import WAIT, form_post, get_page, have_browser, login_session, make_browser, \
    page_csrf

NEW_TOKEN_RE = re.compile(r'id="new-token" readonly value="(cmt_[^"]+)"')


@pytest.fixture
def admin_site(make_daemon):
    d = make_daemon()
    d.set_nodes(["web1"])
    for name in ("shop", "other", "third"):
        r = d.post("/v1/clusters", auth=d.as_admin, json={"name": name, "path": "/" + name})
        assert r.status_code == 201, r.text
        d.set_nodes(["web1"], cluster=name)
    d.session = login_session(d, *d.admin)
    return d


def tokens(d):
    return {t["id"]: t for t in d.get("/v1/tokens", auth=d.as_admin).json()["tokens"]}


def create(d, clusters, description="scoped"):
    fields = [("form", "token-create"), ("csrf", page_csrf(get_page(d.session, d, "/admin"))),
              ("role", "operator"), ("description", description)]
    fields += [("clusters", c) for c in clusters]
    return form_post(d.session, d, "/admin", fields)


def scope_cell(html, token_id):
    m = re.search(r'<code>%s</code></th>.*?class="token-scope">([^<]*)</td>' % token_id, html,
                  re.S)
    assert m, "no row for token %s" % token_id
    return m.group(1)


def test_a_token_created_on_the_page_holds_on_the_chosen_clusters_only(admin_site):
    d = admin_site
    r = create(d, ["shop", "other"])
    assert r.status_code == 200, r.text[:400]
    token = NEW_TOKEN_RE.search(r.text).group(1)
    token_id = token.split("_")[1]
    assert tokens(d)[token_id]["clusters"] == ["shop", "other"]
    for name in ("shop", "other"):
        d.set_status({"web1": {"status": "drain"}}, cluster=name, auth=("bearer", token))
    r = d.post("/v1/clusters/third/status", auth=("bearer", token),
               json={"changes": {"web1": {"status": "offline"}}})
    assert r.status_code == 403 and "cluster third" in r.text
    assert d.node_states("third")["web1"][0] == "online"
    # the list shows each token's clusters, "all clusters" for the unscoped
    html = get_page(d.session, d, "/admin")
    assert scope_cell(html, token_id) == "shop,other"
    unscoped = [i for i, t in tokens(d).items() if t["clusters"] is None]
    assert unscoped and scope_cell(html, unscoped[0]) == "all clusters"


def test_the_form_offers_the_clusters_there_are(admin_site):
    html = get_page(admin_site.session, admin_site, "/admin")
    select = re.search(r'<select id="t-clusters" name="clusters" multiple[^>]*>(.*?)</select>',
                       html, re.S)
    assert select, "no cluster multi-select on the admin page"
    assert re.findall(r'<option value="([^"]+)"', select.group(1)) == [
        "default", "other", "shop", "third"]


def test_no_cluster_chosen_is_every_cluster(admin_site):
    d = admin_site
    r = create(d, [])
    assert r.status_code == 200
    token_id = NEW_TOKEN_RE.search(r.text).group(1).split("_")[1]
    assert tokens(d)[token_id]["clusters"] is None


def test_a_comma_list_in_one_field_is_taken_too(admin_site):
    d = admin_site
    r = create(d, ["shop,third"])
    assert r.status_code == 200, r.text[:400]
    token_id = NEW_TOKEN_RE.search(r.text).group(1).split("_")[1]
    assert tokens(d)[token_id]["clusters"] == ["shop", "third"]


@pytest.mark.parametrize("clusters,words", [
    (["shop", "nosuch"], "There is no cluster named nosuch"),
    (["../x"], "must be cluster names"),
    (["shop", "shop"], "Cluster shop is chosen twice"),
    (["shop,"], "must be cluster names"),
])
def test_a_bad_cluster_is_refused_and_nothing_is_created(admin_site, clusters, words):
    d = admin_site
    before = set(tokens(d))
    r = create(d, clusters, description="keep me")
    assert r.status_code == 400, r.text[:400]
    assert words in r.text and 'role="alert"' in r.text
    assert "new-token" not in r.text and set(tokens(d)) == before
    assert 'value="keep me"' in r.text  # what was typed is kept


def test_too_many_clusters_are_refused(admin_site):
    d = admin_site
    before = set(tokens(d))
    r = create(d, ["shop"] + ["c%d" % i for i in range(70)])
    assert r.status_code == 400 and set(tokens(d)) == before


@pytest.mark.skipif(not have_browser(), reason="needs chromium, chromium-driver, selenium")
def test_scoping_a_token_in_the_browser(admin_site):
    from selenium.webdriver.support.ui import Select
    d = admin_site
    b = make_browser()
    try:
        b.login(d, *d.admin, next_path="/admin")
        Select(b.find("#t-clusters")).select_by_value("shop")
        b.find("#t-description").send_keys("from the browser")
        b.find("#t-role").send_keys("viewer")
        b.find("form input[value='token-create']").find_element(
            "xpath", "..").find_element("css selector", "button[type=submit]").click()
        b.wait_for(lambda: b.find_all("#new-token"), WAIT, "the new token")
        token = b.find("#new-token").get_attribute("value")
        token_id = token.split("_")[1]
        assert tokens(d)[token_id]["clusters"] == ["shop"]
        assert d.get("/v1/clusters/shop/nodes", auth=("bearer", token)).status_code == 200
        assert d.get("/v1/clusters/other/nodes", auth=("bearer", token)).status_code == 403
        # a cluster removed while the page was open: refused, the page says so
        b.get(d.url + "/admin")
        Select(b.find("#t-clusters")).select_by_value("third")
        r = d.delete("/v1/clusters/third", auth=d.as_admin)
        assert r.status_code in (200, 204), r.text
        before = set(tokens(d))
        b.find("form input[value='token-create']").find_element(
            "xpath", "..").find_element("css selector", "button[type=submit]").click()
        b.wait_for(lambda: "no cluster named third" in b.driver.page_source, WAIT,
                   "the refusal")
        assert set(tokens(d)) == before
    finally:
        b.quit()
