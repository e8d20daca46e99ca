"""
docs/INTEGRATIONS.md, tested as written (issue 17, point 3):

  - the Ansible play (the `uri` module, serial: 1) with the real
    ansible-core against the drain farm (real HAProxy and Varnish, named,
    with runtime access, steady traffic): every node is deployed (its
    application killed and started) with no failed client request, no
    request reaching a node after its drain was proven, none cut;
  - every shell curl line of the document, run by sh with the variables
    it names, `hostname` answering the node's name: they succeed where
    they should and fail (curl -f, exit 22) where the proof does not
    hold.

The Kubernetes and Nomad manifests around the curl lines are not run:
there is no Kubernetes or Nomad here.
"""

import os
import re
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import session_from
from drainfarm import NODES, Farm, Restarter, netns_available, requests_after_drain

DOC = Path(__file__).resolve().parents[2] / "docs" / "INTEGRATIONS.md"
PLAY_TIMEOUT = 300
CURL_TIMEOUT = 150


def section(title):
    text = DOC.read_text()
    start = text.index("\n## " + title + "\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def the_play():
    m = re.search(r"```yaml\n(- name: .*?)```", section("Ansible"), re.S)
    assert m, "no play in docs/INTEGRATIONS.md's Ansible section"
    return m.group(1)


def shell_curl_lines():
    """Every line of the document that is a shell curl command as written
    (in a code block, or an item of a YAML command list)."""
    lines = []
    for line in DOC.read_text().splitlines():
        text = line.strip()
        if text.startswith("- curl "):
            text = text[2:]
        if text.startswith("curl "):
            lines.append(text)
    return lines


@pytest.fixture(scope="module")
def farm(tmp_path_factory, cm_bin):
    if not netns_available():
        pytest.skip("needs network namespaces (root and iproute2): `ip netns add` failed")
    if shutil.which("ansible-playbook") is None:
        pytest.skip("needs ansible-core (Debian package ansible-core)")
    f = Farm(tmp_path_factory.mktemp("integrations"), cm_bin, layout="separate",
             register_lbs=True)
    try:
        f.start()
        yield f
    finally:
        problem = f.close()
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.mark.once
def test_ansible_play_deploys_one_node_at_a_time_losing_no_request(farm, tmp_path):
    play = tmp_path / "deploy.yml"
    play.write_text(the_play())
    inventory = tmp_path / "inventory"
    inventory.write_text("[web]\n" + "".join("%s ansible_connection=local\n" % n for n in NODES))
    restarter = Restarter(farm)
    env = dict(os.environ, ANSIBLE_HOME=str(tmp_path / "ansible"),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
               ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3", ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="0")
    try:
        t0 = wall0 = time.time()
        r = subprocess.run(
            ["ansible-playbook", "-i", str(inventory), str(play),
             "-e", "cm_url=" + farm.daemon.url, "-e", "cm_user=admin",
             "-e", "cm_password=" + farm.daemon.password, "-e", "cm_cluster=default",
             "-e", "deploy_command='%s'" % restarter.command().replace(
                 "{node}", "{{ inventory_hostname }}")],
            env=env, capture_output=True, text=True, timeout=PLAY_TIMEOUT)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        assert [c[0] for c in restarter.calls] == list(NODES), r.stdout[-3000:]
        time.sleep(1.5)  # the requests in flight at the end
        farm.assert_no_failures(t0)
        late = requests_after_drain(farm, restarter)
        assert not late, "requests reached a node after its drain was proven: %s" % late
        for node, killed_at, _ in restarter.calls:
            cut = [q for q in farm.apps[node].requests()
                   if q[1] is None and wall0 < q[0] < killed_at]
            assert not cut, "%s was killed with requests in flight: %s" % (node, cut)
        assert all(s == ("online", "deploy") or s[0] == "online"
                   for s in farm.daemon.node_states().values())
    finally:
        restarter.close()


class Prober:
    """A load balancer named lb1 probing one node of cluster web."""

    def __init__(self, d, node, ip):
        self.d, self.node, self.ip = d, node, ip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        s = session_from(self.ip)
        try:
            while not self._stop.is_set():
                try:
                    s.get(self.d.url + "/web?node=%s&lb=lb1" % self.node, timeout=2)
                except Exception:  # noqa: BLE001 - a load balancer keeps probing
                    pass
                self._stop.wait(0.1)
        finally:
            s.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


def run_line(line, env):
    return subprocess.run(["sh", "-c", line], env=env, capture_output=True, text=True,
                          timeout=CURL_TIMEOUT)


def test_every_curl_line_of_the_document_runs_as_written(daemon, tmp_path):
    node = "web-host-1"
    d = daemon
    r = d.post("/v1/clusters", auth=d.as_admin, json={"name": "web", "path": "/web"})
    assert r.status_code == 201, r.text
    d.set_nodes([node], cluster="web")
    r = d.put("/v1/clusters/web/lbs/lb1", auth=d.as_admin, json={"kind": "other"})
    assert r.status_code in (200, 201), r.text
    d.set_status({node: {"status": "drain"}}, cluster="web")
    operator = d.make_user("deployer", "operator")
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "hostname").write_text("#!/bin/sh\necho %s\n" % node)
    (shim / "hostname").chmod(stat.S_IRWXU)
    env = dict(os.environ, PATH="%s:%s" % (shim, os.environ["PATH"]), CM=d.url,
               CM_USER=operator[0], CM_PASSWORD=operator[1])
    lines = shell_curl_lines()
    drain = [x for x in lines if x.startswith("curl -fsS -X POST") and "/drain?" in x]
    serving = [x for x in lines if "/serving?" in x]
    online = [x for x in lines if "/status" in x and "online" in x]
    assert drain and serving and online, lines
    assert len(drain) + len(serving) + len(online) == len(lines), lines
    with Prober(d, node, "127.0.3.2"):
        for line in online:
            r = run_line(line, env)
            assert r.returncode == 0, (line, r.stderr)
            assert d.node_states("web")[node][0] == "online"
            # served: three serving answers from lb1 since the change
            deadline = time.monotonic() + 10
            for s in serving:
                while (r := run_line(s, env)).returncode != 0:
                    assert time.monotonic() < deadline, (s, r.stderr)
                    time.sleep(0.2)
        for line in drain:
            t0 = time.monotonic()
            r = run_line(line, env)
            assert r.returncode == 0, (line, r.stderr)
            assert d.node_states("web")[node][0] == "drain"
            assert '"drained":true' in r.stdout
            assert time.monotonic() - t0 >= 0.3  # lb1's failing answers, then the grace
            for s in serving:
                if "wait=0" in s:
                    r = run_line(s, env)
                    assert r.returncode == 22, (s, r.stdout, r.stderr)
            d.set_status({node: {"status": "online"}}, cluster="web")
