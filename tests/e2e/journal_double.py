"""
A journald double: the daemon runs in a mount namespace of its own whose
/run/systemd/journal/socket is a datagram socket of the test's, so what
libsystemd's sd_journal_send sends there is exactly what journald would
get (journald's native protocol, parsed here field by field).

  JournalDouble(tmp_path, cm_bin, monkeypatch) binds the socket, writes
  the wrapper (.bin, for make_daemon(bin_path=...)) and sets
  $JOURNAL_STREAM as systemd does; .wait_for(pred) reads entries until
  one matches (bounded); .entries holds every entry read; .close().

Needs root and unshare (skip with `needs_journal_double`).
"""

import os
import queue
import shutil
import socket
import threading
import time

import pytest

JOURNAL_WRAPPER = """#!/bin/sh
# Runs clustermgmt in a mount namespace of its own whose
# /run/systemd/journal/socket is the test's datagram socket: what
# libsystemd's sd_journal_send sends there is what journald would get.
exec unshare -m /bin/sh -c 'mount -t tmpfs -o size=1m tmpfs /run/systemd &&
  mkdir /run/systemd/journal &&
  ln -s "$CM_TEST_JOURNAL_SOCKET" /run/systemd/journal/socket &&
  exec "$0" "$@"' %s "$@"
"""

needs_journal_double = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare for a mount namespace")


def parse_journal_datagram(data):
    """journald's native protocol: KEY=VALUE lines, or KEY, a 64-bit
    little-endian length, the value and a newline."""
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            fields[k.decode()] = v.decode()
            i = nl + 1
        else:
            n = int.from_bytes(data[nl + 1:nl + 9], "little")
            fields[line.decode()] = data[nl + 9:nl + 9 + n].decode()
            i = nl + 9 + n + 1
    return fields


class JournalDouble:
    """The socket is read all along by a thread of its own: the kernel
    queues only a few datagrams (net.unix.max_dgram_qlen), and a daemon
    sending to a full queue waits, as it would for a journald behind."""

    def __init__(self, tmp_path, cm_bin, monkeypatch):
        path = str(tmp_path / "journal.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        wrapper = tmp_path / "clustermgmt-in-ns"
        wrapper.write_text(JOURNAL_WRAPPER % cm_bin)
        wrapper.chmod(0o755)
        self.bin = str(wrapper)
        self.entries = []  # every entry handed out by read or wait_for
        self._queue = queue.Queue()
        self._stopping = threading.Event()
        self._reader = threading.Thread(target=self._read_all, daemon=True)
        self._reader.start()
        monkeypatch.setenv("CM_TEST_JOURNAL_SOCKET", path)
        monkeypatch.setenv("JOURNAL_STREAM", "8:12345")  # as systemd sets it

    def _read_all(self):
        while not self._stopping.is_set():
            try:
                self._queue.put(parse_journal_datagram(self.sock.recv(1 << 20)))
            except socket.timeout:
                continue
            except OSError:
                return

    def _next(self, deadline):
        try:
            e = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        self.entries.append(e)
        return e

    def read(self, seconds):
        """The entries that arrive within seconds (and before)."""
        got, deadline = [], time.monotonic() + seconds
        while (e := self._next(deadline)) is not None:
            got.append(e)
        return got

    def wait_for(self, pred, timeout=10):
        """The first entry (handed out before, or arriving now) for which
        pred is true."""
        for e in self.entries:
            if pred(e):
                return e
        deadline = time.monotonic() + timeout
        while (e := self._next(deadline)) is not None:
            if pred(e):
                return e
        raise AssertionError("no such journal entry within %s s; got %r" % (timeout,
                                                                            self.entries))

    def close(self):
        self._stopping.set()
        self._reader.join(timeout=5)
        self.sock.close()
