"""
The runtime access of a HAProxy is written the same way for every command
that reads it: the drain proof (`wait`, `rollout`, the daemon's
/drained) and a deploy's verdict (`verify`, `rollout --canary`) connect
through one connector (src/lbaccess/haproxy_socket.c), so each accepts
every address form the other does: a socket path, unix@PATH, HOST:PORT,
ipv4@HOST:PORT, ipv6@[ADDR]:PORT and [ADDR]:PORT.

One real HAProxy (configured by lbconfig) listens on its admin socket in
every form at once; each form is registered as a load balancer of its
own, and `verify` must read every one of them. A load balancer whose
address answers nothing shows its failed reads: the evidence this test
reads can say "failed". Everything runs on loopback, is started here and
stopped by its pid.
"""

import json

from conftest import Daemon, free_port, port_taken
from lbharness import HAProxy, PortTaken, cli, start_on_free_port

NODES = ("app1", "app2")


class MultiSocketHAProxy(HAProxy):
    """HAProxy with its admin socket also on ipv4@ and ipv6@ TCP ports."""

    def __init__(self, directory, config_text, port):
        super().__init__(directory, config_text, port)
        self.tcp_port, self.tcp6_port = free_port(), free_port()
        self.stats_cfg.write_text(
            "global\n"
            "    stats socket %s mode 600 level admin\n"
            "    stats socket ipv4@127.0.0.1:%d level admin\n"
            "    stats socket ipv6@[::1]:%d level admin\n"
            % (self.stats_path, self.tcp_port, self.tcp6_port))

    def _started(self):
        if not self.running():
            log = self.log_text(self._mark)
            if any(port_taken(log, p) for p in (self.tcp_port, self.tcp6_port)):
                raise PortTaken(self.name)
        return super()._started()


def test_verify_reads_haproxy_at_every_address_form_the_drain_proof_accepts(cm_bin, tmp_path):
    daemon = Daemon(tmp_path / "daemon", bin_path=cm_bin, start=False)
    haproxy = None
    try:
        daemon.start()
        for i, name in enumerate(NODES):
            r = daemon.put("/v1/clusters/default/nodes/" + name, auth=daemon.as_admin,
                           json={"address": "127.0.0.1:%d" % (40001 + i)})
            assert r.status_code in (200, 201), r.text
        haproxy = start_on_free_port(lambda port: MultiSocketHAProxy(
            tmp_path / "haproxy", cli(cm_bin, daemon, "lbconfig", "haproxy", "--lb", "hap",
                                      "--listen", "127.0.0.1:%d" % port, "--agent", "none",
                                      check=True).stdout, port))
        forms = {
            "hap_path": str(haproxy.stats_path),
            "hap_unix": "unix@%s" % haproxy.stats_path,
            "hap_hostport": "127.0.0.1:%d" % haproxy.tcp_port,
            "hap_ipv4": "ipv4@127.0.0.1:%d" % haproxy.tcp_port,
            "hap_ipv6": "ipv6@[::1]:%d" % haproxy.tcp6_port,
            "hap_bracketed": "[::1]:%d" % haproxy.tcp6_port,
        }
        closed = "ipv4@127.0.0.1:%d" % free_port()
        for name, addr in list(forms.items()) + [("hap_closed", closed)]:
            cli(cm_bin, daemon, "lb", "add", name, "--kind", "haproxy", "--runtime", addr,
                check=True)
        r = cli(cm_bin, daemon, "verify", "app1", "--against", "app2", "--for", "3s",
                "--json", timeout=60)
        doc = json.loads(r.stdout)
        evidence = {e["lb"]: e for e in doc["nodes"][0]["evidence"]}
        for name, addr in forms.items():
            assert evidence[name]["judged"], (addr, evidence[name])
            assert evidence[name]["failed_reads"] == 0, (addr, evidence[name])
        assert evidence["hap_closed"]["failed_reads"] > 0, evidence["hap_closed"]
    finally:
        if haproxy is not None:
            haproxy.stop()
        problem = daemon.close()
        assert not problem, problem
