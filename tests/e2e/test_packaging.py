"""
Installing and running it like the daemons beside it (issue 11 points 2-5
and 7): the man pages (mandoc lint, every --help option documented and
nothing else), bash completion for every command and option, the systemd
unit (systemd-analyze verify and security), the alerting rules (promtool),
`make install` into a DESTDIR, and the Debian package (`make deb`,
lintian, and the unpacked binary's --version and a short serve).
"""

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import REPO, free_port

# Packaging, not memory safety: the release pass of make test is enough
# (the deb test runs the packaged binary, never the ASan one).
pytestmark = pytest.mark.once

VERSION = re.search(r"version : '([^']+)'", (REPO / "meson.build").read_text()).group(1)
COMMANDS = ["status", "offline", "online", "drain", "nodes", "cluster", "user", "token",
            "lbconfig", "lb", "wait", "rollout", "verify", "daemons", "store"]
OPTION = re.compile(r"(?<![\w-])--([a-z][a-z-]*[a-z])")
MAN_OPTION = re.compile(r"\bFl -([a-z][a-z-]*[a-z])")


def run(args, timeout=120, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def help_options(cm_bin, *words):
    out = run([cm_bin] + list(words) + ["--help"], timeout=10)
    assert out.returncode == 0, out.stderr
    return set(OPTION.findall(out.stdout))


def man_options(page):
    return set(MAN_OPTION.findall((REPO / "man" / page).read_text()))


# --- man pages -------------------------------------------------------------


@pytest.mark.parametrize("page", ["clustermgmt.1", "clustermgmt-serve.8"])
def test_man_page_is_mandoc_lint_clean(page):
    out = run(["mandoc", "-T", "lint", "-W", "warning", str(REPO / "man" / page)], timeout=10)
    assert out.returncode == 0, out.stdout + out.stderr


def test_client_man_page_documents_every_help_option_and_no_other(cm_bin):
    in_help = help_options(cm_bin)
    for command in COMMANDS:
        in_help |= help_options(cm_bin, command)
    in_man = man_options("clustermgmt.1")
    assert in_help - in_man == set(), "in --help, not in clustermgmt.1"
    assert in_man - in_help == set(), "in clustermgmt.1, not in any --help"


def test_serve_man_page_documents_every_help_option_and_no_other(cm_bin):
    in_help = help_options(cm_bin, "serve")
    in_man = man_options("clustermgmt-serve.8")
    assert in_help - in_man == set(), "in serve --help, not in clustermgmt-serve.8"
    assert in_man - in_help == set(), "in clustermgmt-serve.8, not in serve --help"


# --- bash completion -----------------------------------------------------------


def complete(*words):
    """What the completion offers for the command line words (the last
    one being completed)."""
    script = ('source "%s"; COMP_WORDS=(%s); COMP_CWORD=%d; _clustermgmt; '
              'printf "%%s\\n" "${COMPREPLY[@]}"') % (
        REPO / "dist" / "clustermgmt.bash-completion",
        " ".join("'%s'" % w for w in ("clustermgmt",) + words), len(words))
    out = run(["bash", "--norc", "-c", script], timeout=10)
    assert out.returncode == 0, out.stderr
    return set(w for w in out.stdout.split("\n") if w)


def test_completion_offers_every_command(cm_bin):
    out = run([cm_bin, "--help"], timeout=10).stdout
    listed = set(re.findall(r"^  ([a-z]+)\s", out, re.M))
    assert listed >= set(COMMANDS) | {"serve"}
    assert complete("") >= listed


def global_options(cm_bin):
    out = run([cm_bin, "--help"], timeout=10).stdout
    return set(OPTION.findall(out[out.index("Global options"):]))


def defined_options(cm_bin, command):
    """The options a command's --help defines: those of its usage lines
    and of the lines of its option table (other lines may mention other
    commands' options, e.g. "as wait --drained")."""
    text = run([cm_bin, command, "--help"], timeout=10).stdout
    usage, _, rest = text.partition("\n\n")
    defined = set(OPTION.findall(usage))
    for line in rest.splitlines():
        if re.match(r"^ {2,}--", line):  # the option table is indented
            defined |= set(OPTION.findall(line))
    return defined


@pytest.mark.parametrize("command", COMMANDS)
def test_completion_offers_exactly_the_options_of_each_command(cm_bin, command):
    offered = {o[2:] for o in complete(command, "--")}
    assert defined_options(cm_bin, command) - offered == set(), "not offered"
    documented = help_options(cm_bin, command) | global_options(cm_bin)
    assert offered - documented == set(), "offered but not in --help"
    assert global_options(cm_bin) <= offered


def test_completion_offers_exactly_the_serve_options(cm_bin):
    offered = {o[2:] for o in complete("serve", "--")}
    assert offered == help_options(cm_bin, "serve")


def test_completion_offers_subcommands_and_values():
    assert complete("nodes", "") == {"list", "set", "add", "rm"}
    assert complete("token", "") == {"create", "list", "revoke"}
    assert complete("lb", "") == {"list", "add", "rm"}
    assert complete("lb", "add", "x", "--kind", "") == {"haproxy", "varnish", "nginx", "other"}
    assert complete("lbconfig", "h") == {"haproxy"}
    assert complete("user", "add", "x", "--role", "") == {"viewer", "operator", "admin"}
    assert complete("serve", "--log-format", "") == {"logfmt", "json"}
    assert complete("nodes", "list", "") == set()  # one subcommand only


# --- systemd -----------------------------------------------------------------------


def unit_for(tmp_path, cm_bin):
    """The unit with bindir pointing at the binary under test, and the man
    pages where `man` finds them (verify checks Documentation=)."""
    text = (REPO / "dist" / "clustermgmt.service.in").read_text()
    unit = tmp_path / "clustermgmt.service"
    unit.write_text(text.replace("@bindir@", str(Path(cm_bin).parent))
                    .replace("@sysconfdir@", "/etc"))
    for section in ("1", "8"):
        (tmp_path / "man" / ("man" + section)).mkdir(parents=True)
    shutil.copy(REPO / "man" / "clustermgmt.1", tmp_path / "man" / "man1")
    shutil.copy(REPO / "man" / "clustermgmt-serve.8", tmp_path / "man" / "man8")
    return unit, dict(os.environ, MANPATH=str(tmp_path / "man"))


def test_systemd_unit_verifies_clean(tmp_path, cm_bin):
    unit, env = unit_for(tmp_path, cm_bin)
    out = run(["systemd-analyze", "verify", str(unit)], env=env, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr.strip() == "", out.stderr


def test_systemd_unit_exposure_is_at_most_2(tmp_path, cm_bin):
    unit, env = unit_for(tmp_path, cm_bin)
    out = run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
              env=env, timeout=60)
    m = re.search(r"Overall exposure level for clustermgmt.service: ([0-9.]+)", out.stdout)
    assert m, out.stdout + out.stderr
    print("systemd-analyze security: exposure %s" % m.group(1))
    assert float(m.group(1)) <= 2.0, out.stdout
    # the unit's own comment states what systemd-analyze measures
    text = (REPO / "dist" / "clustermgmt.service.in").read_text()
    assert "exposure of %s" % m.group(1) in text, m.group(1)


def test_systemd_unit_is_what_the_issue_asks():
    text = (REPO / "dist" / "clustermgmt.service.in").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
    assert settings["Type"] == "notify"
    assert settings["StateDirectory"] == "clustermgmt"
    assert settings["User"] == "clustermgmt"
    assert settings["EnvironmentFile"] == "-@sysconfdir@/default/clustermgmt"
    # configuration and usage errors end the unit in "failed" instead of
    # restarting it every 2 s; an ExecStartPre= would defeat that (systemd
    # applies RestartPreventExitStatus= to the main process only)
    assert settings["Restart"] == "on-failure"
    assert settings["RestartPreventExitStatus"].split() == ["2", "78"]
    assert "ExecStartPre" not in settings
    assert "$CLUSTERMGMT_OPTS" in settings["ExecStart"]
    assert "--listen" not in settings["ExecStart"]  # the default (loopback) or the env file
    assert settings["CapabilityBoundingSet"] == ""
    assert "127.0.0.1:8080" in (REPO / "dist" / "clustermgmt.default").read_text()
    sysusers = (REPO / "dist" / "clustermgmt.sysusers").read_text()
    assert re.search(r"^u clustermgmt ", sysusers, re.M)


# --- alerting rules --------------------------------------------------------------


def test_alert_rules_are_valid():
    out = run(["promtool", "check", "rules", str(REPO / "dist" / "clustermgmt.rules.yml")],
              timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_alert_rules_fire_when_they_should():
    out = run(["promtool", "test", "rules",
               str(REPO / "tests" / "prometheus" / "clustermgmt.rules.test.yml"),
               str(REPO / "tests" / "prometheus" / "clustermgmt.rules.day.test.yml")], timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


# --- make install ----------------------------------------------------------------------


INSTALLED = {
    "usr/bin/clustermgmt": 0o755,
    "usr/share/man/man1/clustermgmt.1": 0o644,
    "usr/share/man/man8/clustermgmt-serve.8": 0o644,
    "usr/lib/systemd/system/clustermgmt.service": 0o644,
    "usr/lib/sysusers.d/clustermgmt.conf": 0o644,
    "etc/default/clustermgmt": 0o644,
    "usr/share/bash-completion/completions/clustermgmt": 0o644,
    "usr/share/doc/clustermgmt/README.md": 0o644,
    "usr/share/doc/clustermgmt/METRICS.md": 0o644,
    "usr/share/doc/clustermgmt/examples/clustermgmt.rules.yml": 0o644,
}


def make_install(tmp_path, cm_bin, *args):
    """`make install` of the binary under test. `-o all`: install's
    prerequisite `all` (ninja) is not run, so that a source touched
    since the build does not relink the binary that the other workers'
    tests are running meanwhile (they then fail with EACCES)."""
    dest = tmp_path / "dest"
    out = run(["make", "-C", str(REPO), "-o", "all", "install",
               "BUILD=" + str(Path(cm_bin).parent), "DESTDIR=" + str(dest)] + list(args),
              timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return dest


def test_make_install_into_destdir(tmp_path, cm_bin):
    dest = make_install(tmp_path, cm_bin, "PREFIX=/usr")
    files = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    assert set(INSTALLED) <= files, sorted(files)
    for path, mode in INSTALLED.items():
        assert (dest / path).stat().st_mode & 0o777 == mode, path
    unit = (dest / "usr/lib/systemd/system/clustermgmt.service").read_text()
    assert "ExecStart=/usr/bin/clustermgmt serve " in unit
    assert "EnvironmentFile=-/etc/default/clustermgmt" in unit
    assert not re.search(r"@[a-z]+@", unit)  # every placeholder substituted
    out = run([str(dest / "usr/bin/clustermgmt"), "--version"], timeout=10)
    assert out.stdout.strip() == "clustermgmt " + VERSION
    for doc in ("API.md", "ARCHITECTURE.md", "CLI.md", "LOADBALANCERS.md", "UI.md"):
        assert (dest / "usr/share/doc/clustermgmt" / doc).is_file()


def test_make_install_follows_prefix(tmp_path, cm_bin):
    dest = make_install(tmp_path, cm_bin, "PREFIX=/opt/cm", "mandir=/opt/man")
    assert (dest / "opt/cm/bin/clustermgmt").is_file()
    assert (dest / "opt/man/man8/clustermgmt-serve.8").is_file()
    assert (dest / "opt/cm/etc/default/clustermgmt").is_file()  # GNU: $(prefix)/etc
    unit = (dest / "opt/cm/lib/systemd/system/clustermgmt.service").read_text()
    assert "ExecStart=/opt/cm/bin/clustermgmt serve " in unit
    assert "EnvironmentFile=-/opt/cm/etc/default/clustermgmt" in unit
    assert not (dest / "usr").exists()


# --- the Debian package --------------------------------------------------------------------


@pytest.fixture(scope="session")
def deb_file():
    """build-deb/clustermgmt_VERSION_amd64.deb, built by `make deb` unless
    one newer than every source file is there already (one build per run,
    whatever the number of pytest workers: a lock file serialises them)."""
    deb_dir = REPO / "build-deb"
    deb = deb_dir / ("clustermgmt_%s_amd64.deb" % VERSION)
    sources = run(["git", "-C", str(REPO), "ls-files", "--cached", "--others",
                   "--exclude-standard"], timeout=30).stdout.split()
    newest = max((REPO / f).stat().st_mtime for f in sources if (REPO / f).exists())
    lock_path = Path(tempfile.gettempdir()) / (
        "clustermgmt-deb-%s.lock" % hashlib.sha1(str(REPO).encode()).hexdigest()[:12])
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not deb.exists() or deb.stat().st_mtime < newest:
            # DEB= given as a path on the command line, as an operator would:
            # the package's own make runs must not inherit it (their clean
            # would delete the directory the package is written to)
            out = run(["make", "-C", str(REPO), "deb", "DEB=%s" % deb_dir], timeout=900,
                      env=dict(os.environ, DEB_BUILD_OPTIONS="nocheck"))
            assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert deb.exists()
    return deb


def test_deb_has_the_files_and_dependencies(deb_file, tmp_path):
    listing = run(["dpkg-deb", "-c", str(deb_file)], timeout=30).stdout
    for path in ("./usr/bin/clustermgmt", "./lib/systemd/system/clustermgmt.service",
                 "./usr/lib/sysusers.d/clustermgmt.conf", "./etc/default/clustermgmt",
                 "./usr/share/man/man1/clustermgmt.1.gz",
                 "./usr/share/man/man8/clustermgmt-serve.8.gz",
                 "./usr/share/bash-completion/completions/clustermgmt"):
        assert path in listing, listing
    depends = run(["dpkg-deb", "-f", str(deb_file), "Depends"], timeout=30).stdout
    for lib in ("libh2o-evloop", "libjansson4", "libsodium23", "libsqlite3-0", "libcurl4"):
        assert lib in depends, depends  # from shlibs
    control = run(["dpkg-deb", "-e", str(deb_file), str(tmp_path / "control")], timeout=30)
    assert control.returncode == 0
    conffiles = (tmp_path / "control" / "conffiles").read_text().split()
    assert "/etc/default/clustermgmt" in conffiles
    # purge keeps the database and says so (never deleted silently)
    postrm = (tmp_path / "control" / "postrm").read_text()
    assert "kept /var/lib/clustermgmt" in postrm and "rm -r /var/lib/clustermgmt" in postrm
    assert run(["sh", "-n", str(tmp_path / "control" / "postrm")], timeout=10).returncode == 0
    postinst = (tmp_path / "control" / "postinst").read_text()
    assert "systemd-sysusers" in postinst and "clustermgmt.conf" in postinst
    assert "deb-systemd-helper" in postinst and "clustermgmt.service" in postinst


def run_postrm(deb_file, tmp_path, action, with_store=True):
    """The package's postrm run with `action` in a private mount namespace
    whose /var/lib is an empty tmpfs (holding a store when with_store), so
    the machine's own /var/lib is not touched: (stderr, files left)."""
    control = tmp_path / "postrm-control"
    assert run(["dpkg-deb", "-e", str(deb_file), str(control)], timeout=30).returncode == 0
    script = ("mount -t tmpfs tmpfs /var/lib && %s sh %s %s && ls -A /var/lib/clustermgmt"
              % ("mkdir /var/lib/clustermgmt && touch /var/lib/clustermgmt/clustermgmt.db "
                 "/var/lib/clustermgmt/clustermgmt.db.lock &&" if with_store else "",
                 control / "postrm", action))
    out = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
              timeout=30)
    if "unshare failed" in out.stderr or "Operation not permitted" in out.stderr:
        pytest.skip("no mount namespace here: " + out.stderr)
    return out.stderr, out.stdout.split()


def test_deb_purge_keeps_the_store_and_says_how_to_remove_it(deb_file, tmp_path):
    err, left = run_postrm(deb_file, tmp_path, "purge")
    assert left == ["clustermgmt.db", "clustermgmt.db.lock"]
    assert "kept /var/lib/clustermgmt" in err, err
    assert "rm -r /var/lib/clustermgmt" in err, err


def test_deb_remove_keeps_the_store_quietly(deb_file, tmp_path):
    err, left = run_postrm(deb_file, tmp_path, "remove")
    assert left == ["clustermgmt.db", "clustermgmt.db.lock"]
    assert "kept" not in err, err


def test_deb_purge_without_a_store_says_nothing_of_one(deb_file, tmp_path):
    err, _ = run_postrm(deb_file, tmp_path, "purge", with_store=False)
    assert "kept" not in err, err


def test_deb_is_lintian_clean(deb_file):
    out = run(["lintian", "--fail-on", "error", "--suppress-tags-from-file",
               str(REPO / "debian" / "lintian-accepted"), str(deb_file)], timeout=300)
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not re.search(r"^E: ", out.stdout, re.M), out.stdout


def test_deb_binary_runs_version_and_serve(deb_file, tmp_path):
    root = tmp_path / "root"
    out = run(["dpkg-deb", "-x", str(deb_file), str(root)], timeout=60)
    assert out.returncode == 0, out.stderr
    binary = root / "usr" / "bin" / "clustermgmt"
    out = run([str(binary), "--version"], timeout=10)
    assert out.stdout.strip() == "clustermgmt " + VERSION
    port = free_port()
    (tmp_path / "pw").write_text("package-test-password")
    with open(tmp_path / "log", "w") as log:
        proc = subprocess.Popen([str(binary), "serve", "--listen", "127.0.0.1:%d" % port,
                                 "--db", str(tmp_path / "cm.db"), "--demo",
                                 "--admin-password-file", str(tmp_path / "pw")],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        answer = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = requests.get("http://127.0.0.1:%d/health?node=node1" % port, timeout=5)
                break
            except (requests.ConnectionError, requests.Timeout):  # a stall outlasts 2 s
                time.sleep(0.05)
        assert answer is not None, (tmp_path / "log").read_text()
        assert (answer.status_code, answer.text) == (200, "OK")
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
    assert rc == 0, (tmp_path / "log").read_text()


def test_make_uninstall_keeps_only_the_settings(tmp_path, cm_bin):
    dest = make_install(tmp_path, cm_bin, "PREFIX=/usr")
    out = run(["make", "-C", str(REPO), "uninstall", "PREFIX=/usr", "DESTDIR=" + str(dest)],
              timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    left = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    assert left == {"etc/default/clustermgmt"}
