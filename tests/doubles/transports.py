"""
Where a double meets the async hook: one place that couples to :class:`QStashAsyncHook`'s client.

The requests hook needs nothing of the kind (requests-mock patches its transport); the httpx hook opens its own
``httpx.AsyncClient``, so the doubles put an ``httpx.MockTransport`` in its place here, with the base URL and
headers the hook read from its connection (the connection is still read, so a broken one still shows).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from airflow_qstash.hooks.qstash import QStashAsyncHook

Handler = Callable[[httpx.Request], httpx.Response]


def route_async_hook(
    monkeypatch: pytest.MonkeyPatch, handler: Handler, clients: list[httpx.AsyncClient] | None = None
) -> list[httpx.AsyncClient]:
    """Every :class:`QStashAsyncHook` opened while ``monkeypatch`` holds sends to ``handler``.

    Returns ``clients`` (a new list if not given) with each client the hooks open appended (one per hook), so a
    test can check they were closed.
    """
    clients = [] if clients is None else clients

    async def get_client(self: QStashAsyncHook) -> httpx.AsyncClient:
        if self._client is None:
            config = await self.get_config()
            self._client = httpx.AsyncClient(
                transport=httpx.MockTransport(handler), base_url=config.base_url, headers=config.headers
            )
            clients.append(self._client)
        return self._client

    monkeypatch.setattr(QStashAsyncHook, "_get_client", get_client)
    return clients
