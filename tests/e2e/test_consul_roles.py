"""
Roles per cluster on the Consul listener (issue 16 point 3; docs/API.md
"Consul API"): off loopback, a principal sees only the services of the
clusters it has a role on, as Consul's ACLs filter what a token may not
read (a service it may not see is an empty answer, not an error), read
with the real python3-consul client; without credentials it is refused
(401); with credentials but no role anywhere, 403 (and the refusal is
logged). On a connection to a loopback address the listener is public
and sees every service.

The daemon runs in a network namespace of its own (unshare --net) whose
loopback device also carries 10.99.0.1, a non-loopback address: the
listener is on 0.0.0.0, so one daemon is reached both ways. Everything
runs in one helper script there, which stops the daemon by its pid.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NETNS_HELPER = r'''
import json, os, subprocess, sys
import consul, requests
sys.path.insert(0, os.environ["E2E"])
from ns_helper import start_daemon, stop

DIR, BIN = os.environ["DIR"], os.environ["BIN"]
API, OFF, ON = "http://127.0.0.1:8080", "10.99.0.1", "127.0.0.1"
ADMIN = ("admin", os.environ["PW"])
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"], check=True)
daemon = start_daemon([BIN, "serve", "--listen", "127.0.0.1:8080", "--consul-listen",
                       "0.0.0.0:8500", "--db", DIR + "/cm.db", "--admin-password-file",
                       DIR + "/pw", "--roles", DIR + "/roles", "--auth-proxy-header",
                       "X-Forwarded-User", "--auth-proxy-from", "10.99.0.1/32"],
                      DIR + "/daemon.log", API + "/v1/health")
out = {}
try:
    def ok(r):
        assert r.status_code in (200, 201), (r.request.url, r.status_code, r.text)
        return r.json() if r.content else None

    for i, name in enumerate(("shop", "other")):
        ok(requests.post(API + "/v1/clusters", auth=ADMIN, timeout=10,
                         json={"name": name, "path": "/" + name}))
        for n in ("web1", "web2"):
            ok(requests.put(API + "/v1/clusters/%s/nodes/%s" % (name, n), auth=ADMIN,
                            timeout=10, json={"address": "10.0.%d.1:80" % i}))
    shop_token = ok(requests.post(API + "/v1/tokens", auth=ADMIN, timeout=10,
                                  json={"role": "viewer", "clusters": ["shop"]}))["token"]
    carol = ("carol", "carol-password-1")
    ok(requests.post(API + "/v1/users", auth=ADMIN, timeout=10,
                     json={"name": "carol", "password": carol[1], "role": "admin"}))

    def services(host, **kw):
        return sorted(consul.Consul(host=host, port=8500, **kw).catalog.services()[1])

    def health(host, service, **kw):
        _, entries = consul.Consul(host=host, port=8500, **kw).health.service(service)
        return sorted(e["Service"]["ID"] for e in entries)

    def code(host, path, **kw):
        return requests.get("http://%s:8500%s" % (host, path), timeout=10, **kw).status_code

    out["token services"] = services(OFF, token=shop_token)
    out["token shop"] = health(OFF, "shop", token=shop_token)
    out["token other"] = health(OFF, "other", token=shop_token)
    r = requests.get("http://%s:8500/v1/catalog/service/other" % OFF, timeout=10,
                     headers={"X-Consul-Token": shop_token})
    out["token catalog other"] = [r.status_code, r.json(),
                                  r.headers.get("X-Consul-Results-Filtered-By-ACLs")]
    r = requests.get("http://%s:8500/v1/catalog/services" % OFF, timeout=10,
                     headers={"X-Consul-Token": shop_token})
    out["token services filtered"] = r.headers.get("X-Consul-Results-Filtered-By-ACLs")
    # a local user the roles file scopes to shop (Basic), the trusted
    # proxy's user the file scopes to other
    r = requests.get("http://%s:8500/v1/catalog/services" % OFF, auth=carol, timeout=10)
    out["carol services"] = sorted(r.json())
    r = requests.get("http://%s:8500/v1/health/service/other" % OFF, auth=carol, timeout=10)
    out["carol other"] = [r.status_code, r.json()]
    r = requests.get("http://%s:8500/v1/catalog/services" % OFF, timeout=10,
                     headers={"X-Forwarded-User": "pat"})
    out["pat services"] = sorted(r.json())
    # no credentials off loopback; credentials of no role at all
    out["anonymous"] = code(OFF, "/v1/catalog/services")
    out["anonymous service"] = code(OFF, "/v1/health/service/shop")
    out["no role"] = code(OFF, "/v1/catalog/services", headers={"X-Forwarded-User": "ghost"})
    out["no role service"] = code(OFF, "/v1/health/service/shop",
                                  headers={"X-Forwarded-User": "ghost"})
    # the admin sees everything off loopback; anyone sees everything on it
    out["admin services"] = sorted(requests.get("http://%s:8500/v1/catalog/services" % OFF,
                                                auth=ADMIN, timeout=10).json())
    out["loopback services"] = services(ON)
    out["loopback other"] = health(ON, "other")
finally:
    out["exit"] = stop(daemon)
print(json.dumps(out))
'''

ROLES = """\
user carol: viewer on shop
user pat: viewer on other
"""


@pytest.fixture(scope="module")
def seen(cm_bin, tmp_path_factory):
    """What each principal saw, from one run of the helper in its own
    network namespace."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip for a network namespace")
    tmp = tmp_path_factory.mktemp("consul-roles")
    (tmp / "pw").write_text("admin-password-1")
    (tmp / "roles").write_text(ROLES)
    (tmp / "helper.py").write_text(NETNS_HELPER)
    out = subprocess.run(["unshare", "--net", "/usr/bin/python3", str(tmp / "helper.py")],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, BIN=cm_bin, DIR=str(tmp), PW="admin-password-1",
                                  E2E=str(Path(__file__).parent)))
    log = (tmp / "daemon.log").read_text() if (tmp / "daemon.log").exists() else ""
    assert out.returncode == 0, out.stdout + out.stderr + log
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["log"] = log
    return result


SHOP = ["shop:web1", "shop:web2"]
OTHER = ["other:web1", "other:web2"]


def test_a_token_scoped_to_one_cluster_lists_only_its_service(seen):
    assert seen["token services"] == ["shop"]
    assert seen["token shop"] == SHOP


def test_a_service_the_token_may_not_read_is_empty_as_consul_filters_it(seen):
    assert seen["token other"] == []
    assert seen["token catalog other"] == [200, [], "true"]
    assert seen["token services filtered"] == "true"


def test_users_scoped_by_the_roles_file_see_their_clusters_only(seen):
    assert seen["carol services"] == ["shop"]  # an admin stored, viewer on shop by the file
    assert seen["carol other"] == [200, []]
    assert seen["pat services"] == ["other"]  # the trusted proxy's user


def test_off_loopback_no_credentials_is_401_and_no_role_is_403(seen):
    assert seen["anonymous"] == 401 and seen["anonymous service"] == 401
    assert seen["no role"] == 403 and seen["no role service"] == 403
    refusals = [line for line in seen["log"].splitlines()
                if "refused: role too low" in line and "proxy:ghost" in line]
    assert refusals and "path=/v1/catalog/services" in refusals[0], seen["log"][-2000:]


def test_the_admin_and_loopback_see_every_service(seen):
    assert seen["admin services"] == ["other", "shop"]
    assert seen["loopback services"] == ["other", "shop"]
    assert seen["loopback other"] == OTHER
    assert seen["exit"] == 0
