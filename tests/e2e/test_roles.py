"""
The role matrix (docs/API.md, "Authentication"): every endpoint x every kind of
caller. Anonymous or bad credentials -> 401 with
`WWW-Authenticate: Basic realm="clustermgmt"` (except the public probe and
/v1/health); a role below the endpoint's -> 403; enough role -> 2xx.

One module-scoped daemon serves the whole matrix; each cell first creates
(as admin) whatever resource it needs, so cells do not depend on order.
Cells with bad credentials use a fresh source address each, because the
daemon slows down repeated failures from one address.
"""

import itertools
import json

import pytest

from conftest import BEARER, assert_401, assert_json_error, fresh_source_ip

LEVEL = {"public": 0, "viewer": 1, "operator": 2, "admin": 3}

CALLERS = ["anonymous", "viewer", "operator", "admin",
           "token-viewer", "token-operator", "token-admin",
           "bad-password", "bad-token"]

CALLER_LEVEL = {"anonymous": 0, "viewer": 1, "operator": 2, "admin": 3,
                "token-viewer": 1, "token-operator": 2, "token-admin": 3}

_seq = itertools.count(1)


def uniq(prefix):
    return "%s%d" % (prefix, next(_seq))


@pytest.fixture(scope="module")
def env(shared_daemon):
    d = shared_daemon
    d.set_nodes(["zope1", "zope2"])
    creds = {"admin": d.admin}
    for role in ("viewer", "operator"):
        creds[role] = d.make_user("role" + role, role)
    for role in ("viewer", "operator", "admin"):
        creds["token-" + role] = (BEARER, d.make_token(role, "matrix " + role)[1])
    creds["bad-password"] = ("roleoperator", "definitely-wrong-password")
    creds["bad-token"] = (BEARER, "cmt_nosuchid_nosuchsecret")
    creds["anonymous"] = None
    return d, creds


# --- per-endpoint setup: returns (path, request kwargs) -------------------


def ep_probe(d):
    return "/health?node=zope1", {}


def ep_nodestatus(d):
    return "/health/++rest++nodestatus", {}


def ep_setstatus(d):
    return "/health/++rest++setstatus", {
        "data": {"change": json.dumps({"zope2": {"status": "online"}})}}


def ep_page(d):
    return "/health/managenodes", {}


def ep_v1_health(d):
    return "/v1/health", {}


def ep_clusters_get(d):
    return "/v1/clusters", {}


def ep_cluster_get(d):
    return "/v1/clusters/default", {}


def ep_clusters_post(d):
    name = uniq("rc")
    return "/v1/clusters", {"json": {"name": name, "path": "/" + name}}


def ep_cluster_delete(d):
    name = uniq("rd")
    r = d.post("/v1/clusters", auth=d.admin, json={"name": name, "path": "/" + name})
    assert r.status_code == 201, r.text
    return "/v1/clusters/" + name, {}


def ep_nodes_get(d):
    return "/v1/clusters/default/nodes", {}


def ep_nodes_put(d):
    names = [n["name"] for n in d.nodes()["nodes"]]
    return "/v1/clusters/default/nodes", {"json": {"nodes": names}}


def ep_node_get(d):
    return "/v1/clusters/default/nodes/zope1", {}


def ep_node_put(d):
    return "/v1/clusters/default/nodes/" + uniq("rn"), {"json": {"address": "127.0.0.1:8081"}}


def ep_node_delete(d):
    name = uniq("rx")
    r = d.put("/v1/clusters/default/nodes/" + name, auth=d.admin, json={})
    assert r.status_code in (200, 201), r.text
    return "/v1/clusters/default/nodes/" + name, {}


def ep_status_post(d):
    return "/v1/clusters/default/status", {"json": {"changes": {"zope2": {"status": "online"}}}}


def ep_events(d):
    return "/v1/clusters/default/events?after=0&wait=1", {}


def ep_audit(d):
    return "/v1/clusters/default/audit?limit=5", {}


def ep_users_get(d):
    return "/v1/users", {}


def ep_users_post(d):
    return "/v1/users", {"json": {"name": uniq("ru"), "password": "password-123", "role": "viewer"}}


def ep_user_delete(d):
    name, _ = d.make_user(uniq("rv"), "viewer")
    return "/v1/users/" + name, {}


def ep_tokens_post(d):
    return "/v1/tokens", {"json": {"role": "viewer", "description": "matrix"}}


def ep_tokens_get(d):
    return "/v1/tokens", {}


def ep_token_delete(d):
    tid, _ = d.make_token("viewer", "to revoke")
    return "/v1/tokens/" + tid, {}


# (id, method, required role, setup)
ENDPOINTS = [
    ("probe-GET", "GET", "public", ep_probe),
    ("probe-HEAD", "HEAD", "public", ep_probe),
    ("v1-health", "GET", "public", ep_v1_health),
    ("nodestatus", "GET", "viewer", ep_nodestatus),
    ("setstatus", "POST", "operator", ep_setstatus),
    ("managenodes-page", "GET", "page", ep_page),
    ("clusters-GET", "GET", "viewer", ep_clusters_get),
    ("cluster-GET", "GET", "viewer", ep_cluster_get),
    ("clusters-POST", "POST", "admin", ep_clusters_post),
    ("cluster-DELETE", "DELETE", "admin", ep_cluster_delete),
    ("nodes-GET", "GET", "viewer", ep_nodes_get),
    ("nodes-PUT", "PUT", "admin", ep_nodes_put),
    ("node-GET", "GET", "viewer", ep_node_get),
    ("node-PUT", "PUT", "admin", ep_node_put),
    ("node-DELETE", "DELETE", "admin", ep_node_delete),
    ("status-POST", "POST", "operator", ep_status_post),
    ("events-GET", "GET", "viewer", ep_events),
    ("audit-GET", "GET", "viewer", ep_audit),
    ("users-GET", "GET", "admin", ep_users_get),
    ("users-POST", "POST", "admin", ep_users_post),
    ("user-DELETE", "DELETE", "admin", ep_user_delete),
    ("tokens-POST", "POST", "admin", ep_tokens_post),
    ("tokens-GET", "GET", "admin", ep_tokens_get),
    ("token-DELETE", "DELETE", "admin", ep_token_delete),
]


def cells():
    for ep_id, method, required, setup in ENDPOINTS:
        for caller in CALLERS:
            if required == "public" and caller.startswith("bad-"):
                continue  # credentials are not looked at on public endpoints
            yield pytest.param(method, required, setup, caller, id="%s-%s" % (ep_id, caller))


@pytest.mark.parametrize("method,required,setup,caller", list(cells()))
def test_role_matrix(env, method, required, setup, caller):
    d, creds = env
    path, kw = setup(d)
    source = fresh_source_ip() if caller.startswith("bad-") else None
    r = d.request(method, path, auth=creds[caller], source=source, **kw)
    where = "%s %s as %s -> %d %r" % (method, path, caller, r.status_code, r.text[:300])
    assert r.status_code < 500, where

    if required == "page":
        if caller == "anonymous" or caller.startswith("bad-"):
            # Anonymous must not get the page: a 401 or a redirect to a login.
            assert r.status_code == 401 or 300 <= r.status_code < 400, where
            if r.status_code == 401:
                assert r.headers.get("WWW-Authenticate") == 'Basic realm="clustermgmt"', where
        return

    if required == "public":
        assert 200 <= r.status_code < 300, where
        return

    if caller == "anonymous" or caller.startswith("bad-"):
        assert_401(r)
        if path.startswith("/v1/"):
            assert_json_error(r, 401)
    elif CALLER_LEVEL[caller] < LEVEL[required]:
        assert r.status_code == 403, where
        if path.startswith("/v1/"):
            assert_json_error(r, 403)
    else:
        assert 200 <= r.status_code < 300, where
