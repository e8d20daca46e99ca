"""
HAProxy agent-check (PRODUCT.md §8): `serve --agent-listen ADDR:PORT`;
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
    port = free_port()
    d = make_daemon(["--agent-listen", "127.0.0.1:%d" % port])
    d.agent_port = port
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
    r = agent.post("/v1/clusters", auth=agent.admin, json={"name": "shop", "path": "/shophealth"})
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
        assert time.monotonic() - t0 < 1.0
    finally:
        stalled.close()


def test_agent_unknown_node_answers_and_daemon_survives(agent):
    reply = ask(agent.agent_port, "ghost")
    assert not words(reply) & {"ready", "up"}, reply
    assert agent.alive()
