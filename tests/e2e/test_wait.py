"""
`clustermgmt wait NAME... --drained|--serving` (docs/CLI.md, "wait"; issue 4):
returns 0 once every client that probed the node within the window has
been answered K times in a row with failure (--drained) or success
(--serving) since the node's last status change; exit 4 on timeout naming
who has not seen it; with nothing probing, it says so and waits
--no-probers-delay, or fails (exit 1) with --require-probers.

The load balancers are fake: threads that probe on an interval from their
own loopback address.

Each behaviour is tested twice (the `nodes` fixture's two params): with
the daemon judging (GET .../nodes/{n}/drained or /serving), and with
`wait` judging itself, as it does against a daemon without those
endpoints (an older one): the CLI then talks to the daemon through
OlderDaemon (olderdaemon.py), a proxy that answers those two paths 404
as the daemon answers a path it does not know and passes everything else
on.
"""

import json
import os
import subprocess
import threading
import time

import pytest

from conftest import session_from
from olderdaemon import OlderDaemon

CLI_TIMEOUT = 60


class Prober:
    """A fake load balancer probing one node every `interval` seconds."""

    def __init__(self, d, node, ip, interval=0.1, user_agent="fake-lb"):
        self.d, self.node, self.ip, self.interval = d, node, ip, interval
        self.user_agent = user_agent
        self.answers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        s = session_from(self.ip)
        try:
            while not self._stop.is_set():
                try:
                    sent = time.monotonic()
                    r = s.get(self.d.url + "/health?node=" + self.node,
                              headers={"User-Agent": self.user_agent}, timeout=2)
                    self.answers.append((sent, time.monotonic(), r.status_code))
                except Exception:  # noqa: BLE001 - a fake LB keeps going
                    pass
                self._stop.wait(self.interval)
        finally:
            s.close()

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self.answers and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def answers_after(self, t, sent_before=None):
        """Codes answered at or after t; with sent_before, only those of
        requests sent before it (the daemon may have counted an answer
        that this thread has not recorded yet: compare once it stopped)."""
        return [code for (sent, at, code) in self.answers
                if at >= t and (sent_before is None or sent < sent_before)]


def run_wait(d, *args, timeout=CLI_TIMEOUT):
    older = getattr(d, "older", None)
    env = dict(os.environ)
    for k in ("CLUSTERMGMT_TOKEN", "CLUSTERMGMT_USER", "CLUSTERMGMT_PASSWORD"):
        env.pop(k, None)
    env["CLUSTERMGMT_URL"] = older.url if older else d.url
    if d.admin_token:  # not about passwords: no argon2id in the timed waits
        env["CLUSTERMGMT_TOKEN"] = d.admin_token[1]
    else:
        env.update({"CLUSTERMGMT_USER": "admin", "CLUSTERMGMT_PASSWORD": d.password})
    hidden = older.hidden if older else 0
    r = subprocess.run([d.bin, "wait"] + list(args), env=env, capture_output=True,
                       text=True, timeout=timeout)
    if older and r.returncode != 2:  # not a usage error: the daemon was asked
        assert older.hidden > hidden, "wait did not ask the daemon for a verdict first"
        assert older.observed > 0, "wait did not judge from the observations"
    return r


@pytest.fixture(params=["daemon-judges", "older-daemon"])
def nodes(daemon, request):
    """The daemon with nodes zope1 and zope2; with "older-daemon", `wait`
    reaches it through OlderDaemon (daemon.older) and judges itself."""
    daemon.set_nodes(["zope1", "zope2"])
    daemon.older = None
    if request.param == "older-daemon":
        daemon.older = OlderDaemon(daemon)
    yield daemon
    if daemon.older:
        daemon.older.close()


def test_drained_returns_after_every_prober_saw_k_failures(nodes):
    with Prober(nodes, "zope1", "127.0.1.2") as a, Prober(nodes, "zope1", "127.0.1.3",
                                                          interval=0.3) as b:
        # before the request: an answer that arrives while the reply to it
        # is on its way already counts for the daemon (the status filter
        # below leaves out the answers from before the change)
        changed = time.monotonic()
        nodes.set_status({"zope1": {"status": "offline"}})
        r = run_wait(nodes, "zope1", "--drained", "--fall", "3", "--timeout", "20")
        returned = time.monotonic()
    assert r.returncode == 0, r.stderr
    for p in (a, b):
        assert len([c for c in p.answers_after(changed, returned) if c == 503]) >= 3
    assert "zope1: drained by 2 probers" in r.stdout, r.stdout


def test_drained_does_not_return_before_the_slow_prober_saw_it(nodes):
    with Prober(nodes, "zope1", "127.0.1.4", interval=0.05), \
            Prober(nodes, "zope1", "127.0.1.5", interval=1.0) as slow:
        time.sleep(0.2)
        t0 = time.monotonic()
        nodes.set_status({"zope1": {"status": "drain"}})
        r = run_wait(nodes, "zope1", "--drained", "--fall", "2", "--timeout", "20")
        returned = time.monotonic()
    assert r.returncode == 0, r.stderr
    assert "zope1: drained by 2 probers" in r.stdout, r.stdout
    assert len([c for c in slow.answers_after(t0, returned) if c == 503]) >= 2
    assert returned - t0 >= 1.0, returned - t0


def test_serving_returns_after_k_successes(nodes):
    nodes.set_status({"zope1": {"status": "offline"}})
    with Prober(nodes, "zope1", "127.0.1.6") as p:
        time.sleep(0.3)
        changed = time.monotonic()  # before the request, as above
        nodes.set_status({"zope1": {"status": "online"}})
        r = run_wait(nodes, "zope1", "--serving", "--fall", "3", "--timeout", "20")
        returned = time.monotonic()
    assert r.returncode == 0, r.stderr
    assert "zope1: served by 1 prober" in r.stdout, r.stdout
    assert len([c for c in p.answers_after(changed, returned) if c == 200]) >= 3


def test_several_nodes_all_must_be_done(nodes):
    with Prober(nodes, "zope1", "127.0.1.7"), Prober(nodes, "zope2", "127.0.1.7"):
        nodes.set_status({"zope1": {"status": "offline"}, "zope2": {"status": "offline"}})
        r = run_wait(nodes, "zope1", "zope2", "--drained", "--timeout", "20")
        assert r.returncode == 0, r.stderr
        assert "zope1: drained by 1 prober" in r.stdout, r.stdout
        assert "zope2: drained by 1 prober" in r.stdout, r.stdout


def test_timeout_exits_4_and_names_the_prober(nodes):
    with Prober(nodes, "zope1", "127.0.1.8", user_agent="stubborn-lb"):
        # the node stays online: the prober never sees it out
        t0 = time.monotonic()
        r = run_wait(nodes, "zope1", "--drained", "--timeout", "2")
        elapsed = time.monotonic() - t0
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert "127.0.1.8" in r.stderr and "stubborn-lb" in r.stderr, r.stderr
    assert "timed out" in r.stderr
    assert 1.5 <= elapsed < 10, elapsed


def test_answers_before_the_change_do_not_count(nodes):
    nodes.set_status({"zope1": {"status": "offline"}})
    with Prober(nodes, "zope1", "127.0.1.9"):
        time.sleep(0.5)  # many 503s for "offline"
    # a new change (offline -> drain): the old failures are not "since the change"
    nodes.set_status({"zope1": {"status": "drain"}})
    r = run_wait(nodes, "zope1", "--drained", "--timeout", "2", "--window", "30")
    assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)


def test_no_probers_says_so_and_waits_the_delay(nodes):
    nodes.set_status({"zope1": {"status": "offline"}})
    t0 = time.monotonic()
    r = run_wait(nodes, "zope1", "--drained", "--no-probers-delay", "2")
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "nothing probed zope1" in r.stderr, r.stderr
    assert 1.8 <= elapsed < 8, elapsed


def test_no_probers_with_require_probers_fails(nodes):
    t0 = time.monotonic()
    r = run_wait(nodes, "zope1", "--drained", "--require-probers")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "nothing probed zope1" in r.stderr
    assert time.monotonic() - t0 < 5


def test_unknown_node_is_refused(nodes):
    r = run_wait(nodes, "ghost", "--drained", "--timeout", "2")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "ghost" in r.stderr


@pytest.mark.parametrize("args", [
    ["zope1"],
    ["zope1", "--drained", "--serving"],
    ["--drained"],
    ["zope1", "--drained", "--fall", "0"],
    ["zope1", "--drained", "--timeout", "soon"],
    ["zope1", "--drained", "--require-probers", "--no-probers-delay", "3"],
    ["zope1", "--drained", "--reason", "x"],
])
def test_usage_errors_exit_2(nodes, args):
    r = run_wait(nodes, *args)
    assert r.returncode == 2, (args, r.returncode, r.stderr)


def test_json_output(nodes):
    with Prober(nodes, "zope1", "127.0.1.10"):
        nodes.set_status({"zope1": {"status": "offline"}})
        r = run_wait(nodes, "zope1", "--drained", "--json", "--timeout", "20")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["nodes"]["zope1"]["done"] is True
    assert doc["nodes"]["zope1"]["probers"] >= 1
