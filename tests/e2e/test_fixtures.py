"""
The fixtures' own promises (conftest.py, lbharness.py): a server whose
port was taken between its pick and its bind starts again on another port,
and a new daemon's store comes from the template (no argon2id at start).
Each test hands the fixture a port that is already taken, as another
test's server would have taken it.
"""

import shutil
import socket

import pytest

import conftest
import lbharness


@pytest.fixture
def taken():
    """A loopback port held by a listening socket for the test's duration."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", conftest.free_port()))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


def first_taken(monkeypatch, module, port):
    """Makes module.free_port() return port once, then free ports."""
    real = conftest.free_port
    ports = [port]
    monkeypatch.setattr(module, "free_port", lambda *a: ports.pop() if ports else real(*a))


def test_daemon_starts_again_on_another_port_when_its_port_was_taken(
        tmp_path, cm_bin, taken, monkeypatch):
    first_taken(monkeypatch, conftest, taken)
    d = conftest.Daemon(tmp_path / "d", bin_path=cm_bin, start=False)
    try:
        assert d.port == taken
        d.start()
        assert d.port != taken and d.alive()
        assert "cannot listen on 127.0.0.1:%d" % taken in d.log_text()
    finally:
        assert d.close() is None


def test_daemon_starts_again_when_its_agent_port_was_taken(tmp_path, cm_bin, taken):
    d = conftest.Daemon(tmp_path / "d", bin_path=cm_bin, start=False, agent=True)
    d.agent_port = taken  # as if free_port() had picked it
    try:
        d.start()
        assert d.agent_port != taken and d.alive()
        with socket.create_connection(("127.0.0.1", d.agent_port), timeout=5) as s:
            s.sendall(b"ghost\n")
            assert s.recv(1024).startswith(b"down #")
    finally:
        assert d.close() is None


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_starts_again_on_another_port_when_its_port_was_taken(tmp_path, taken, monkeypatch):
    first_taken(monkeypatch, lbharness, taken)
    app = lbharness.start_on_free_port(
        lambda port: lbharness.AppNode("app1", tmp_path / ("app-%d" % port), port, 9))
    try:
        assert app.port != taken and app.ready()
    finally:
        app.stop()


def test_new_daemon_store_is_a_copy_of_the_template(make_daemon):
    d = make_daemon()
    assert d.admin_token is not None
    # the template's admin, with the template's password, and its token
    tokens = d.get("/v1/tokens", auth=d.admin).json()["tokens"]
    assert [t["description"] for t in tokens] == [conftest.HELPER_TOKEN_DESCRIPTION]
    assert tokens[0]["id"] == d.helper_token_id
    assert d.get("/v1/users", auth=d.admin_token).status_code == 200
    empty = make_daemon(template=False)
    assert empty.admin_token is None
    assert empty.get("/v1/users", auth=empty.admin).status_code == 200
