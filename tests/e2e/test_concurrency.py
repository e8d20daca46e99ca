"""
Concurrency stress (docs/ARCHITECTURE.md, Threads): one daemon with four
HTTP workers, hammered for a few seconds by every kind of client at once,
then checked for consistency. It is meant to be run under ThreadSanitizer
too (meson -Db_sanitize=thread; CLUSTERMGMT_BIN=build-tsan/clustermgmt),
where it drives snapshot publication and reclamation, the job hand-off,
long-poll wake-ups, the credential cache, the observed-probe table, the
checker thread and the agent listener on worker 0 concurrently.

Bounded: the load runs STRESS_SECONDS, every request has a timeout, every
join is bounded.

Who does what:
  8 probers      GET /health?node=X (2 of them also ask the agent port)
  2 writers      each flips its own nodes' status; every acknowledged write
                 must be what a probe answers right after it
  4 long polls   /events?after=V&wait=1 in a loop; versions never go back
  1 accounts     creates a user and a token, uses both, deletes both, and
                 checks they are refused afterwards (the others act as
                 admin with a token, so no argon2 stands in their way)
  1 node churn   adds and removes its own nodes (with a failing check, so
                 the checker thread follows the churn)
"""

import socket
import threading
import time

import requests

from conftest import BEARER, free_port, fresh_source_ip, recv_until, session_from

STRESS_SECONDS = 5.0
JOIN_TIMEOUT = 30.0
TIMEOUT = 10.0
ACCOUNT_PAUSE = 0.5

WRITERS = {0: ["w0a", "w0b"], 1: ["w1a", "w1b"]}
FIXED = [n for names in WRITERS.values() for n in names] + ["steady"]
CHURN = ["churn0", "churn1", "churn2"]
PROBE_CODE = {"online": 200, "offline": 503, "drain": 503}


class Load:
    """Shared by the client threads: the deadline and what went wrong."""

    def __init__(self, daemon):
        self.d = daemon
        self.deadline = time.monotonic() + STRESS_SECONDS
        self.errors = []
        self.lock = threading.Lock()
        self.counts = {}
        # Admin calls use a token: a Basic login costs an argon2 run on the
        # side thread, and the writes should not queue behind those.
        _, token = daemon.make_token("admin", "stress")
        self.admin = {"Authorization": "Bearer " + token}

    def running(self):
        return time.monotonic() < self.deadline and len(self.errors) < 20

    def fail(self, what):
        with self.lock:
            self.errors.append(what)

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1


def agent_ask(port, line):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(line.encode() + b"\n")
        data = recv_until(s, b"\n")
    return data.split(b"\n", 1)[0].decode()


def prober(load, use_agent):
    s = requests.Session()
    i = 0
    while load.running():
        name = (FIXED + CHURN)[i % (len(FIXED) + len(CHURN))]
        i += 1
        r = s.get(load.d.url + "/health?node=" + name, timeout=TIMEOUT)
        expected = (200, 503) if name in FIXED else (200, 503, 404)
        if r.status_code not in expected:
            load.fail("probe %s: %d %r" % (name, r.status_code, r.text[:100]))
        if use_agent and i % 4 == 0:
            reply = agent_ask(load.d.agent_port, name)
            if not reply:
                load.fail("agent %s: no reply line" % name)
            load.count("agent")
        load.count("probe")
    s.close()


def writer(load, names, last):
    s = requests.Session()
    probe = requests.Session()
    statuses = ["offline", "drain", "online"]
    i = 0
    while load.running():
        name = names[i % len(names)]
        status = statuses[(i // len(names)) % len(statuses)]
        i += 1
        r = s.post(load.d.url + "/v1/clusters/default/status", headers=load.admin,
                   json={"changes": {name: {"status": status, "reason": "stress %d" % i}}},
                   timeout=TIMEOUT)
        if r.status_code != 200:
            load.fail("write %s=%s: %d %r" % (name, status, r.status_code, r.text[:200]))
            continue
        last[name] = status
        p = probe.get(load.d.url + "/health?node=" + name, timeout=TIMEOUT)
        if p.status_code != PROBE_CODE[status]:
            load.fail("probe right after acknowledged %s=%s answered %d" %
                      (name, status, p.status_code))
        load.count("write")
    s.close()
    probe.close()


def long_poll(load):
    s = requests.Session()
    after = 0
    while load.running():
        r = s.get(load.d.url + "/v1/clusters/default/events?after=%d&wait=1" % after,
                  headers=load.admin, timeout=TIMEOUT)
        if r.status_code != 200:
            load.fail("events: %d %r" % (r.status_code, r.text[:200]))
            continue
        body = r.json()
        if body["changed"] != (body["version"] > after):
            load.fail("events: changed=%s with version %d after %d" %
                      (body["changed"], body["version"], after))
        if body["version"] < after:
            load.fail("events: version went back from %d to %d" % (after, body["version"]))
        after = body["version"]
        load.count("poll")
    s.close()


def refused(load, method, path, auth):
    """The request is answered 401 (from a fresh address: no slow-down)."""
    s = session_from(fresh_source_ip())
    extra = {"auth": auth} if auth[0] != BEARER else {
        "headers": {"Authorization": "Bearer " + auth[1]}}
    r = s.request(method, load.d.url + path, timeout=TIMEOUT, **extra)
    s.close()
    return r.status_code == 401


def accounts(load, alive):
    s = requests.Session()
    i = 0
    while load.running():
        if i > 0:  # argon2 takes the side thread's time: leave room for others
            time.sleep(ACCOUNT_PAUSE)
        name = "stress%d" % i
        password = "password-%d-x" % i
        i += 1
        r = s.post(load.d.url + "/v1/users", headers=load.admin, timeout=TIMEOUT,
                   json={"name": name, "password": password, "role": "viewer"})
        if r.status_code != 201:
            load.fail("user add %s: %d %r" % (name, r.status_code, r.text[:200]))
            continue
        alive["users"].add(name)
        r = s.post(load.d.url + "/v1/tokens", headers=load.admin, timeout=TIMEOUT,
                   json={"role": "viewer", "description": name})
        if r.status_code != 201:
            load.fail("token add: %d %r" % (r.status_code, r.text[:200]))
            continue
        tid, token = r.json()["id"], r.json()["token"]
        alive["tokens"].add(tid)
        for auth in ((name, password), (BEARER, token)):
            extra = {"auth": auth} if auth[0] != BEARER else {
                "headers": {"Authorization": "Bearer " + auth[1]}}
            r = s.get(load.d.url + "/v1/clusters", timeout=TIMEOUT, **extra)
            if r.status_code != 200:
                load.fail("%s as %s: %d" % ("/v1/clusters", auth[0], r.status_code))
        r = s.delete(load.d.url + "/v1/tokens/" + tid, headers=load.admin, timeout=TIMEOUT)
        if r.status_code != 200:
            load.fail("token delete: %d %r" % (r.status_code, r.text[:200]))
        else:
            alive["tokens"].discard(tid)
            if not refused(load, "GET", "/v1/clusters", (BEARER, token)):
                load.fail("revoked token still accepted")
        if i % 2 == 0:  # every other user stays, so the end state is not empty
            continue
        r = s.delete(load.d.url + "/v1/users/" + name, headers=load.admin, timeout=TIMEOUT)
        if r.status_code != 200:
            load.fail("user delete %s: %d %r" % (name, r.status_code, r.text[:200]))
            continue
        alive["users"].discard(name)
        if not refused(load, "GET", "/v1/clusters", (name, password)):
            load.fail("deleted user %s still accepted" % name)
        load.count("account")
    s.close()


def node_churn(load, present, check_url):
    s = requests.Session()
    i = 0
    while load.running():
        name = CHURN[i % len(CHURN)]
        i += 1
        path = load.d.url + "/v1/clusters/default/nodes/" + name
        if name in present:
            r = s.delete(path, headers=load.admin, timeout=TIMEOUT)
            if r.status_code != 200:
                load.fail("node delete %s: %d %r" % (name, r.status_code, r.text[:200]))
                continue
            present.discard(name)
            after = s.get(load.d.url + "/health?node=" + name, timeout=TIMEOUT).status_code
            if after != 404:
                load.fail("probe of removed node %s: %d" % (name, after))
        else:
            r = s.put(path, headers=load.admin, timeout=TIMEOUT, json={"check": check_url})
            if r.status_code not in (200, 201):
                load.fail("node add %s: %d %r" % (name, r.status_code, r.text[:200]))
                continue
            present.add(name)
            after = s.get(load.d.url + "/health?node=" + name, timeout=TIMEOUT).status_code
            if after not in (200, 503):
                load.fail("probe of added node %s: %d" % (name, after))
        load.count("churn")
    s.close()


def test_concurrent_load_stays_consistent_and_stops_cleanly(make_daemon):
    d = make_daemon(["--threads", "4", "--check-interval", "100ms", "--check-timeout", "200ms"],
                    agent=True)
    d.set_nodes(FIXED)
    closed_port = free_port()  # nothing listens there: the check fails
    load = Load(d)
    last = {}
    alive = {"users": set(), "tokens": set()}
    present = set()
    jobs = [(prober, (load, k < 2)) for k in range(8)]
    jobs += [(writer, (load, names, last)) for names in WRITERS.values()]
    jobs += [(long_poll, (load,)) for _ in range(4)]
    jobs += [(accounts, (load, alive)),
             (node_churn, (load, present, "http://127.0.0.1:%d/" % closed_port))]

    def guarded(fn, args):
        try:
            fn(*args)
        except Exception as e:  # a timeout or a dropped connection is a failure too
            load.fail("%s: %r" % (fn.__name__, e))

    threads = [threading.Thread(target=guarded, args=job, daemon=True) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.1, load.deadline + JOIN_TIMEOUT - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "client threads still running"
    print("load:", load.counts)
    assert load.errors == [], "\n".join(load.errors[:20])
    assert load.counts.get("write", 0) > 0 and load.counts.get("probe", 0) > 0, load.counts

    states = d.node_states()
    for name in FIXED:
        assert states[name][0] == last.get(name, "online"), (name, states[name], last.get(name))
    assert set(states) == set(FIXED) | present, (sorted(states), sorted(present))
    users = {u["name"] for u in d.get("/v1/users", auth=d.admin).json()["users"]}
    assert users == {"admin"} | alive["users"], (users, alive["users"])
    tokens = {t["id"] for t in d.get("/v1/tokens", auth=d.admin).json()["tokens"]
              if t["description"] != "stress" and t["id"] != d.helper_token_id}
    assert tokens == alive["tokens"], (tokens, alive["tokens"])
    assert d.alive()
    d.stop()  # asserts exit code 0 after SIGTERM
