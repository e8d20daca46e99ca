"""
HTTPS the way a careful operator configures it (issue 8, point 7): TLS 1.2
only with forward-secret AEAD suites (Mozilla "intermediate") and TLS 1.3,
no TLS 1.0/1.1; Strict-Transport-Security on HTTPS responses, not on HTTP;
the certificate and key read again on SIGHUP for new connections while
established ones keep working, and a certificate that does not load leaves
the current one in place.

Handshakes are made with `openssl s_client`, which says which protocol and
suite were agreed ("New, TLSv1.2, Cipher is ...", "(NONE)" when refused).
"""

import http.client
import json
import re
import shutil
import signal
import ssl
import subprocess

import pytest
import requests

HSTS = "max-age=31536000"


def s_client(port, *args):
    """(protocol, cipher) agreed by `openssl s_client`, (None, None) when
    the handshake failed."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args),
                       input=b"", capture_output=True, timeout=20)
    out = r.stdout.decode("utf-8", "replace")
    m = re.search(r"^New, (\S+), Cipher is (\S+)", out, re.M)
    assert m, "unexpected s_client output:\n%s\n%s" % (out, r.stderr.decode("utf-8", "replace"))
    if m.group(2) == "(NONE)":
        return None, None
    return m.group(1), m.group(2)


def make_cert(directory, subject):
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", subject, "-addext", "subjectAltName=IP:127.0.0.1",
                    "-days", "1", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    return crt, key


def der_of(pem_path):
    return ssl.PEM_cert_to_DER_cert(pem_path.read_text())


def served_cert_der(port):
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port), timeout=10))


@pytest.fixture
def https(make_daemon, cert):
    return make_daemon(tls=cert)


@pytest.mark.parametrize("suite", [
    "AES128-SHA",                 # no forward secrecy, CBC
    "AES128-GCM-SHA256",          # AEAD but no forward secrecy
    "ECDHE-RSA-AES128-SHA",       # forward secret but CBC
    "ECDHE-RSA-AES256-SHA384",    # forward secret but CBC
])
def test_weak_tls12_suites_are_refused(https, suite):
    assert s_client(https.port, "-tls1_2", "-cipher", suite) == (None, None)


@pytest.mark.parametrize("suite", [
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
])
def test_forward_secret_aead_tls12_suites_are_accepted(https, suite):
    assert s_client(https.port, "-tls1_2", "-cipher", suite) == ("TLSv1.2", suite)


def test_tls13_is_accepted(https):
    protocol, _ = s_client(https.port, "-tls1_3")
    assert protocol == "TLSv1.3"


def test_tls11_is_refused(https):
    # SECLEVEL=0 lets this client offer TLS 1.1, so the refusal is the
    # server's
    assert s_client(https.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0") == (None, None)


def test_hsts_on_https_responses(https):
    for path in ["/v1/health", "/health?node=nope", "/no/such/page"]:
        r = requests.get(https.url + path, verify=https.verify, timeout=10)
        assert r.headers.get("Strict-Transport-Security") == HSTS, (path, r.headers)


def test_no_hsts_on_http(daemon):
    r = daemon.get("/v1/health")
    assert r.status_code == 200
    assert "Strict-Transport-Security" not in r.headers


@pytest.fixture
def live_cert(tmp_path, cert):
    """A copy of the cert fixture the test may overwrite."""
    live = tmp_path / "live"
    live.mkdir()
    crt, key = live / "cert.pem", live / "key.pem"
    shutil.copy(cert[0], crt)
    shutil.copy(cert[1], key)
    return crt, key


def sighup(d):
    mark = d.log_mark()
    d.proc.send_signal(signal.SIGHUP)
    return mark


def test_sighup_reloads_certificate_for_new_connections_only(make_daemon, live_cert, tmp_path):
    d = make_daemon(tls=live_cert)
    first = der_of(live_cert[0])
    ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    kept = http.client.HTTPSConnection("127.0.0.1", d.port, context=ctx, timeout=10)
    kept.request("GET", "/v1/health")
    assert kept.getresponse().read() and kept.sock.getpeercert(True) == first

    crt2, key2 = make_cert(tmp_path / "second", "/CN=127.0.0.1/O=second")
    shutil.copy(crt2, live_cert[0])
    shutil.copy(key2, live_cert[1])
    mark = sighup(d)
    line = d.wait_log("TLS certificate reloaded", since=mark, timeout=10)
    assert line and "O=second" in line, d.log_text(mark)

    assert served_cert_der(d.port) == der_of(crt2)
    # the connection opened before goes on, on its own certificate
    sock = kept.sock
    kept.request("GET", "/v1/health")
    r = kept.getresponse()
    assert r.status == 200 and r.read()
    assert kept.sock is sock and sock.getpeercert(True) == first
    kept.close()


@pytest.mark.parametrize("breakage", ["garbage certificate", "key of another certificate"])
def test_sighup_with_a_bad_certificate_keeps_the_current_one(make_daemon, live_cert, tmp_path,
                                                             breakage):
    d = make_daemon(tls=live_cert)
    first = der_of(live_cert[0])
    if breakage == "garbage certificate":
        live_cert[0].write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
    else:
        _, other_key = make_cert(tmp_path / "other", "/CN=127.0.0.1/O=other")
        shutil.copy(other_key, live_cert[1])
    mark = sighup(d)
    line = d.wait_log("cannot reload the TLS certificate", since=mark, timeout=10)
    assert line and "keeping the current one" in line, d.log_text(mark)
    assert served_cert_der(d.port) == first
    ca = str(tmp_path / "cert.pem")  # the live file may be garbage now
    assert requests.get(d.url + "/v1/health", verify=ca, timeout=10).status_code == 200


def test_sighup_without_tls_changes_nothing(daemon):
    mark = sighup(daemon)
    assert daemon.wait_log("nothing to reload", since=mark, timeout=10), daemon.log_text(mark)
    assert daemon.alive()


def curl_version(d, *args):
    """The HTTP version curl agreed with the daemon, and the status."""
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                        "--cacert", str(d.verify), *args,
                        "https://127.0.0.1:%d/v1/health" % d.port],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_https_offers_http2_by_alpn(https):
    assert curl_version(https, "--http2") == ["2", "200"]


def test_a_large_list_arrives_whole_over_http2_and_http11(https, tmp_path):
    """A node list of 2.2 MB, larger than any TLS record or HTTP/2 frame
    and window, is the same bytes over HTTP/2 and HTTP/1.1 with TLS, of
    its Content-Length."""
    names = ["web%05d-%s" % (i, "x" * 50) for i in range(10000)]
    https.set_nodes(names)
    got = {}
    for version in ("--http2", "--http1.1"):
        out = tmp_path / ("list" + version)
        r = subprocess.run(["curl", "-sS", "-o", str(out), "-w", "%{http_version} %{http_code} "
                            "%{size_download}", "--cacert", str(https.verify), version,
                            "-H", "Authorization: Bearer %s" % https.admin_token[1],
                            "https://127.0.0.1:%d/v1/clusters/default/nodes" % https.port],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        http_version, code, size = r.stdout.split()
        assert (http_version, code) == (version[6:], "200"), r.stdout
        got[version] = out.read_bytes()
        assert len(got[version]) == int(size) > 2_000_000
    assert got["--http2"] == got["--http1.1"]
    assert [n["name"] for n in json.loads(got["--http2"])["nodes"]] == names


def test_https_still_serves_http11_clients(https):
    assert curl_version(https, "--http1.1") == ["1.1", "200"]


def test_https_client_without_alpn_gets_http11(https):
    assert curl_version(https, "--no-alpn") == ["1.1", "200"]


def test_http2_is_offered_by_the_context_reloaded_on_sighup(make_daemon, live_cert, tmp_path):
    d = make_daemon(tls=live_cert)
    crt2, key2 = make_cert(tmp_path / "second", "/CN=127.0.0.1/O=second")
    shutil.copy(crt2, live_cert[0])
    shutil.copy(key2, live_cert[1])
    mark = sighup(d)
    d.wait_log("TLS certificate reloaded", since=mark, timeout=10)
    r = subprocess.run(["curl", "-sS", "-k", "-o", "/dev/null", "-w", "%{http_version}",
                        "--http2", "https://127.0.0.1:%d/v1/health" % d.port],
                       capture_output=True, text=True, timeout=20)
    assert r.stdout == "2", r.stderr
    assert served_cert_der(d.port) == der_of(crt2)
