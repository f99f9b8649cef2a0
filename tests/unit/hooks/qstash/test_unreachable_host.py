"""
#21.4: a refused connection or an unknown host on the first attempt is the connection's mistake. It names the
connection id and its host, says to check them, and is not retried like a transient fault (it was retried
for ~20 s and ended with "running the task again continues safely"), on both transports; the connection's
Test button (``airflow connections test``) says the same.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_qstash.exceptions import QStashAPIError, QStashConnectionError
from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from tests.doubles.fake_qstash import use_connection
from tests.support.bulk_cancel_trigger import collect, make_trigger

UNKNOWN = "qstash-nowhere.test"


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Name lookups of UNKNOWN and 'locahost' fail as an unknown host does (no network involved)."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name in (UNKNOWN, "locahost"):
            asked.append(name)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield asked


def _sync(conn_id: str) -> Any:
    hook = QStashHook(conn_id)
    try:
        return hook.bulk_cancel(labels="a")
    finally:
        hook.close()


def _async(conn_id: str) -> Any:
    async def run() -> Any:
        hook = QStashAsyncHook(conn_id)
        try:
            return await hook.bulk_cancel_by_filter(BulkCancelFilter.build(labels="a"))
        finally:
            await hook.aclose()

    return asyncio.run(run())


TRANSPORTS = [pytest.param(_sync, id="requests"), pytest.param(_async, id="httpx")]


@pytest.mark.parametrize("run", TRANSPORTS)
def test_a_refused_connection_names_the_connection_and_port_and_is_not_retried(monkeypatch, closed_port, run):
    conn_id = use_connection(monkeypatch, "qstash_local", host=f"http://127.0.0.1:{closed_port}", max_retries=5)
    slept: list[float] = []
    monkeypatch.setattr(QStashHook, "sleep", staticmethod(slept.append))
    started = time.monotonic()
    with pytest.raises(QStashConnectionError) as info:
        run(conn_id)
    message = str(info.value)
    assert "connection 'qstash_local'" in message
    assert f"127.0.0.1 port {closed_port} was refused" in message
    assert "Check the connection's host and port" in message
    assert "continues safely" not in message
    assert slept == [] and time.monotonic() - started < 5


@pytest.mark.parametrize("run", TRANSPORTS)
@pytest.mark.parametrize(
    ("host", "hint"), [(f"https://{UNKNOWN}", ""), ("https://locahost:8080", "typo of 'localhost'")]
)
def test_an_unknown_host_names_the_connection_and_host_and_is_not_retried(monkeypatch, no_dns, run, host, hint):
    conn_id = use_connection(monkeypatch, "qstash_remote", host=host, max_retries=5)
    with pytest.raises(QStashConnectionError) as info:
        run(conn_id)
    message = str(info.value)
    name = host.split("//")[1].split(":")[0]
    assert f"connection 'qstash_remote': {host}" in message
    assert f"the host name {name!r} is unknown" in message
    assert hint in message
    assert no_dns == [name]  # one lookup: one attempt, no retries


def test_after_an_answer_a_refused_connection_is_a_passing_fault_and_retried(monkeypatch, closed_port):
    conn_id = use_connection(monkeypatch, "qstash_local", host=f"http://127.0.0.1:{closed_port}", max_retries=2)
    monkeypatch.setattr(QStashHook, "sleep", staticmethod(lambda seconds: None))
    hook = QStashHook(conn_id)
    hook._answered = True  # as after any answer: the server restarting mid-run is retried
    with pytest.raises(QStashAPIError, match=r"gave up after 3 attempts"):
        hook.bulk_cancel(labels="a")


@pytest.mark.parametrize("method", ["dlq_delete", "dlq_retry"])
def test_a_dlq_run_reports_the_connection_not_an_incomplete_run(monkeypatch, closed_port, method):
    conn_id = use_connection(monkeypatch, "qstash_local", host=f"http://127.0.0.1:{closed_port}")
    with pytest.raises(QStashConnectionError, match="was refused"):
        getattr(QStashHook(conn_id), method)(labels="a")


def test_the_bulk_cancel_operator_fails_naming_the_connection(monkeypatch, closed_port):
    from types import SimpleNamespace

    import pendulum

    from airflow_qstash.operators.qstash import QStashBulkCancelOperator

    use_connection(monkeypatch, "qstash_local", host=f"http://127.0.0.1:{closed_port}")
    from airflow.providers.common.compat.sdk import AirflowFailException

    op = QStashBulkCancelOperator(task_id="t", labels="a", qstash_conn_id="qstash_local")
    with pytest.raises(AirflowFailException) as info:  # the task is not retried
        op.execute({"ti": SimpleNamespace(start_date=pendulum.datetime(2026, 12, 5, tz="UTC"))})
    assert isinstance(info.value.__cause__, QStashConnectionError)
    assert "qstash_local" in str(info.value) and "continues safely" not in str(info.value)


@pytest.mark.parametrize(
    ("host", "fragment"),
    [
        ("http//127.0.0.1:8080", "write 'http://127.0.0.1:8080'"),
        ("http://locahost:8080", "typo of 'localhost'"),
        (f"https://{UNKNOWN}", f"the host name {UNKNOWN!r} is unknown"),
    ],
)
def test_the_connection_test_button_says_what_to_fix(monkeypatch, no_dns, host, fragment):
    """What ``airflow connections test qstash_default`` and the UI's Test button show."""
    conn_id = use_connection(monkeypatch, "qstash_default", host=host)
    ok, message = QStashHook(conn_id).test_connection()
    assert ok is False
    assert fragment in message


def test_the_connection_test_button_names_a_refused_port(monkeypatch, closed_port):
    conn_id = use_connection(monkeypatch, "qstash_default", host=f"http://127.0.0.1:{closed_port}")
    ok, message = QStashHook(conn_id).test_connection()
    assert (ok, "connection 'qstash_default'" in message, f"port {closed_port} was refused" in message) == (
        False,
        True,
        True,
    )


def test_the_deferrable_path_fires_one_error_event_naming_the_connection(monkeypatch, closed_port):
    conn_id = use_connection(monkeypatch, "qstash_local", host=f"http://127.0.0.1:{closed_port}", max_retries=5)
    events = collect(make_trigger(qstash_conn_id=conn_id))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "error"
    assert "connection 'qstash_local'" in payload["message"] and "was refused" in payload["message"]
    assert "continues safely" not in payload["message"]


@pytest.mark.parametrize("run", TRANSPORTS)
def test_a_refused_proxy_says_to_check_the_proxy_without_showing_it(monkeypatch, closed_port, run):
    proxy = f"http://user:proxy-pass@127.0.0.1:{closed_port}"
    conn_id = use_connection(monkeypatch, "qstash_proxied", host="https://qstash.example.test", proxy=proxy)
    with pytest.raises(QStashConnectionError) as info:
        run(conn_id)
    message = str(info.value)
    assert "connection 'qstash_proxied'" in message and "through a proxy: check the proxy too" in message
    assert "proxy-pass" not in message and str(closed_port) not in message
