"""Fixtures of the DLQ unit tests (hooks, runs, operators, triggers): a :class:`~tests.doubles.fake_qstash.FakeDLQ`
behind either hook."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests_mock as requests_mock_module

from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from tests.conftest import FAKE_BASE_URL
from tests.doubles.fake_qstash import FakeDLQ
from tests.doubles.transports import route_async_hook


@pytest.fixture
def fake(qstash_conn: str) -> FakeDLQ:
    """An empty fake DLQ; ``qstash_default`` points at it."""
    return FakeDLQ()


@pytest.fixture
def sync_fake(fake: FakeDLQ, requests_mock: Any, monkeypatch: pytest.MonkeyPatch) -> FakeDLQ:
    """The fake behind the requests hook (every route under the base URL); retries and pauses do not sleep."""
    monkeypatch.setattr(QStashHook, "sleep", staticmethod(lambda seconds: None))
    requests_mock.register_uri(
        requests_mock_module.ANY, re.compile(re.escape(FAKE_BASE_URL) + "/"), content=fake.requests_callback
    )
    return fake


@pytest.fixture
def async_fake(fake: FakeDLQ, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDLQ]:
    """The fake behind the httpx hook (the connection is still read); pauses do not sleep."""

    route_async_hook(monkeypatch, fake.httpx_handler)
    real_sleep = asyncio.sleep

    async def no_sleep(seconds: float, *args: Any) -> Any:
        return await real_sleep(0, *args)

    monkeypatch.setattr("airflow_qstash.hooks.qstash.asyncio.sleep", no_sleep)
    yield fake


@pytest.fixture(params=["requests", "httpx"])
def call_hook(request: pytest.FixtureRequest, fake: FakeDLQ) -> Callable[..., Any]:
    """
    ``call_hook(method_name, *args, **kwargs)`` on the requests hook or the httpx hook (the test runs on
    both), against the fake; it returns what the method returns or raises what it raises.
    """
    if request.param == "requests":
        request.getfixturevalue("sync_fake")

        def call_sync(name: str, *args: Any, **kwargs: Any) -> Any:
            hook = QStashHook()
            try:
                return getattr(hook, name)(*args, **kwargs)
            finally:
                hook.close()

        return call_sync
    request.getfixturevalue("async_fake")

    def call_async(name: str, *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            hook = QStashAsyncHook()
            try:
                return await getattr(hook, name)(*args, **kwargs)
            finally:
                await hook.aclose()

        return asyncio.run(run())

    return call_async
