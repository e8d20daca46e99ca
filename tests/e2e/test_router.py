"""
The router (src/http/router.c) end to end: the refusals it decides in one
place, each worded by the surface the path belongs to, and mounts read
from the current snapshot. The matching itself is unit-tested in
tests/unit/test_router.c.
"""

import pytest


@pytest.fixture(scope="module")
def d(shared_daemon):
    shared_daemon.set_nodes(["zope1"])
    return shared_daemon


def test_api_path_matching_nothing_is_a_json_404(d):
    r = d.get("/v1/nope", auth=d.admin)
    assert r.status_code == 404
    assert r.json() == {"error": "no such API path: /v1/nope", "detail": None}


def test_unknown_rest_action_is_a_json_404_naming_it(d):
    r = d.get("/health/++rest++nope", auth=d.admin)
    assert r.status_code == 404
    assert r.json() == {"error": "unknown REST action '++rest++nope'", "detail": None}


def test_unknown_path_is_a_text_404(d):
    for path in ("/nope", "/health/nope", "/health/++rest++", "/static/nope.css"):
        r = d.get(path)
        assert r.status_code == 404, path
        assert r.text == "not found", path
        assert r.headers["Content-Type"].startswith("text/plain"), path


def test_probe_wrong_method_is_a_json_405_with_allow(d):
    r = d.post("/health?node=zope1")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD"
    assert r.json()["error"] == "method POST is not allowed here (allowed: GET, HEAD)"


def test_page_wrong_method_is_a_page_405_with_allow(d):
    r = d.post("/")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD"
    assert r.headers["Content-Type"].startswith("text/html")
    assert "Method not allowed" in r.text


def test_login_405_lists_the_get_it_serves(d):
    # The page's own 405 used to say "Allow: POST" for /login, which also
    # answers GET and HEAD.
    r = d.put("/login")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD, POST"


def test_asset_wrong_method_is_405_whether_or_not_it_exists(d):
    for path in ("/static/ui.css", "/static/nope.css"):
        r = d.post(path)
        assert r.status_code == 405, path
        assert r.headers["Allow"] == "GET, HEAD", path
        assert r.text == "method not allowed", path


def test_bad_name_is_400_before_authentication(d):
    # the path is refused before anyone is asked for credentials
    r = d.get("/v1/clusters/bad%20name/nodes")
    assert r.status_code == 400
    assert r.json()["detail"] == {"entry": "bad name"}


def test_wrong_method_is_405_before_authentication(d):
    r = d.request("PATCH", "/v1/clusters")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, POST"


def test_cluster_added_at_run_time_is_routed_at_its_mount(d):
    r = d.post("/v1/clusters", auth=d.admin, json={"name": "web", "path": "/lb/web"})
    assert r.status_code == 201, r.text
    d.set_nodes(["w1"], cluster="web")
    r = d.get("/lb/web?node=w1")
    assert (r.status_code, r.text) == (200, "OK")
    r = d.get("/lb/web/++rest++nodestatus", auth=d.admin)
    assert r.status_code == 200
    assert r.json() == {"w1": {"status": "online"}}
    r = d.get("/lb/web/manage_main")
    assert r.status_code == 302
    assert r.headers["Location"] == "/lb/web/managenodes"
    r = d.get("/lb?node=w1")  # a prefix of a mount is no mount
    assert r.status_code == 404
