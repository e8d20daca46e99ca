"""
The Debian package on a Debian 12 booted with systemd (issue 18 point 9):
the package built by `make deb`, installed with `apt install ./FILE.deb` as
a new user would, in a container (nspawn.py) whose PID 1 is systemd.

  * installed, the service is enabled and started, answers a probe, and the
    journal holds the generated admin password, as README says;
  * a broken option (exit 2) or a broken certificate (exit 78) ends the unit
    in `failed`, not restarted, with the daemon's reason in
    `systemctl status`;
  * a good configuration after a broken one starts again;
  * `apt-get purge` keeps /var/lib/clustermgmt and says so.

The container has a network namespace of its own: the daemon inside listens
on the container's loopback. The first run builds build/nspawn-root with
debootstrap (a few minutes); later runs reuse it.
"""

import fcntl
import hashlib
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import nspawn
from conftest import REPO

pytestmark = pytest.mark.once

VERSION = re.search(r"version : '([^']+)'", (REPO / "meson.build").read_text()).group(1)
GOOD_OPTS = 'CLUSTERMGMT_OPTS="--listen 127.0.0.1:8080"\n'
# systemd's RestartSec= is 2 s: a unit that would be restarted is
# "activating (auto-restart)" again well within this.
RESTART_WINDOW_S = 5


def build_deb():
    """build-deb/clustermgmt_VERSION_amd64.deb, made by `make deb` unless
    one newer than every source file is there (the lock is the one
    test_packaging.py takes, so one run builds it once)."""
    deb_dir = REPO / "build-deb"
    deb = deb_dir / ("clustermgmt_%s_amd64.deb" % VERSION)
    sources = subprocess.run(["git", "-C", str(REPO), "ls-files", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, text=True,
                             timeout=30).stdout.split()
    newest = max((REPO / f).stat().st_mtime for f in sources if (REPO / f).exists())
    lock_path = Path(tempfile.gettempdir()) / (
        "clustermgmt-deb-%s.lock" % hashlib.sha1(str(REPO).encode()).hexdigest()[:12])
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not deb.exists() or deb.stat().st_mtime < newest:
            out = subprocess.run(["make", "-C", str(REPO), "deb", "DEB=%s" % deb_dir],
                                 capture_output=True, text=True, timeout=900,
                                 env=dict(os.environ, DEB_BUILD_OPTIONS="nocheck"))
            assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert deb.exists()
    return deb


@pytest.fixture(scope="module")
def deb():
    reason = nspawn.unavailable()
    if reason:
        pytest.fail("cannot boot a container: " + reason)
    deb = build_deb()
    nspawn.root()
    nspawn.cache_package_dependencies(deb)
    return deb


def boot_with_package(deb, directory, name):
    """A booted container with the package installed by apt (the
    container has no route out: apt takes the dependencies from the
    cache cache_package_dependencies filled)."""
    machine = nspawn.Machine(nspawn.ROOT, directory, name,
                             binds=[(str(deb.parent), "/mnt/deb")])
    try:
        machine.boot()
        out = machine.run("cp /mnt/deb/%s /root/ && cd /root && apt-get install -y ./%s"
                          % (deb.name, deb.name), timeout=300)
        machine.install_output = out.stdout + out.stderr
        return machine
    except BaseException:
        machine.close()
        raise


@pytest.fixture(scope="module")
def machine(deb, tmp_path_factory):
    m = boot_with_package(deb, tmp_path_factory.mktemp("nspawn"), "cmboot%d" % os.getpid())
    yield m
    problem = m.close()
    assert problem is None, problem


def unit_state(machine):
    """(ActiveState, SubState, Result, NRestarts, ExecMainStatus)."""
    out = machine.run("systemctl show clustermgmt -p ActiveState -p SubState -p Result "
                      "-p NRestarts -p ExecMainStatus")
    props = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return (props.get("ActiveState"), props.get("SubState"), props.get("Result"),
            props.get("NRestarts"), props.get("ExecMainStatus"))


def wait_for_state(machine, wanted, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        state = unit_state(machine)
        if state[0] in wanted:
            return state
        if time.monotonic() > deadline:
            raise AssertionError("clustermgmt.service is %r after %d s, not %s:\n%s" % (
                state, timeout, wanted, status_text(machine)))
        time.sleep(0.2)


def status_text(machine):
    return machine.run("systemctl status --no-pager --full clustermgmt", check=False).stdout


def unit_journal(machine):
    """Every line of the unit's journal since boot, systemd's and the
    daemon's, with times to the microsecond."""
    return machine.run("journalctl -u clustermgmt --no-pager -o short-precise",
                       check=False).stdout[-8000:]


def configure(machine, opts_line):
    machine.run("printf '%%s' %s > /etc/default/clustermgmt" % nspawn.quote(opts_line))


def restart(machine):
    """systemctl restart, which fails (and says so) when the start does."""
    machine.run("systemctl reset-failed clustermgmt 2>/dev/null; true")
    return machine.run("systemctl restart clustermgmt", timeout=60, check=False)


def probe(machine, path):
    return machine.run("curl -sS -o /dev/stdout -w ' %%{http_code}' 'http://127.0.0.1:8080%s'"
                       % path, timeout=20, check=False)


def generated_password(machine):
    log = machine.run("journalctl -u clustermgmt --no-pager -o cat").stdout
    m = re.search(r'password="?([^"\s]+)', log)
    assert m, "no generated admin password in the journal:\n" + log[-3000:]
    return m.group(1)


def assert_running_steadily(machine):
    """The unit is active and was never restarted by systemd since the
    last manual start: a failure a test leaves behind is named as such,
    not counted against the next test's broken start."""
    state = wait_for_state(machine, ("active",), timeout=30)
    assert state[3] == "0", "the running daemon was restarted %s times:\n%s\n%s" % (
        state[3], status_text(machine), unit_journal(machine))


def assert_failed_with_reason(machine, exit_status, reason):
    """The unit ends in failed (not auto-restart), is not restarted, and
    `systemctl status` names the exit status and shows the reason."""
    state = wait_for_state(machine, ("failed",), timeout=30)
    time.sleep(RESTART_WINDOW_S)
    state = unit_state(machine)
    assert state[0] == "failed", (state, status_text(machine))
    assert state[3] == "0", "restarted %s times:\n%s\nthe unit's journal:\n%s" % (
        state[3], status_text(machine), unit_journal(machine))
    assert state[4] == str(exit_status), (state, status_text(machine))
    status = status_text(machine)
    assert "Active: failed" in status, status
    assert "status=%d/" % exit_status in status, status
    assert reason in status, "the reason %r is not in systemctl status:\n%s" % (reason, status)


def test_apt_install_enables_and_starts_the_service_which_answers_a_probe(machine):
    assert "Setting up clustermgmt" in machine.install_output, machine.install_output
    assert machine.run("systemctl is-enabled clustermgmt").stdout.strip() == "enabled"
    wait_for_state(machine, ("active",))
    password = generated_password(machine)
    # a node, through the v1 API with the generated password, then its probe
    out = machine.run("curl -fsS -u admin:%s -X PUT -H 'Content-Type: application/json' "
                      "-d '{\"nodes\": [\"web1\"]}' http://127.0.0.1:8080/v1/clusters/default/nodes"
                      % nspawn.quote(password), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert probe(machine, "/health?node=web1").stdout == "OK 200"
    assert probe(machine, "/health?node=nosuch").stdout.endswith(" 404")
    assert machine.run("id -u clustermgmt", check=False).returncode == 0  # sysusers.d
    assert machine.run("stat -c %U /var/lib/clustermgmt/clustermgmt.db").stdout.strip() == \
        "clustermgmt"


def test_broken_option_ends_in_failed_with_the_reason(machine, cm_bin):
    bad = "--listen 127.0.0.1:8080 --no-such-option"
    # the reason is the daemon's own first line for that option
    local = subprocess.run([cm_bin, "serve"] + bad.split(), capture_output=True, text=True,
                           timeout=10)
    assert local.returncode == 2, local.stderr
    reason = local.stderr.splitlines()[0]
    assert_running_steadily(machine)
    configure(machine, 'CLUSTERMGMT_OPTS="%s"\n' % bad)
    try:
        out = restart(machine)
        assert out.returncode != 0, "systemctl restart succeeded with a broken option"
        assert_failed_with_reason(machine, 2, reason)
    finally:
        configure(machine, GOOD_OPTS)
        restart(machine)


def test_broken_certificate_ends_in_failed_with_the_reason(machine):
    machine.run("mkdir -p /etc/clustermgmt && printf 'not a certificate\\n' > "
                "/etc/clustermgmt/cert.pem && cp /etc/clustermgmt/cert.pem /etc/clustermgmt/key.pem"
                " && chmod 644 /etc/clustermgmt/*.pem")
    assert_running_steadily(machine)
    configure(machine, 'CLUSTERMGMT_OPTS="--listen 127.0.0.1:8080 --tls-cert '
                       '/etc/clustermgmt/cert.pem --tls-key /etc/clustermgmt/key.pem"\n')
    try:
        out = restart(machine)
        assert out.returncode != 0, "systemctl restart succeeded with a broken certificate"
        assert_failed_with_reason(machine, 78,
                                  "cannot load the TLS certificate /etc/clustermgmt/cert.pem")
    finally:
        configure(machine, GOOD_OPTS)
        restart(machine)


def test_good_configuration_after_a_failed_start_starts_and_answers(machine):
    configure(machine, 'CLUSTERMGMT_OPTS="--listen 127.0.0.1:8080 --bogus"\n')
    restart(machine)
    wait_for_state(machine, ("failed",))
    configure(machine, GOOD_OPTS)
    out = restart(machine)
    assert out.returncode == 0, out.stdout + out.stderr + status_text(machine)
    assert wait_for_state(machine, ("active",))[1] == "running"
    assert probe(machine, "/v1/health").stdout.endswith(" 200")
    assert "Active: active (running)" in status_text(machine)


def test_purge_keeps_the_state_directory_and_says_so(deb, tmp_path):
    machine = boot_with_package(deb, tmp_path, "cmpurge%d" % os.getpid())
    try:
        wait_for_state(machine, ("active",))
        out = machine.run("apt-get purge -y clustermgmt 2>&1", timeout=120)
        assert "kept /var/lib/clustermgmt" in out.stdout, out.stdout
        assert "rm -r /var/lib/clustermgmt" in out.stdout, out.stdout
        left = machine.run("ls -A /var/lib/clustermgmt").stdout.split()
        assert "clustermgmt.db" in left, left
        assert machine.run("test -e /usr/bin/clustermgmt", check=False).returncode != 0
        assert machine.run("test -e /etc/default/clustermgmt", check=False).returncode != 0
        assert machine.run("systemctl is-active clustermgmt", check=False).stdout.strip() != \
            "active"
    finally:
        problem = machine.close()
    assert problem is None, problem
