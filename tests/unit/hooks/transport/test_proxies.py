"""
Issue 17 items 7 and 6 on real sockets, both hooks (``requests`` and ``httpx``), no mock in between.

Item 7: through a real forward proxy on 127.0.0.1 (``CONNECT`` tunnel to a TLS server that trickles its
answer), an attempt with a 2 s timeout ends in about 2 s, whether the proxy comes from ``HTTPS_PROXY`` or
the connection's ``proxy`` extra (before: 11+ s with ``requests``: the deadline only held on the direct
pool). A clear-text (``http://``) or loopback base URL never goes through a proxy, whatever the
environment or the extra say, so no proxy reads ``Authorization: Bearer <token>``; ``.netrc`` never
replaces the header.

Item 6: an answer whose ``Content-Length`` is over :data:`~airflow_qstash.protocol.answers.MAX_ANSWER_BYTES` is refused
after its head, and one without a length is cut once the cap is passed; neither is read whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_qstash.exceptions import QStashAPIError, QStashConnectionError
from airflow_qstash.hooks.transport import default_ssl_context
from airflow_qstash.protocol import answers
from tests.conftest import TEST_TOKEN
from tests.doubles.fake_qstash import use_connection
from tests.support.loopback import LoopbackServer, Reply
from tests.support.proxy_servers import (
    PROXIED_HOST,
    ForwardProxy,
    StreamingServer,
    TLSLoopbackServer,
    write_certificate,
)
from tests.support.real_hooks import LABELS, TRANSPORTS, run

pytestmark = pytest.mark.slow

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
#: Trickled at 0.2 s a byte this body takes about 12 s: far past a 2 s deadline, yet it ends.
SLOW_BODY = json.dumps({"cancelled": 1, "padding": "x" * 30}).encode()
TIMEOUT = 2.0
#: What "about 2 s" may be on a busy 2-core machine.
DEADLINE_BOUND = TIMEOUT + 1.5


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy", "NETRC", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def trusted_certificate(tmp_path, monkeypatch, clean_environment) -> Iterator[tuple[Any, Any]]:
    """A certificate for :data:`PROXIED_HOST` that both transports trust (through the CA-bundle variables)."""
    cert_path, key_path = write_certificate(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_path))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    default_ssl_context.cache_clear()
    yield cert_path, key_path
    default_ssl_context.cache_clear()


@pytest.mark.parametrize("source", ["environment", "extra"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_deadline_holds_through_a_proxy(monkeypatch, trusted_certificate, transport, source):
    reply = Reply(200, {"Content-Type": "application/json"}, SLOW_BODY, trickle="body", pause=0.2)
    assert len(SLOW_BODY) * reply.pause > 5 * TIMEOUT
    with (
        TLSLoopbackServer(lambda received: reply, *trusted_certificate) as upstream,
        ForwardProxy(upstream.port) as proxy,
    ):
        extra: dict[str, Any] = {"timeout": TIMEOUT, "max_retries": 0}
        if source == "environment":
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        else:
            extra["proxy"] = proxy.url
        host = f"https://{PROXIED_HOST}:{upstream.port}"
        conn_id = use_connection(monkeypatch, conn_id="qstash_proxied", host=host, **extra)
        started = time.monotonic()
        with pytest.raises(QStashAPIError) as info:
            run(transport, conn_id, "bulk_cancel_by_filter", LABELS)
        elapsed = time.monotonic() - started
    print(f"\n{transport} via proxy ({source}): timeout {TIMEOUT:g} s, trickling upstream, ended in {elapsed:.2f} s")
    assert proxy.connects == [f"{PROXIED_HOST}:{upstream.port}"]  # it did go through the proxy
    assert len(upstream.requests) == 1 and upstream.requests[0].headers["authorization"] == f"Bearer {TEST_TOKEN}"
    assert "the attempt's deadline passed" in str(info.value)
    assert elapsed < DEADLINE_BOUND


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_deadline_holds_when_the_proxy_trickles_its_connect_answer(monkeypatch, trusted_certificate, transport):
    answer = json.dumps({"cancelled": 4}).encode()
    reply = Reply(200, {"Content-Type": "application/json"}, answer)
    with (
        TLSLoopbackServer(lambda received: reply, *trusted_certificate) as upstream,
        ForwardProxy(upstream.port, trickle_connect=0.2) as proxy,
    ):
        host = f"https://{PROXIED_HOST}:{upstream.port}"
        extra = {"proxy": proxy.url, "timeout": TIMEOUT, "max_retries": 0}
        conn_id = use_connection(monkeypatch, conn_id="qstash_proxied", host=host, **extra)
        started = time.monotonic()
        with pytest.raises(QStashAPIError, match="the attempt's deadline passed"):
            run(transport, conn_id, "bulk_cancel_by_filter", LABELS)
        elapsed = time.monotonic() - started
    print(f"\n{transport}: proxy trickling its CONNECT answer (~18 s), timeout {TIMEOUT:g} s: ended in {elapsed:.2f} s")
    assert elapsed < DEADLINE_BOUND
    assert upstream.requests == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_prompt_answer_comes_back_through_a_proxy(monkeypatch, trusted_certificate, transport):
    answer = json.dumps({"cancelled": 4}).encode()
    reply = Reply(200, {"Content-Type": "application/json"}, answer)
    with (
        TLSLoopbackServer(lambda received: reply, *trusted_certificate) as upstream,
        ForwardProxy(upstream.port) as proxy,
    ):
        host = f"https://{PROXIED_HOST}:{upstream.port}"
        conn_id = use_connection(monkeypatch, conn_id="qstash_proxied", host=host, proxy=proxy.url)
        assert run(transport, conn_id, "bulk_cancel_by_filter", LABELS).cancelled == 4
    assert proxy.connects == [f"{PROXIED_HOST}:{upstream.port}"]
    # the proxy saw only the CONNECT line, never the request inside the tunnel
    assert all(b"authorization" not in head.lower() for head in proxy.heads)


@pytest.mark.parametrize("configured", ["environment", "extra", "both"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_loopback_host_never_goes_through_a_proxy(monkeypatch, clean_environment, transport, configured):
    answer = json.dumps({"cancelled": 2}).encode()
    with (
        LoopbackServer(lambda received: Reply(200, {"Content-Type": "application/json"}, answer)) as server,
        ForwardProxy(server.port) as proxy,
    ):
        extra: dict[str, Any] = {}
        if configured in ("environment", "both"):
            for name in PROXY_VARIABLES:
                monkeypatch.setenv(name, proxy.url)
        if configured in ("extra", "both"):
            extra["proxy"] = proxy.url
        conn_id = use_connection(monkeypatch, conn_id="qstash_loopback", host=server.base_url, **extra)
        assert run(transport, conn_id, "bulk_cancel_by_filter", LABELS).cancelled == 2
    assert proxy.heads == []  # the proxy never saw the request, nor its Authorization header
    assert server.requests[0].headers["authorization"] == f"Bearer {TEST_TOKEN}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_clear_text_host_never_goes_through_a_proxy(monkeypatch, clean_environment, transport):
    with ForwardProxy(1) as proxy:
        for name in PROXY_VARIABLES:
            monkeypatch.setenv(name, proxy.url)
        # a non-loopback http:// host the author allowed: it must be reached directly (and .test does not
        # resolve), never handed to the proxy in clear text
        conn_id = use_connection(
            monkeypatch,
            conn_id="qstash_cleartext",
            host=f"http://{PROXIED_HOST}:8080",
            allow_insecure_http=True,
            proxy=proxy.url,
            max_retries=0,
        )
        # the host does not resolve: a connection mistake, named at once (h-inputs, #21.4), not via the proxy
        with pytest.raises(QStashConnectionError, match="is unknown") as info:
            run(transport, conn_id, "bulk_cancel_by_filter", LABELS)
        assert "through a proxy" not in str(info.value)
    assert proxy.heads == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_netrc_never_replaces_the_bearer_header(monkeypatch, clean_environment, tmp_path, transport):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-password\ndefault login a password b\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    answer = json.dumps({"cancelled": 1}).encode()
    with LoopbackServer(lambda received: Reply(200, {"Content-Type": "application/json"}, answer)) as server:
        conn_id = use_connection(monkeypatch, conn_id="qstash_loopback", host=server.base_url)
        run(transport, conn_id, "bulk_cancel_by_filter", LABELS)
    assert server.requests[0].headers["authorization"] == f"Bearer {TEST_TOKEN}"


# --------------------------------------------------------------------------- item 6: the answer size cap


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_answer_that_declares_more_than_the_cap_is_refused_after_its_head(monkeypatch, transport):
    declared = 10 * 1024**3
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n".encode()
    with StreamingServer(head, bound=4 * answers.MAX_ANSWER_BYTES) as server:
        conn_id = use_connection(monkeypatch, conn_id="qstash_big", host=server.base_url, max_retries=0, timeout=30)
        started = time.monotonic()
        with pytest.raises(QStashAPIError, match=f"{declared:,} bytes by its Content-Length") as info:
            run(transport, conn_id, "bulk_cancel_by_filter", LABELS)
        elapsed = time.monotonic() - started
    print(f"\n{transport}: Content-Length {declared:,}: refused in {elapsed:.2f} s, server sent {server.sent:,} bytes")
    assert f"{answers.MAX_ANSWER_BYTES:,} bytes this provider reads" in str(info.value)
    assert elapsed < 5
    assert server.sent < answers.MAX_ANSWER_BYTES


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_answer_without_a_length_is_cut_at_the_cap(monkeypatch, transport):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    with StreamingServer(head, bound=4 * answers.MAX_ANSWER_BYTES) as server:
        conn_id = use_connection(monkeypatch, conn_id="qstash_big", host=server.base_url, max_retries=0, timeout=30)
        started = time.monotonic()
        with pytest.raises(
            QStashAPIError, match="200 with a body without a Content-Length, more than the 67,108,864 bytes"
        ) as info:
            run(transport, conn_id, "bulk_cancel_by_filter", LABELS)
        elapsed = time.monotonic() - started
    print(f"\n{transport}: endless body: refused in {elapsed:.2f} s, server sent {server.sent:,} bytes")
    assert info.value.http_status == 200
    assert server.sent < 2 * answers.MAX_ANSWER_BYTES  # the cap, plus what the socket buffers held
