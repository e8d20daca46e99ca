"""
What the helper scripts that tests run inside a namespace of their own
(unshare --net, unshare -m) share: starting a process and waiting for
it, and stopping what they started, by pid, each wait bounded. They
import it with tests/e2e on sys.path ($E2E).
"""

import subprocess
import time

import requests


def start_daemon(argv, log_path, health_url, env=None, timeout=30):
    """Starts argv (a clustermgmt serve) logging to log_path and waits
    until health_url answers 200. Returns the process."""
    log = open(log_path, "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "the daemon exited: %s" % open(log_path).read()[-2000:]
        try:
            if requests.get(health_url, timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "the daemon did not start"
        time.sleep(0.1)


def stop(proc):
    """Stops proc (SIGTERM, then SIGKILL after 10 s); its exit status."""
    proc.terminate()
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)
