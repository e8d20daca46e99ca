"""
The registry of rollouts in progress when several daemons share one
PostgreSQL (docs/API.md, "Rollouts"): a rollout registered through one
daemon is seen through every other, on the API and on the cluster's page,
and blocks a second one there (through the API and a real `rollout`); heartbeats are no change of the store; a
silent client is shown gone everywhere; while the store is away the last
list is served and a registration is refused. And, with one daemon on
SQLite, that a restart keeps the registry.

Every test starts a real PostgreSQL (tests/e2e/pgcluster.py) and real
daemons, and headless Chromium for the page; every wait is bounded.
"""

import os
import subprocess
import time

from conftest import assert_json_error
from test_postgres import fleet, health, wait_until  # noqa: F401  (fixtures)
from test_ui import browser, chromium  # noqa: F401  (headless Chromium, one per module)

PATH = "/v1/clusters/default/rollouts"
SEEN_TIMEOUT = 10.0  # s: a daemon reads the store's list at most every second
STALE_S = 30  # ROLLOUT_STALE_MS


def rollouts(d):
    r = d.get(PATH, auth=d.as_admin, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def shown(d, rid):
    return next((x for x in rollouts(d)["rollouts"] if x["id"] == rid), None)


def register(d, rid, **extra):
    body = dict({"id": rid, "nodes": ["web1", "web2"], "command": "deploy v2"}, **extra)
    return d.post(PATH, auth=d.as_admin, json=body, timeout=10)


def beat(d, rid, **fields):
    return d.put(PATH + "/" + rid, auth=d.as_admin, json=fields, timeout=10)


def page_rollout(browser, rid, css):
    found = browser.find_all("#rollouts .rollout[data-id='%s'] %s" % (rid, css))
    return found[0].text if found else None


def test_a_rollout_registered_through_one_daemon_is_seen_and_refused_through_another(
        fleet, pg_url):
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1", "web2"])
    r = register(a, "first1")
    assert r.status_code == 201, r.text
    x = wait_until(lambda: shown(b, "first1"), SEEN_TIMEOUT, "b to see a's rollout")
    assert x["state"] == "running" and x["client_gone"] is False, x
    assert x["started_by"] == "admin" and x["nodes"] == ["web1", "web2"], x
    assert x["command"] == "deploy v2" and x["verdicts"] == {}, x
    assert rollouts(b)["store_unreachable"] is False

    r = register(b, "second2")
    body = assert_json_error(r, 409)
    assert "first1" in body["error"] and body["detail"]["rollout"]["id"] == "first1", body
    assert shown(a, "second2") is None and shown(b, "second2") is None

    r = beat(a, "first1", phase="judging", current="web1", verdicts={"web1": "pass"})
    assert r.status_code == 200, r.text
    x = wait_until(lambda: (shown(b, "first1") or {}).get("phase") == "judging" and
                   shown(b, "first1"), SEEN_TIMEOUT, "b to see a's heartbeat")
    assert x["current"] == "web1" and x["verdicts"] == {"web1": "pass"}, x
    r = beat(a, "first1", verdicts={"web2": "fail"})
    assert r.json()["rollout"]["verdicts"] == {"web1": "pass", "web2": "fail"}, r.text

    r = register(b, "second2", force=True)
    assert r.status_code == 201, r.text
    x = wait_until(lambda: (shown(a, "first1") or {}).get("state") == "interrupted" and
                   shown(a, "first1"), SEEN_TIMEOUT, "a to see the override")
    assert "second2" in x["message"], x
    assert shown(a, "second2")["state"] == "running"


def test_heartbeats_are_no_change_of_the_store(fleet, pg_url):
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1", "web2"])
    assert register(a, "beats1").status_code == 201
    before = health(a)["version"]
    for i in range(10):
        assert beat(a, "beats1", phase="step %d" % i).status_code == 200
    wait_until(lambda: (shown(b, "beats1") or {}).get("phase") == "step 9", SEEN_TIMEOUT,
               "b to see the last heartbeat")
    # neither registering nor beating made a new store version
    assert health(a)["version"] == before and health(b)["version"] == before
    assert a.nodes()["version"] == b.nodes()["version"]


def test_the_registry_keeps_its_bound_across_daemons(fleet, pg_url):
    a, b = fleet(pg_url, n=2)
    names = ["c%02d" % i for i in range(64)]
    for name in names:
        assert a.post("/v1/clusters", auth=a.as_admin,
                      json={"name": name, "path": "/" + name}).status_code == 201
    wait_until(lambda: b.get("/v1/clusters/c63/rollouts", auth=b.as_admin).status_code == 200,
               SEEN_TIMEOUT, "b to see the clusters")
    for i, name in enumerate(names):
        d = a if i % 2 else b
        r = d.post("/v1/clusters/%s/rollouts" % name, auth=d.as_admin,
                   json={"id": "r%d" % i, "nodes": []})
        assert r.status_code == 201, r.text
    r = a.post(PATH, auth=a.as_admin, json={"id": "one", "nodes": []})
    body = assert_json_error(r, 503)
    assert "64 rollouts" in body["error"], body
    # a finished one makes room
    assert b.put("/v1/clusters/c00/rollouts/r0", auth=b.as_admin,
                 json={"state": "done"}).status_code == 200
    assert a.post(PATH, auth=a.as_admin, json={"id": "one", "nodes": []}).status_code == 201


def test_a_silent_client_is_shown_gone_through_every_daemon_and_on_the_page(
        fleet, pg_url, browser):
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1", "web2"])
    assert register(a, "silent1", phase="judging", current="web2").status_code == 201
    browser.login(b, "admin", b.password)
    browser.wait_for(lambda: page_rollout(browser, "silent1", ".r-state") == "running",
                     SEEN_TIMEOUT, "b's page to show a's rollout running")
    time.sleep(STALE_S + 1)
    x = wait_until(lambda: (shown(b, "silent1") or {}).get("client_gone") and
                   shown(b, "silent1"), SEEN_TIMEOUT, "b to show the client gone")
    assert x["state"] == "client gone" and x["heartbeat_age_ms"] > STALE_S * 1000, x
    r = register(b, "next1")
    body = assert_json_error(r, 409)
    assert "may be dead" in body["error"], body
    browser.wait_for(lambda: page_rollout(browser, "silent1", ".r-state") == "client gone",
                     SEEN_TIMEOUT, "b's page to show the client gone")
    assert "no heartbeat for" in page_rollout(browser, "silent1", ".r-gone")
    assert page_rollout(browser, "silent1", ".r-current .r-here") is not None


def test_the_page_follows_a_rollout_live_and_escapes_its_strings(fleet, pg_url, browser):
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1", "web2"])
    browser.login(b, "admin", b.password)
    assert browser.find("#rollouts").is_displayed() is False  # none yet
    browser.driver.execute_script("window.notReloaded = true;")
    evil = '<img src=x onerror="window.pwned=1">'
    assert register(a, "live1", command=evil).status_code == 201
    browser.wait_for(lambda: page_rollout(browser, "live1", ".r-state") == "running",
                     SEEN_TIMEOUT, "the page to show the rollout")
    assert "admin" in page_rollout(browser, "live1", ".r-by")
    assert page_rollout(browser, "live1", ".r-command") == evil
    assert beat(a, "live1", phase="judging", current="web1",
                verdicts={"web1": "pass"}).status_code == 200
    browser.wait_for(lambda: page_rollout(browser, "live1", ".r-phase") == "judging",
                     SEEN_TIMEOUT, "the page to show the phase")
    assert page_rollout(browser, "live1", ".r-current") == "web1 pass \u2190 now"
    assert beat(a, "live1", state="verdict fail", verdicts={"web2": "fail"},
                message="web2: 12% errors against 0.1% " + evil).status_code == 200
    browser.wait_for(lambda: page_rollout(browser, "live1", ".r-state") == "verdict fail",
                     SEEN_TIMEOUT, "the page to show how it ended")
    assert page_rollout(browser, "live1", ".r-message").endswith(evil)
    assert "web2 fail" in page_rollout(browser, "live1", ".r-nodes")
    assert browser.find_all("#rollouts img") == []
    assert browser.driver.execute_script("return window.pwned === undefined && "
                                         "window.notReloaded === true;")


def test_store_down_serves_the_last_list_and_refuses_registration(fleet, pg_own_server,
                                                                  tmp_path, browser):
    pg = pg_own_server
    a, b = fleet(pg.url(pg.create_database()), n=2)
    a.set_nodes(["web1", "web2"])
    assert register(a, "kept1").status_code == 201
    assert beat(a, "kept1", phase="judging").status_code == 200
    wait_until(lambda: (shown(b, "kept1") or {}).get("phase") == "judging", SEEN_TIMEOUT,
               "b to see the rollout")
    browser.login(b, "admin", b.password)
    browser.wait_for(lambda: page_rollout(browser, "kept1", ".r-phase") == "judging",
                     SEEN_TIMEOUT, "b's page to show the rollout")
    pg.stop("immediate")
    try:
        for d in (a, b):
            wait_until(lambda: health(d)["state"] == "unreachable", 30,
                       "%s to notice the outage" % d.url)
        doc = rollouts(b)
        assert doc["store_unreachable"] is True and doc["as_of"], doc
        x = shown(b, "kept1")
        assert x["state"] == "running" and x["phase"] == "judging", x
        t0 = time.monotonic()
        r = register(b, "new1")
        body = assert_json_error(r, 503)
        assert time.monotonic() - t0 < 4.0  # at once, not after the store's deadline
        assert "store is unreachable" in body["error"] and "--force" in body["error"], body
        assert shown(b, "new1") is None
        assert_json_error(beat(a, "kept1", phase="still going"), 503)
        assert shown(a, "kept1")["phase"] == "still going"  # kept here
        # the CLI says why and what --force does; nothing runs
        marker = tmp_path / "ran"
        env = cli_env(b)
        p = subprocess.run([b.bin, "rollout", "--nodes", "web1", "--exec",
                            "touch %s" % marker], env=env, capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        assert p.returncode == 1, p.stdout + p.stderr
        assert "store is unreachable" in p.stderr and "--force" in p.stderr, p.stderr
        assert not marker.exists()
        p = subprocess.run([b.bin, "rollout", "--force", "--nodes", "web1", "--exec",
                            "touch %s" % marker], env=env, capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        assert "--force: going on unregistered" in p.stderr, p.stderr
        assert p.returncode != 0 and not marker.exists()  # nothing can go offline
        browser.wait_for(lambda: browser.find(".rollouts-note").is_displayed(), SEEN_TIMEOUT,
                         "the page to say the store does not answer")
        assert "store does not answer" in browser.text(".rollouts-note")
        assert page_rollout(browser, "kept1", ".r-state") == "running"
    finally:
        pg.start()
    wait_until(lambda: rollouts(b)["store_unreachable"] is False, 30,
               "b to read the store again")
    assert shown(b, "kept1")["phase"] == "judging"  # the store's, not a's local beat


def cli_env(d):
    env = dict(os.environ, CLUSTERMGMT_URL=d.url, CLUSTERMGMT_USER="admin",
               CLUSTERMGMT_PASSWORD=d.password)
    for k in ("CLUSTERMGMT_TOKEN", "NETRC"):
        env.pop(k, None)
    return env


def test_a_cli_rollout_through_one_daemon_refuses_one_through_another(fleet, pg_url, tmp_path):
    a, b = fleet(pg_url, n=2)
    a.set_nodes(["web1", "web2"])
    gate = tmp_path / "gate"
    first = subprocess.Popen(
        [a.bin, "rollout", "--nodes", "web1", "--exec",
         "i=0; while [ ! -e %s ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done" % gate],
        env=cli_env(a), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        x = wait_until(lambda: next((x for x in rollouts(b)["rollouts"]
                                     if x["current"] == "web1"), None), 30,
                       "b to show a's rollout on web1")
        assert x["state"] == "running" and x["nodes"] == ["web1"], x
        second = subprocess.run([b.bin, "rollout", "--nodes", "web2", "--exec", "true"],
                                env=cli_env(b), capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        assert second.returncode == 1, second.stdout + second.stderr
        assert "in progress" in second.stderr and x["id"] in second.stderr, second.stderr
        gate.write_text("go\n")
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, out + err
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=10)
    x = wait_until(lambda: (shown(b, x["id"]) or {}).get("state") == "done" and
                   shown(b, x["id"]), SEEN_TIMEOUT, "b to show the rollout done")
    assert b.node_states()["web2"][0] == "online"  # the refused one changed nothing


def test_a_daemon_restart_keeps_the_registry_on_sqlite(daemon):
    assert register(daemon, "kept2").status_code == 201
    assert beat(daemon, "kept2", phase="judging", verdicts={"web1": "pass"}).status_code == 200
    daemon.stop()
    daemon.start()
    x = shown(daemon, "kept2")
    assert x is not None and x["state"] == "running" and x["phase"] == "judging", x
    assert x["verdicts"] == {"web1": "pass"} and "store_unreachable" not in rollouts(daemon)
    assert_json_error(register(daemon, "other2"), 409)  # it still blocks a second one
    r = beat(daemon, "kept2", state="done")
    assert r.status_code == 200 and r.json()["rollout"]["state"] == "done", r.text


def assert_a_removed_clusters_rollout_goes_with_it(d):
    """Registered on shop, shop removed and made again: no rollout left to
    show or to refuse a new one."""
    shop = "/v1/clusters/shop/rollouts"
    for _ in range(2):
        r = d.post("/v1/clusters", auth=d.as_admin, json={"name": "shop", "path": "/shop"})
        assert r.status_code == 201, r.text
        d.set_nodes(["web1", "web2"], cluster="shop")
        r = d.post(shop, auth=d.as_admin, json={"id": "shop1", "nodes": ["web1"]}, timeout=10)
        assert r.status_code == 201, r.text  # the second time: nothing of the first blocks it
        r = d.delete("/v1/clusters/shop", auth=d.as_admin)
        assert r.status_code in (200, 204), r.text
    r = d.post("/v1/clusters", auth=d.as_admin, json={"name": "shop", "path": "/shop"})
    assert r.status_code == 201, r.text
    r = d.get(shop, auth=d.as_admin, timeout=10)
    assert r.status_code == 200 and r.json()["rollouts"] == [], r.text


def test_a_removed_clusters_rollouts_go_with_it_on_sqlite(daemon):
    assert_a_removed_clusters_rollout_goes_with_it(daemon)


def test_a_removed_clusters_rollouts_go_with_it_on_postgres(fleet, pg_url):  # noqa: F811
    a, = fleet(pg_url, n=1)
    assert_a_removed_clusters_rollout_goes_with_it(a)
