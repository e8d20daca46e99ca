"""
A Debian 12 booted with systemd, in a container, for the tests that need a
real systemd as PID 1 (test_systemd_boot.py, test_systemd_dropin.py).

  root()          build/nspawn-root: a Debian 12 made once with
                  `debootstrap --variant=minbase --include=PACKAGES bookworm`
                  from the mirror /etc/apt/sources.list names, and reused
                  while its stamp names the same packages (a lock
                  serialises pytest workers; it is built under a
                  temporary name and renamed when complete).
  cache_package_dependencies(deb)
                  downloads into the root's apt cache what `apt install
                  DEB` would fetch, so that the container, which has no
                  route out, installs it as a new user would.
  Machine(root, directory, name, netns=None, binds=())
                  a copy-on-write view of the root (overlayfs, its upper
                  layer under directory), booted with
                  `systemd-nspawn --boot --register=no --keep-unit` in a
                  network namespace of its own (or the named one from
                  `ip netns add`).
      .write(path, text)      a file in the container (before or after boot)
      .boot(timeout)          waits until `systemctl is-system-running`
                              says running or degraded
      .run(command, timeout)  a shell command inside every namespace of
                              the container (nsenter into its PID 1):
                              CompletedProcess
      .close()                SIGTERM to systemd-nspawn (the container
                              powers off), SIGKILL after a bounded wait,
                              then the overlay is unmounted
  unavailable()   why no container can boot here, or None.

Why those nspawn options: this machine's PID 1 is not systemd, so there is
no system bus and no systemd-machined. Without --register=no nspawn asks
machined to register the machine; without --keep-unit it asks systemd for a
transient scope ("Failed to open system bus: No such file or directory").
With both it runs the container in its own cgroup, and the container's
systemd boots. `machinectl shell` and `systemd-run -M` need machined too,
so commands enter the container with nsenter instead.

Every wait here is bounded; every process is stopped by its process id.
"""

import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ROOT = REPO / "build" / "nspawn-root"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# systemd and what a new user's Debian 12 has for the tests to drive it:
# curl for probes and the drop-in's hooks, python3 for the drain test's
# application, iproute2 and procps to look around when a test fails.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "curl", "ca-certificates", "iproute2", "procps",
            "python3", "apt-utils")
STAMP = ".clustermgmt-nspawn-root"
BUILD_TIMEOUT = 1200
BOOT_TIMEOUT = 90
STOP_TIMEOUT = 30


def run(argv, timeout, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def unavailable():
    """None when a container can be booted here, else why not."""
    if os.geteuid() != 0:
        return "systemd-nspawn needs root"
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if shutil.which(tool) is None:
            return "%s is not installed (Makefile TEST_PKGS lists its package)" % tool
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            return "the kernel has no overlayfs"
    return None


def mirror():
    """The Debian mirror the machine's own apt uses for the main archive."""
    texts = []
    for path in [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*")):
        try:
            texts.append(path.read_text())
        except OSError:
            pass
    for text in texts:
        for m in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+%s\s" % SUITE, text, re.M):
            return m.group(1)
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
    return DEFAULT_MIRROR


class RootLock:
    """An exclusive lock on the root, across processes (pytest workers)."""

    def __enter__(self):
        ROOT.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(str(ROOT) + ".lock", "w")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def in_root(root, command, timeout, network=True, binds=()):
    """A shell command in the root as in a chroot (not booted), through
    systemd-nspawn, which mounts /proc, /dev and /run for it."""
    argv = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--pipe",
            "-D", str(root), "--setenv=DEBIAN_FRONTEND=noninteractive"]
    if not network:
        argv.append("--private-network")
    argv += ["--bind-ro=%s:%s" % pair for pair in binds]
    return run(argv + ["/bin/sh", "-ec", command], timeout, stdin=subprocess.DEVNULL)


def root():
    """build/nspawn-root, made when absent or made with other packages."""
    stamp_text = "%s %s\n" % (SUITE, ",".join(PACKAGES))
    with RootLock():
        stamp = ROOT / STAMP
        if stamp.exists() and stamp.read_text() == stamp_text:
            return ROOT
        partial = Path(str(ROOT) + ".partial")
        for old in (partial, ROOT):
            if old.exists():
                shutil.rmtree(old)
        out = run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
                   SUITE, str(partial), mirror()], BUILD_TIMEOUT)
        if out.returncode != 0:
            raise RuntimeError("debootstrap failed (%d): %s" % (
                out.returncode, (out.stdout + out.stderr)[-3000:]))
        # apt's package lists, so that `apt install ./x.deb` resolves its
        # dependencies; no timers that would wake apt inside the tests.
        (partial / "etc" / "resolv.conf").unlink(missing_ok=True)
        shutil.copy("/etc/resolv.conf", partial / "etc" / "resolv.conf")
        out = in_root(partial, "apt-get update -q; "
                      "systemctl mask apt-daily.timer apt-daily-upgrade.timer "
                      "e2scrub_all.timer dpkg-db-backup.timer", 600)
        if out.returncode != 0:
            raise RuntimeError("preparing the root failed: " + (out.stdout + out.stderr)[-3000:])
        (partial / STAMP).write_text(stamp_text)
        partial.rename(ROOT)
    return ROOT


def cache_package_dependencies(deb):
    """Downloads into the root's apt cache the packages `apt install DEB`
    needs (nothing when they are there already)."""
    deb = Path(deb).resolve()
    depends = run(["dpkg-deb", "-f", str(deb), "Depends"], 30).stdout
    stamp = ROOT / (STAMP + "-depends")
    with RootLock():
        # Containers may be running on the root (their overlay's lower
        # layer): leave it untouched unless the dependencies changed.
        if stamp.exists() and stamp.read_text() == depends:
            return
        out = in_root(ROOT, "apt-get install -q -y --download-only /mnt/deb/" + deb.name, 600,
                      binds=[(str(deb.parent), "/mnt/deb")])
        if out.returncode != 0:
            # old lists (a newer package on the mirror): refresh, once
            out = in_root(ROOT, "apt-get update -q && apt-get install -q -y --download-only "
                          "/mnt/deb/" + deb.name, 600, binds=[(str(deb.parent), "/mnt/deb")])
        if out.returncode != 0:
            raise RuntimeError("downloading the package's dependencies failed: "
                               + (out.stdout + out.stderr)[-3000:])
        stamp.write_text(depends)


def descendants(pid):
    """Process ids below pid, breadth first."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def is_namespace_init(pid):
    """Is pid the PID 1 of a PID namespace below ours?"""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("NSpid:"):
                    ids = line.split()[1:]
                    return len(ids) > 1 and ids[-1] == "1"
    except OSError:
        pass
    return False


class Machine:
    def __init__(self, root_dir, directory, name, netns=None, binds=(), hostname=None):
        self.root_dir = Path(root_dir)
        self.dir = Path(directory)
        self.name = name
        self.hostname = hostname or name
        self.netns = netns
        self.binds = list(binds)
        self.proc = None
        self.leader = None
        self.log_path = self.dir / "console.log"
        self.merged = self.dir / "merged"
        for d in ("upper", "work", "merged"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        out = run(["mount", "-t", "overlay", "overlay", "-o",
                   "lowerdir=%s,upperdir=%s,workdir=%s" % (self.root_dir, self.dir / "upper",
                                                           self.dir / "work"),
                   str(self.merged)], 30)
        if out.returncode != 0:
            raise RuntimeError("mounting the overlay failed: " + out.stderr)
        self.mounted = True

    def write(self, path, text, mode=0o644):
        target = self.merged / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        os.chmod(target, mode)

    def read(self, path):
        return (self.merged / path.lstrip("/")).read_text()

    def console(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def boot(self, timeout=BOOT_TIMEOUT):
        # the container's systemd sets the host name from /etc/hostname
        # (debootstrap copied this machine's), not from --hostname
        self.write("/etc/hostname", self.hostname + "\n")
        argv = ["systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--quiet",
                "--console=read-only", "-D", str(self.merged), "--machine=" + self.name,
                "--hostname=" + self.hostname]
        if self.netns is None:
            argv.append("--private-network")
        else:
            argv.append("--network-namespace-path=/run/netns/" + self.netns)
        argv += ["--bind-ro=%s:%s" % pair for pair in self.binds]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.leader is None:
            if self.proc.poll() is not None:
                raise RuntimeError("systemd-nspawn exited with %d before the container booted:\n%s"
                                   % (self.proc.returncode, self.console()[-3000:]))
            if time.monotonic() > deadline:
                raise RuntimeError("no container PID 1 after %d s:\n%s" % (timeout, self.console()[-3000:]))
            self.leader = next((p for p in descendants(self.proc.pid) if is_namespace_init(p)), None)
            time.sleep(0.1)
        state = ""
        while time.monotonic() < deadline:
            out = self.run("systemctl is-system-running", timeout=10, check=False)
            state = out.stdout.strip()
            if state in ("running", "degraded"):
                return state
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise RuntimeError("the container's systemd is %r after %d s:\n%s" % (
            state, timeout, self.console()[-3000:]))

    def run(self, command, timeout=60, check=True):
        """command (a shell command line) as root inside the container."""
        assert self.leader is not None, "the container is not booted"
        argv = ["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w",
                "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
                "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "DEBIAN_FRONTEND=noninteractive",
                "/bin/sh", "-c", command]
        out = run(argv, timeout, stdin=subprocess.DEVNULL)
        if check and out.returncode != 0:
            raise AssertionError("in the container, `%s` exited %d:\n%s%s" % (
                command, out.returncode, out.stdout[-3000:], out.stderr[-3000:]))
        return out

    def close(self):
        """Powers the container off (bounded) and unmounts its overlay;
        returns a problem description or None."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to halt
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append("the container did not power off within %d s" % STOP_TIMEOUT)
                for pid in [self.leader, self.proc.pid]:
                    if pid is not None:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                self.proc.wait(timeout=STOP_TIMEOUT)
        if self.mounted:
            out = run(["umount", str(self.merged)], 30)
            if out.returncode != 0:
                problems.append("umount: " + out.stderr.strip())
                run(["umount", "-l", str(self.merged)], 30)
            self.mounted = False
        return "; ".join(problems) or None


def quote(text):
    return shlex.quote(text)
