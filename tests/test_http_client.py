"""The HTTP layer against a real server on a loopback port."""

from __future__ import annotations

import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.config import parse_config
from pipeline.errors import FetchError, ResponseTooLarge, TransientFetchError
from pipeline.http_client import RateLimiter, RegistryClient, build_http_client, parse_retry_after


class Script:
    """Responses to serve in order: (status, headers, body)."""

    def __init__(self):
        self.queue = []
        self.hits = 0
        self.user_agents = []


def make_server(script: Script):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            script.hits += 1
            script.user_agents.append(self.headers.get("User-Agent"))
            status, headers, body = script.queue.pop(0) if script.queue else (200, {}, b"ok")
            if status == "reset":
                self.connection.shutdown(2)
                return
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def served():
    script = Script()
    server = make_server(script)
    yield script, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def client_for(url, sleeps, **source):
    config = parse_config({"sources": {"ctgov": {"base_url": url, "requests_per_second": 1000, "retries": 3,
                                                  "timeout": 5, **source}}})
    rows = []
    client = RegistryClient(config.sources["ctgov"], build_http_client(), on_request=rows.append,
                            backoff_base=0.01, sleep=lambda s: (sleeps.append(s), time.sleep(min(s, 0.05))))
    return client, rows


def test_retries_5xx_then_succeeds_and_logs_attempts(served):
    script, url = served
    script.queue = [(503, {}, b""), (502, {}, b""), (200, {}, b"done")]
    sleeps = []
    client, rows = client_for(url, sleeps)
    response = client.get(url + "/x")
    assert response.body == b"done" and response.attempts == 3 and script.hits == 3
    assert rows[-1]["attempts"] == 3 and rows[-1]["status"] == 200 and rows[-1]["error"] is None
    assert script.user_agents[0].startswith("trialwatch/")


def test_honours_retry_after_seconds_and_http_date(served):
    script, url = served
    script.queue = [(429, {"Retry-After": "2"}, b""), (429, {"Retry-After": formatdate(time.time() + 3, usegmt=True)}, b""),
                    (200, {}, b"ok")]
    sleeps = []
    client, _ = client_for(url, sleeps)
    assert client.get(url).status == 200
    retry_waits = [s for s in sleeps if s >= 1]
    assert retry_waits[0] >= 2 and retry_waits[1] >= 1.5


def test_retry_after_beyond_the_cap_stops_at_once(served):
    script, url = served
    script.queue = [(429, {"Retry-After": "3600"}, b"")]
    client, rows = client_for(url, [], max_retry_wait=10)
    with pytest.raises(TransientFetchError):
        client.get(url)
    assert script.hits == 1 and rows[-1]["status"] == 429


def test_gives_up_after_retries_and_reports_the_error(served):
    script, url = served
    script.queue = [(500, {}, b"")] * 10
    client, rows = client_for(url, [], retries=2)
    with pytest.raises(TransientFetchError):
        client.get(url)
    assert script.hits == 3 and rows[-1]["attempts"] == 3 and "500" in rows[-1]["error"]


def test_connection_reset_is_retried(served):
    script, url = served
    script.queue = [("reset", {}, b""), (200, {}, b"fine")]
    client, _ = client_for(url, [])
    assert client.get(url).body == b"fine"


def test_permanent_4xx_is_not_retried_and_404_is_returned(served):
    script, url = served
    script.queue = [(400, {}, b"bad"), (404, {}, b"no")]
    client, _ = client_for(url, [])
    with pytest.raises(FetchError) as info:
        client.get(url)
    assert not isinstance(info.value, TransientFetchError) and script.hits == 1
    assert client.get(url).status == 404


def test_size_cap(served):
    script, url = served
    script.queue = [(200, {}, b"x" * (2 * 1024 * 1024))]
    client, _ = client_for(url, [], max_response_mb=1)
    with pytest.raises(ResponseTooLarge):
        client.get(url)
    assert script.hits == 1


def test_unreachable_registry_is_a_transient_error():
    client, rows = client_for("http://127.0.0.1:9", [], retries=1)
    with pytest.raises(TransientFetchError, match="network error"):
        client.get("http://127.0.0.1:9/x")
    assert rows[-1]["attempts"] == 2


def test_retry_after_parsing():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(formatdate(1000 + 30, usegmt=True), now=1000) == pytest.approx(30, abs=1)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_rate_limiter_spaces_calls():
    clock = [0.0]
    slept = []
    limiter = RateLimiter(2.0, clock=lambda: clock[0], sleep=slept.append)
    for _ in range(3):
        limiter.wait()
    assert slept == [0.5, 1.0]


# -- TLS: the CA bundle is read lazily, verification is as strict as httpx's default -------


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    import ssl
    import subprocess

    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True,
    )
    if made.returncode != 0:
        pytest.skip("openssl could not make a test certificate")

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/", cert
    server.shutdown()


def test_tls_refuses_an_untrusted_certificate_and_accepts_a_trusted_one(https_server, monkeypatch):
    import httpx

    url, cert = https_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with build_http_client(5) as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            http.get(url)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read when the first TLS connection is made
    with build_http_client(5) as http:
        assert http.get(url).text == "ok"


def test_building_the_client_reads_no_ca_bundle():
    with build_http_client() as http:
        ctx = http._transport._pool._ssl_context
        assert ctx.verify_mode.name == "CERT_REQUIRED" and ctx.check_hostname
        assert ctx.cert_store_stats()["x509_ca"] == 0  # not read until a TLS connection is made
