"""
HAProxy agent-check (docs/API.md, "HAProxy agent-check"): `serve --agent-listen ADDR:PORT`;
HAProxy connects, optionally sends `NAME` or `CLUSTER/NAME` (its
agent-send line), and reads one line back: online -> ready/up,
drain -> drain, offline -> maint, check failing -> down.
"""

import socket
import time

import pytest

from conftest import free_port


@pytest.fixture
def agent(make_daemon):
    d = make_daemon(agent=True)
    d.set_nodes(["zope1", "zope2"])
    return d


def ask(port, line, timeout=5.0):
    """One agent-check exchange; returns the reply line (without newline)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if line is not None:
            s.sendall(line.encode() + b"\n")
        data = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in data and time.monotonic() < deadline:
            b = s.recv(1024)
            if not b:
                break
            data += b
    assert data.endswith(b"\n") or b"\n" in data, "no reply line: %r" % data
    return data.split(b"\n", 1)[0].decode().strip()


def words(reply):
    return set(reply.lower().replace(",", " ").split())


def test_agent_online_is_ready_or_up(agent):
    assert words(ask(agent.agent_port, "zope1")) & {"ready", "up"}


def test_agent_drain_is_drain(agent):
    agent.set_status({"zope1": {"status": "drain"}})
    assert "drain" in words(ask(agent.agent_port, "zope1"))


def test_agent_offline_is_maint(agent):
    agent.set_status({"zope1": {"status": "offline"}})
    reply = words(ask(agent.agent_port, "zope1"))
    assert "maint" in reply and not reply & {"ready", "up"}


def test_agent_follows_changes(agent):
    agent.set_status({"zope2": {"status": "offline"}})
    assert "maint" in words(ask(agent.agent_port, "zope2"))
    agent.set_status({"zope2": {"status": "online"}})
    assert words(ask(agent.agent_port, "zope2")) & {"ready", "up"}


def test_agent_cluster_slash_name(agent):
    r = agent.post("/v1/clusters", auth=agent.as_admin, json={"name": "shop", "path": "/shophealth"})
    assert r.status_code == 201
    agent.set_nodes(["zope1"], cluster="shop")
    agent.set_status({"zope1": {"status": "offline"}}, cluster="shop")
    assert "maint" in words(ask(agent.agent_port, "shop/zope1"))
    assert words(ask(agent.agent_port, "default/zope1")) & {"ready", "up"}
    assert words(ask(agent.agent_port, "zope1")) & {"ready", "up"}


def test_agent_stalled_connection_does_not_block_http_or_agent(agent):
    stalled = socket.create_connection(("127.0.0.1", agent.agent_port), timeout=5)
    try:
        stalled.sendall(b"zo")  # half a line, then nothing
        time.sleep(0.2)
        t0 = time.monotonic()
        assert agent.probe("zope1").status_code == 200
        assert words(ask(agent.agent_port, "zope1")) & {"ready", "up"}
        # Not held up until the stalled client goes (it stays until the
        # finally below); room for a stall of 2 s.
        assert time.monotonic() - t0 < 4.0
    finally:
        stalled.close()


def test_agent_unknown_node_answers_and_daemon_survives(agent):
    reply = ask(agent.agent_port, "ghost")
    assert not words(reply) & {"ready", "up"}, reply
    assert agent.alive()


# --- the exact words, the fallbacks, and observed probes --------------------


def test_agent_words_exact(agent):
    assert ask(agent.agent_port, "zope1") == "up ready"
    agent.set_status({"zope1": {"status": "drain"}})
    assert ask(agent.agent_port, "zope1") == "up drain"
    agent.set_status({"zope1": {"status": "offline"}})
    assert ask(agent.agent_port, "zope1") == "maint"


def test_agent_unknown_node_and_cluster_say_down_with_a_comment(agent):
    assert ask(agent.agent_port, "ghost") == "down #unknown node default/ghost"
    assert ask(agent.agent_port, "nocluster/zope1") == "down #unknown node nocluster/zope1"
    assert ask(agent.agent_port, "bad name!").startswith("down #")


def test_agent_without_line_and_without_default_node_says_down(agent):
    t0 = time.monotonic()
    assert ask(agent.agent_port, None).startswith("down #")
    assert time.monotonic() - t0 < 4.0  # the 300 ms read timeout, room for a 2 s stall


def test_agent_without_line_uses_serve_node(make_daemon):
    d = make_daemon(["--node", "zope2"], agent=True)
    port = d.agent_port
    d.set_nodes(["zope1", "zope2"])
    d.set_status({"zope2": {"status": "offline"}})
    t0 = time.monotonic()
    assert ask(port, None) == "maint"
    # the 300 ms read timeout (room for a loaded machine), not HAProxy's check timeout
    assert time.monotonic() - t0 < 4.0
    assert ask(port, "zope1") == "up ready"


def test_agent_line_without_newline_is_taken_after_the_timeout(agent):
    agent.set_status({"zope1": {"status": "offline"}})
    with socket.create_connection(("127.0.0.1", agent.agent_port), timeout=5) as s:
        s.sendall(b"zope1")
        data = s.recv(1024)
    assert data == b"maint\n"


def test_agent_crlf_line(agent):
    with socket.create_connection(("127.0.0.1", agent.agent_port), timeout=5) as s:
        s.sendall(b"default/zope1\r\n")
        assert s.recv(1024) == b"up ready\n"


def test_agent_overlong_line_is_refused(agent):
    assert ask(agent.agent_port, "x" * 1000).startswith("down #")
    assert agent.alive()


def test_agent_exchange_is_an_observed_probe(agent):
    ask(agent.agent_port, "zope1")
    ask(agent.agent_port, "zope1")
    node = agent.get("/v1/clusters/default/nodes/zope1", auth=agent.as_admin).json()["node"]
    probes = [p for p in node["probes"] if p["protocol"] == "agent"]
    assert len(probes) == 1, node["probes"]
    assert probes[0]["user_agent"] == "haproxy-agent"
    assert probes[0]["last_answer"] == "up ready" and probes[0]["consecutive"] == 2


def test_agent_listen_bad_address_fails_start(cm_bin, tmp_path):
    import subprocess
    r = subprocess.run([cm_bin, "serve", "--listen", "127.0.0.1:%d" % free_port(), "--db",
                        str(tmp_path / "x.db"), "--agent-listen", "nonsense"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "agent-listen" in r.stderr


# --- real HAProxy ------------------------------------------------------------

HAPROXY = "/usr/sbin/haproxy"


class Haproxy:
    """HAProxy with one backend server whose state comes from the agent,
    and an HTTP health check against the daemon's probe."""

    def __init__(self, tmp, agent_port, http_port, node="zope1"):
        self.dir = tmp
        self.sock = str(tmp / "stats.sock")
        cfg = tmp / "haproxy.cfg"
        cfg.write_text("""global
  stats socket %(sock)s mode 600 level admin
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
  timeout check 1s
backend be
  option httpchk GET /health?node=%(node)s
  server %(node)s 127.0.0.1:%(http)d check inter 300ms fall 2 rise 2 agent-check agent-port %(agent)d agent-addr 127.0.0.1 agent-send "default/%(node)s\\n" agent-inter 300ms
""" % {"sock": self.sock, "node": node, "http": http_port, "agent": agent_port})
        import subprocess
        self.proc = subprocess.Popen([HAPROXY, "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL,
                                     stderr=open(tmp / "haproxy.log", "wb"))

    def command(self, cmd):
        import socket as sk
        s = sk.socket(sk.AF_UNIX)
        s.settimeout(2)
        s.connect(self.sock)
        s.sendall(cmd.encode() + b"\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        return data.decode()

    def state(self, node="zope1"):
        """(op_state, admin_state) from `show servers state`: op 2 = running,
        0 = stopped; admin bit 1 = MAINT (forced), 8 = DRAIN (forced)."""
        for line in self.command("show servers state be").splitlines():
            f = line.split()
            if len(f) > 6 and f[3] == node:
                return int(f[5]), int(f[6])
        return None

    def wait_state(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            try:
                st = self.state()
            except OSError:
                st = None
            if st is not None and pred(st):
                return st
            time.sleep(0.1)
        return st

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001
            self.proc.kill()


# With a real HAProxy, marked `once` (release pass of `make test` only): the
# agent exchanges it makes are the ones the socket tests above make too.
@pytest.fixture
def haproxy(agent, tmp_path):
    import os
    if not os.path.exists(HAPROXY):
        pytest.skip("haproxy is not installed")
    h = Haproxy(tmp_path, agent.agent_port, agent.port)
    yield h
    h.close()


def is_ready_up(st):
    return st[0] == 2 and st[1] & (1 | 8) == 0


@pytest.mark.once
def test_real_haproxy_follows_online_drain_offline(agent, haproxy):
    assert is_ready_up(haproxy.wait_state(is_ready_up)), haproxy.state()
    agent.set_status({"zope1": {"status": "drain"}})
    st = haproxy.wait_state(lambda s: s[1] & 8)
    assert st[1] & 8, st  # DRAIN
    agent.set_status({"zope1": {"status": "offline"}})
    st = haproxy.wait_state(lambda s: s[1] & 1)
    assert st[1] & 1, st  # MAINT
    agent.set_status({"zope1": {"status": "online"}})
    st = haproxy.wait_state(is_ready_up)
    assert is_ready_up(st), st  # MAINT is left: HAProxy keeps asking the agent


@pytest.mark.once
def test_real_haproxy_is_observed_and_wait_drained_returns(agent, haproxy, cm_bin):
    import os
    import subprocess
    assert is_ready_up(haproxy.wait_state(is_ready_up))
    agent.set_status({"zope1": {"status": "offline"}})
    env = dict(os.environ, CLUSTERMGMT_URL=agent.url, CLUSTERMGMT_USER="admin",
               CLUSTERMGMT_PASSWORD=agent.password)
    t0 = time.monotonic()
    r = subprocess.run([cm_bin, "wait", "zope1", "--drained", "--timeout", "20"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # in MAINT HAProxy stops its HTTP checks; wait must not sit out the window
    assert time.monotonic() - t0 < 10
    assert haproxy.state()[1] & 1
    node = agent.get("/v1/clusters/default/nodes/zope1", auth=agent.as_admin).json()["node"]
    assert {p["protocol"] for p in node["probes"]} == {"http", "agent"}, node["probes"]
    agent.set_status({"zope1": {"status": "online"}})
    r = subprocess.run([cm_bin, "wait", "zope1", "--serving", "--timeout", "20"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert is_ready_up(haproxy.state())
