"""
Issue 17 item 7 without sockets: the ``proxy`` extra is validated (never echoing its value), kept out of
``repr``, masked and redacted; :func:`~airflow_qstash.hooks.transport.proxy_for` is the one proxy decision
(never for ``http://`` or loopback); neither transport reads proxies or ``.netrc`` from the environment.
The real-proxy checks are in ``test_proxies_loopback.py``.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_qstash.config import QStashConnectionConfig, read_proxy
from airflow_qstash.exceptions import QStashAPIError, QStashConnectionError, redact
from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from airflow_qstash.hooks.transport import new_session, proxy_for
from tests.doubles.fake_qstash import use_connection

PROXY_PASSWORD = "Pr0xyPassw0rd-9f8e7d6c"
PROXY = f"http://corp:{PROXY_PASSWORD}@proxy.corp.example:3128"


@pytest.mark.parametrize(
    "value",
    [
        "socks5://proxy.example:1080",
        "ftp://proxy.example",
        "proxy.example:3128",
        f"http://corp:{PROXY_PASSWORD}@proxy.example:3128/path",
        f"http://corp:{PROXY_PASSWORD}@proxy.example:3128?x=1",
        f"http://corp:{PROXY_PASSWORD}@proxy.example:3128#",
        f"http://corp:{PROXY_PASSWORD}@proxy.example:port",
        f"http://corp:{PROXY_PASSWORD}@proxy example:3128",
        "http://",
        42,
        ["http://proxy.example:3128"],
    ],
)
def test_a_proxy_extra_that_is_not_an_http_proxy_url_is_refused_without_echoing_it(value):
    with pytest.raises(QStashConnectionError, match="Connection extra 'proxy' is not valid") as info:
        read_proxy({"proxy": value})
    assert PROXY_PASSWORD not in str(info.value)
    assert "http://proxy.corp.example:3128" in str(info.value) or "http://proxy.example:3128" in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("http://proxy.example:3128", "http://proxy.example:3128"),
        ("https://proxy.example:443/", "https://proxy.example:443"),
        (f" {PROXY} ", PROXY),
    ],
)
def test_a_proxy_extra_is_read(value, expected):
    assert read_proxy({"proxy": value}) == expected


def test_the_proxy_is_kept_out_of_repr_and_masked_and_redacted(monkeypatch):
    conn_id = use_connection(monkeypatch, conn_id="qstash_proxy", proxy=PROXY)
    masked: list[str] = []
    monkeypatch.setattr("airflow_qstash.hooks.qstash.mask_secret", masked.append)
    config = QStashHook(conn_id).config
    assert config.proxy == PROXY
    assert PROXY_PASSWORD not in repr(config)
    assert PROXY in masked and PROXY_PASSWORD in masked
    # an error text that happens to carry the proxy password is redacted of it (remembered secret)
    assert PROXY_PASSWORD not in str(QStashAPIError(f"proxy said {PROXY}"))
    assert PROXY_PASSWORD not in redact(f"407 from {PROXY}")


def test_the_async_hook_masks_the_proxy_too(monkeypatch):
    conn_id = use_connection(monkeypatch, conn_id="qstash_proxy", proxy=PROXY)
    masked: list[str] = []

    async def amask(secret: str) -> None:
        masked.append(secret)

    monkeypatch.setattr("airflow_qstash.compat.amask_secret", amask)
    config = asyncio.run(QStashAsyncHook(conn_id).get_config())
    assert config.proxy == PROXY
    assert PROXY in masked and PROXY_PASSWORD in masked


@pytest.fixture
def proxy_environment(monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    env_proxy = "http://env-proxy.example:3128"
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, env_proxy)
    return env_proxy


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
        "https://127.0.0.1:8443",
        "https://localhost",
        "http://qstash.internal.example",  # clear text (allow_insecure_http): never handed to a proxy
    ],
)
def test_clear_text_and_loopback_never_get_a_proxy(proxy_environment, base_url):
    assert proxy_for(base_url, PROXY) is None
    assert proxy_for(base_url, None) is None


def test_an_https_host_takes_the_extra_else_the_environment(proxy_environment, monkeypatch):
    assert proxy_for("https://qstash.upstash.io", PROXY) == PROXY
    assert proxy_for("https://qstash.upstash.io", None) == proxy_environment
    monkeypatch.setenv("NO_PROXY", ".upstash.io")
    assert proxy_for("https://qstash.upstash.io", None) is None
    assert proxy_for("https://qstash.upstash.io", PROXY) == PROXY  # an explicit proxy is the author's choice


def test_an_environment_proxy_without_a_scheme_is_http(proxy_environment, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "env-proxy.example:3128")
    assert proxy_for("https://qstash.upstash.io", None) == "http://env-proxy.example:3128"


def test_no_proxy_anywhere_means_direct(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_for("https://qstash.upstash.io", None) is None


def test_the_requests_session_reads_nothing_from_the_environment_but_the_ca_bundle(proxy_environment, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp-ca.pem")
    session = new_session({"Authorization": "Bearer x"})
    assert session.trust_env is False
    assert session.proxies == {}
    assert session.verify == "/etc/corp-ca.pem"
    assert new_session({}, PROXY).proxies == {"https": PROXY}


def test_the_httpx_client_reads_no_proxy_from_the_environment(proxy_environment, monkeypatch):
    conn_id = use_connection(monkeypatch, conn_id="qstash_local", host="http://127.0.0.1:9")

    async def client_mounts() -> object:
        hook = QStashAsyncHook(conn_id)
        try:
            client = await hook._get_client()
            return client._trust_env, dict(client._mounts)
        finally:
            await hook.aclose()

    trust_env, mounts = asyncio.run(client_mounts())
    assert trust_env is False
    assert mounts == {}  # no proxy transport mounted for any URL pattern


def test_a_connection_json_with_a_proxy_round_trips(monkeypatch):
    conn = type("Conn", (), {"conn_id": "c", "password": "t" * 20, "host": "", "port": None})()
    conn.extra = json.dumps({"proxy": PROXY})
    assert QStashConnectionConfig.from_connection(conn).proxy == PROXY
